import pytest
from pydantic import ValidationError

from dedup.blob import BlobSettings, open_service
from dedup.runtime.kafka import client_options
from dedup.settings import (
    KafkaTopic,
    RuntimeSettings,
    blob_container_name,
    kafka_group_name,
    kafka_topic_name,
    load_settings,
    milvus_collection_name,
    service_config,
)


class DemoSettings(RuntimeSettings):
    model_config = service_config("demo")
    input_topic: KafkaTopic = "in"
    output_topic: KafkaTopic = "out"
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


# ---- resource names ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dedup_hashes", "_x", "A1", "a" * 255])
def test_good_milvus_collection_names(name: str) -> None:
    assert milvus_collection_name(name) == name


@pytest.mark.parametrize("name", ["", "dedup-hashes", "1abc", "a b", "a.b", "a" * 256])
def test_bad_milvus_collection_names(name: str) -> None:
    with pytest.raises(ValueError, match="Milvus collection"):
        milvus_collection_name(name)


@pytest.mark.parametrize("name", ["dedup.blob-events.v1", "a", "A_b-c.d", "x" * 249])
def test_good_kafka_topic_names(name: str) -> None:
    assert kafka_topic_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a b", "a/b", "tópic", "x" * 250])
def test_bad_kafka_topic_names(name: str) -> None:
    with pytest.raises(ValueError, match="Kafka topic"):
        kafka_topic_name(name)


@pytest.mark.parametrize("name", ["hasher", "my group", "$Default"])
def test_good_kafka_groups(name: str) -> None:
    assert kafka_group_name(name) == name


@pytest.mark.parametrize("name", ["", " hasher", "hasher\n", "a\tb"])
def test_bad_kafka_groups(name: str) -> None:
    with pytest.raises(ValueError, match="consumer group"):
        kafka_group_name(name)


@pytest.mark.parametrize("name", ["dedup-working", "abc", "a1-b2", "x" * 63, "$root", "$web"])
def test_good_blob_container_names(name: str) -> None:
    assert blob_container_name(name) == name


@pytest.mark.parametrize(
    "name", ["ab", "Dedup", "-abc", "abc-", "a--b", "a_b", "a.b", "x" * 64, "$other"]
)
def test_bad_blob_container_names(name: str) -> None:
    with pytest.raises(ValueError, match="blob container"):
        blob_container_name(name)


def test_a_bad_topic_fails_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_DEMO_INPUT_TOPIC", "no spaces please")
    monkeypatch.setenv("DEDUP_DEMO_GROUP_ID", "")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(DemoSettings)
    text = str(exit_info.value.code)
    assert "DEDUP_DEMO_INPUT_TOPIC: 'no spaces please' is not a Kafka topic name" in text
    assert "DEDUP_DEMO_GROUP_ID" in text
    assert "Traceback" not in text


def test_load_settings_returns_good_settings() -> None:
    assert load_settings(DemoSettings).input_topic == "in"


def test_a_service_class_keeps_the_topic_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_DEMO_OUTPUT_TOPIC", "a,b")
    with pytest.raises(ValidationError, match="output_topic"):
        DemoSettings()
