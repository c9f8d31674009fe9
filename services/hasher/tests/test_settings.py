import pytest

from dedup.settings import load_settings
from services.hasher.settings import HasherSettings


def test_defaults_pass() -> None:
    settings = load_settings(HasherSettings)
    assert settings.collection == "dedup_hashes"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEDUP_HASHER_COLLECTION", "dedup-hashes"),
        ("DEDUP_HASHER_WORKING_CONTAINER", "Dedup_Working"),
        ("DEDUP_HASHER_INPUT_TOPIC", "blob events"),
    ],
)
def test_a_bad_resource_name_stops_start_up_once(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as exit_info:
        load_settings(HasherSettings)
    assert str(exit_info.value.code).splitlines()[1].strip().startswith(f"{variable}: ")
