import pytest

from dedup.settings import load_settings
from services.ingest.settings import IngestSettings


def test_container_names_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_INGEST_CONTAINERS", "uploads, more-uploads")
    assert load_settings(IngestSettings).containers == ["uploads", "more-uploads"]
    monkeypatch.setenv("DEDUP_INGEST_CONTAINERS", "uploads,Bad_Name")
    with pytest.raises(SystemExit, match=r"DEDUP_INGEST_CONTAINERS\.1: 'Bad_Name'"):
        load_settings(IngestSettings)


def test_checkpoint_container_and_topic_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_INGEST_CHECKPOINT_CONTAINER", "x")
    monkeypatch.setenv("DEDUP_INGEST_OUTPUT_TOPIC", "a topic")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(IngestSettings)
    text = str(exit_info.value.code)
    assert "DEDUP_INGEST_CHECKPOINT_CONTAINER" in text
    assert "DEDUP_INGEST_OUTPUT_TOPIC" in text
