import pytest
from pydantic import ValidationError

from dedup.blob import BlobSettings, open_service
from dedup.runtime.kafka import client_options
from dedup.settings import RuntimeSettings, service_config


class DemoSettings(RuntimeSettings):
    model_config = service_config("demo")
    input_topic: str = "in"
    output_topic: str = "out"
    http_port: int = 9999


def test_settings_read_their_own_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_DEMO_BATCH_SIZE", "7")
    monkeypatch.setenv("DEDUP_OTHER_BATCH_SIZE", "99")
    assert DemoSettings().batch_size == 7


def test_settings_are_frozen() -> None:
    settings = DemoSettings()
    with pytest.raises(ValidationError):
        settings.batch_size = 3


def test_settings_refuse_bad_values_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_DEMO_BATCH_SIZE", "0")
    with pytest.raises(ValidationError, match="batch_size"):
        DemoSettings()


def test_event_hubs_kafka_endpoint_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_DEMO_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("DEDUP_DEMO_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("DEDUP_DEMO_KAFKA_SASL_USERNAME", "$ConnectionString")
    monkeypatch.setenv("DEDUP_DEMO_KAFKA_SASL_PASSWORD", "Endpoint=sb://x/;SharedAccessKey=k")
    settings = DemoSettings()
    options = client_options(settings)
    assert options["sasl_plain_password"] == "Endpoint=sb://x/;SharedAccessKey=k"
    assert "ssl_context" in options
    # The secret never shows in a repr or a log line.
    assert "SharedAccessKey" not in repr(settings)


def test_blob_settings_default_to_azurite_and_empty_means_unset() -> None:
    assert open_service(BlobSettings()).account_name == "devstoreaccount1"
    settings = BlobSettings(
        blob_connection_string="", blob_account_url="https://acct.blob.core.windows.net"
    )
    assert settings.blob_connection_string is None
    assert open_service(settings).account_name == "acct"
