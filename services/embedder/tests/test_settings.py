import pytest

from dedup.settings import load_settings
from services.embedder.settings import EmbedderSettings


def test_a_dash_in_the_collection_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(EmbedderSettings).collection  # the default passes
    monkeypatch.setenv("DEDUP_EMBEDDER_COLLECTION", "dedup-embeddings")
    with pytest.raises(SystemExit, match="DEDUP_EMBEDDER_COLLECTION: 'dedup-embeddings'"):
        load_settings(EmbedderSettings)
