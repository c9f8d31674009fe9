"""Settings shared by every service: one frozen pydantic class per service on top of this.

A service declares `class HasherSettings(RuntimeSettings)` with
`model_config = service_config("hasher")`, so its variables are `DEDUP_HASHER_<FIELD>`.
This is the only place that reads the environment.
"""

import re
from typing import Annotated, Final, Literal, TypeVar

from pydantic import AfterValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# ---- resource names -----------------------------------------------------------------------
# Each service's own naming rules, checked at start-up: a bad name would otherwise pass
# here and fail later inside the client (MilvusException at start-up, a crash loop).

_MILVUS_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_KAFKA_TOPIC: Final = re.compile(r"[A-Za-z0-9._-]{1,249}")
_BLOB_CONTAINER: Final = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
# Azure's reserved containers: the account root, static website and analytics logs.
_BLOB_SPECIAL: Final = frozenset({"$root", "$web", "$logs"})


def milvus_collection_name(name: str) -> str:
    """Milvus: letters, digits and underscores, first a letter or an underscore, <= 255."""
    if not _MILVUS_NAME.fullmatch(name):
        raise ValueError(
            f"{name!r} is not a Milvus collection name: letters, digits and underscores "
            "only, starting with a letter or an underscore, at most 255 characters"
        )
    return name


def kafka_topic_name(name: str) -> str:
    """Kafka: 1..249 of [A-Za-z0-9._-], and not `.` or `..`."""
    if not _KAFKA_TOPIC.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{name!r} is not a Kafka topic name: 1 to 249 of letters, digits, '.', '_' "
            "and '-', and not '.' or '..'"
        )
    return name


def kafka_group_name(name: str) -> str:
    """Kafka allows any non-empty group id; we refuse blanks and control characters, which
    are always a templating mistake (and break the KEDA lag trigger and the metrics)."""
    if not name or name != name.strip() or any(not c.isprintable() for c in name):
        raise ValueError(
            f"{name!r} is not a usable Kafka consumer group: non-empty, printable, "
            "no leading or trailing blanks"
        )
    return name


def blob_container_name(name: str) -> str:
    """Azure Blob: 3..63 of lower-case letters, digits and single hyphens, starting and
    ending with a letter or a digit (or one of $root, $web, $logs)."""
    if name not in _BLOB_SPECIAL and not _BLOB_CONTAINER.fullmatch(name):
        raise ValueError(
            f"{name!r} is not an Azure blob container name: 3 to 63 lower-case letters, "
            "digits and single hyphens, starting and ending with a letter or a digit"
        )
    return name


MilvusCollection = Annotated[str, AfterValidator(milvus_collection_name)]
KafkaTopic = Annotated[str, AfterValidator(kafka_topic_name)]
KafkaGroup = Annotated[str, AfterValidator(kafka_group_name)]
BlobContainer = Annotated[str, AfterValidator(blob_container_name)]


def service_config(service: str) -> SettingsConfigDict:
    """The settings config of one service: env prefix DEDUP_<SERVICE>_, frozen, strict names."""
    return SettingsConfigDict(
        env_prefix=f"DEDUP_{service.upper()}_",
        frozen=True,
        extra="forbid",
        validate_default=True,
    )


class MilvusSettings(BaseSettings):
    """How to reach Milvus (the client is dedup.vectors.open_milvus)."""

    milvus_uri: str = "http://127.0.0.1:19530"
    # A Kubernetes Secret in production ("user:password" or an API key); none locally.
    milvus_token: SecretStr | None = None
    milvus_timeout_seconds: float = 10.0
    # Flush a collection after this many rows inserted since the last flush, or this many
    # seconds after the oldest row not yet flushed (dedup.vectors.FlushPolicy; 0: off).
    # Never per insert: each flush seals a segment. See bench/README.md, "The growth table".
    milvus_flush_rows: int = Field(0, ge=0)
    milvus_flush_seconds: float = Field(0.0, ge=0)


class KafkaSettings(BaseSettings):
    """How to reach Kafka (a local broker, a Strimzi cluster or Event Hubs' Kafka endpoint)."""

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    # Event Hubs: SASL_SSL + PLAIN, username "$ConnectionString", password the connection string.
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # Create missing topics at start-up (off where topics are managed, e.g. by Strimzi).
    kafka_create_topics: bool = True
    kafka_partitions: int = Field(4, ge=1)
    kafka_replication_factor: int = Field(1, ge=1)
    # How soon the group notices a consumer that died without leaving (SIGKILL, node loss).
    kafka_session_timeout_ms: int = Field(10_000, ge=6_000)
    # How long the group waits for a consumer to rejoin in a rebalance: a stage first
    # finishes and commits the records it is handling (it gives back the others).
    kafka_rebalance_timeout_ms: int = Field(60_000, ge=6_000)
    # The longest a stage's transaction (one batch's records and offsets) may stay open:
    # Kafka aborts one left open by a process that died, and until then the readers of
    # its partitions wait. Within the broker's transaction.max.timeout.ms.
    kafka_transaction_timeout_ms: int = Field(15_000, ge=1_000, le=900_000)


class RuntimeSettings(KafkaSettings):
    """Everything the stage runtime needs; a service adds its own fields."""

    input_topic: KafkaTopic
    output_topic: KafkaTopic
    # Consumer group; defaults to the service name.
    group_id: KafkaGroup | None = None

    # Records in hand at once (fetched, not yet committed), and handlers running at once.
    batch_size: int = Field(64, ge=1, le=10_000)
    concurrency: int = Field(8, ge=1, le=1024)
    poll_timeout_seconds: float = Field(1.0, gt=0)
    # A handled record waits this long for the records being handled beside it, so that they
    # go out in one transaction; never when it is the only one (an idle stage).
    commit_linger_seconds: float = Field(0.05, ge=0, le=5)
    # A message whose handler raises a non-transient error this many times is dead-lettered.
    max_attempts: int = Field(3, ge=1)
    retry_backoff_seconds: float = Field(0.2, gt=0)
    # Also the longest a stage waits, after a dependency is back, before it notices.
    retry_backoff_max_seconds: float = Field(10.0, gt=0)
    # After SIGTERM, how long the records in hand may take before the process gives up on
    # them (uncommitted, so they are redelivered). Keep the pod's grace period longer than this.
    shutdown_timeout_seconds: float = Field(60.0, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


Loaded = TypeVar("Loaded", bound=BaseSettings)


def settings_error(cls: type[BaseSettings], error: ValidationError) -> str:
    """One line per bad setting, each naming its environment variable."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "?"
        variable = f"{prefix}{field}".upper() if item["loc"] else "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"{variable}: {message}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(cls: type[Loaded]) -> Loaded:
    """A service's settings from the environment, or exit (status 1) with one clear
    message naming each bad variable: a restart would not fix it, so no traceback."""
    try:
        return cls()
    except ValidationError as error:
        raise SystemExit(settings_error(cls, error)) from None
