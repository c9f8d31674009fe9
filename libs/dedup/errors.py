"""Exceptions that tell the stage runtime how to treat a failure."""


class TransientError(Exception):
    """A dependency is unavailable (blob storage, Milvus, Triton): retry with backoff.

    The runtime retries these without limit and never dead-letters them: a dependency
    that stays down stops consumption (lag grows, alerts fire) instead of losing images.
    `dependency` names what is down ("blob", "milvus", "triton", "kafka"): its retries
    are logged as one outage (dedup.logs).
    """

    def __init__(self, message: str, *, dependency: str | None = None) -> None:
        super().__init__(message)
        self.dependency = dependency


class InvalidMessageError(ValueError):
    """A message parsed but breaks the schema's rules (e.g. no image id): dead-letter it."""
