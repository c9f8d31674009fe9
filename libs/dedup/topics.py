"""Topic names: the one place they are spelled out."""

BLOB_EVENTS = "dedup.blob-events.v1"
HASHED = "dedup.hashed.v1"
VERIFIED = "dedup.verified.v1"
EMBEDDED = "dedup.embedded.v1"
MATCHED = "dedup.matched.v1"
# Compacted and keyed by image id: it always holds the latest decision of every image.
DECISIONS = "dedup.decisions.v1"

COMPACTED = frozenset({DECISIONS})


def dead_letter(topic: str) -> str:
    """The dead-letter topic of `topic`: messages that cannot be parsed or keep failing."""
    return f"{topic}.dlq"
