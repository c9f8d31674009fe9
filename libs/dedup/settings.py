"""Settings shared by every service: one frozen pydantic class per service on top of this.

A service declares `class HasherSettings(RuntimeSettings)` with
`model_config = service_config("hasher")`, so its variables are `DEDUP_HASHER_<FIELD>`.
This is the only place that reads the environment.
"""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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


class RuntimeSettings(KafkaSettings):
    """Everything the stage runtime needs; a service adds its own fields."""

    input_topic: str
    output_topic: str
    # Consumer group; defaults to the service name.
    group_id: str | None = None

    batch_size: int = Field(64, ge=1, le=10_000)
    concurrency: int = Field(8, ge=1, le=1024)
    poll_timeout_seconds: float = Field(1.0, gt=0)
    # A message whose handler raises a non-transient error this many times is dead-lettered.
    max_attempts: int = Field(3, ge=1)
    retry_backoff_seconds: float = Field(0.2, gt=0)
    # Also the longest a stage waits, after a dependency is back, before it notices.
    retry_backoff_max_seconds: float = Field(10.0, gt=0)
    # After SIGTERM, how long the batch in hand may take before the process gives up on it
    # (uncommitted, so it is redelivered). Keep the pod's grace period longer than this.
    shutdown_timeout_seconds: float = Field(60.0, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
