"""Ingest's settings: environment variables DEDUP_INGEST_* (and the CLI's options)."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from dedup import topics
from dedup.blob import BlobSettings
from dedup.events import EventFilter
from dedup.settings import BlobContainer, KafkaSettings, KafkaTopic, service_config

CommaList = Annotated[list[str], NoDecode]
ContainerList = Annotated[list[BlobContainer], NoDecode]


class IngestSettings(KafkaSettings, BlobSettings):
    model_config = service_config("ingest")

    output_topic: KafkaTopic = topics.BLOB_EVENTS
    # A watch pass publishes in one transaction (its state is saved only after it), so it
    # may stay open as long as a listing of the container takes.
    kafka_transaction_timeout_ms: int = Field(600_000, ge=1_000, le=900_000)

    # Event Hub: a connection string (a Kubernetes Secret), or a namespace
    # (<name>.servicebus.windows.net) reached with workload identity.
    eventhub_connection_string: SecretStr | None = None
    eventhub_namespace: str | None = None
    eventhub_name: str = ""
    eventhub_consumer_group: str = "$Default"
    # Checkpoints (and partition ownership) live in this container of the blob account
    # that BlobSettings names.
    checkpoint_container: BlobContainer = "dedup-eventhub-checkpoints"
    batch_size: int = Field(100, ge=1, le=1000)
    max_wait_seconds: float = Field(5.0, gt=0)

    # Which events go on (comma-separated): containers and content types (`image/*`,
    # `image/jpeg`); empty means all. A blob name prefix.
    containers: ContainerList = Field(default_factory=list)
    prefix: str = ""
    content_types: CommaList = Field(default_factory=list)

    # Back-fill and watch keep their position in small JSON files here.
    state_dir: Path = Path(".run/ingest")
    watch_interval_seconds: float = Field(0.5, gt=0)

    retry_backoff_seconds: float = Field(0.5, gt=0)
    retry_backoff_max_seconds: float = Field(30.0, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(9106, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("containers", "content_types", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("eventhub_connection_string", "eventhub_namespace", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def event_filter(self) -> EventFilter:
        return EventFilter(frozenset(self.containers), self.prefix, tuple(self.content_types))
