"""Prometheus metrics: prefix dedup_, base units, a small fixed set of labels.

Every metric carries `service` (the short name); never an image id as a label.
"""

from prometheus_client import Counter, Gauge, Histogram

# Stage runtime (every stage).
MESSAGES_CONSUMED = Counter(
    "dedup_messages_consumed_total", "Messages read from the input topic", ["service", "topic"]
)
MESSAGES_PRODUCED = Counter(
    "dedup_messages_produced_total", "Messages acknowledged by Kafka", ["service", "topic"]
)
HANDLER_SECONDS = Histogram(
    "dedup_handler_seconds",
    "Time the stage's handler spent on one message",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ERRORS = Counter(
    "dedup_errors_total",
    "Failures by kind: parse, transient, permanent, produce, commit",
    ["service", "kind"],
)
DLQ_MESSAGES = Counter(
    "dedup_dlq_messages_total", "Messages sent to a dead-letter topic", ["service", "topic"]
)
RETRIES = Counter("dedup_retries_total", "Handler or produce retries", ["service"])
CONSUMER_LAG = Gauge(
    "dedup_consumer_lag_messages",
    "Messages in the input topic not yet consumed",
    ["service", "topic", "partition"],
)
LAST_COMMIT = Gauge(
    "dedup_last_commit_timestamp_seconds", "Unix time of the last offset commit", ["service"]
)
INFLIGHT = Gauge("dedup_inflight_messages", "Messages being handled now", ["service"])

# Clients shared by several stages.
DOWNLOADED_BYTES = Counter(
    "dedup_downloaded_bytes_total", "Bytes read from blob storage", ["service"]
)
MILVUS_SECONDS = Histogram(
    "dedup_milvus_request_seconds",
    "Milvus call latency",
    ["service", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
MILVUS_ERRORS = Counter(
    "dedup_milvus_errors_total", "Failed Milvus calls", ["service", "operation"]
)

# Hasher: new images by outcome (ok, missing, corrupt, unsupported, too_large, bomb,
# empty). Deletions are not counted: the "unreadable images" alert divides by this.
IMAGES = Counter(
    "dedup_images_total", "New images the hasher handled, by status", ["service", "status"]
)

# Ingest: storage events in, by what became of them.
INGEST_EVENTS = Counter(
    "dedup_ingest_events_total",
    "Storage events read by ingest: published, filtered (out of scope) or invalid (to DLQ)",
    ["service", "source", "outcome"],
)

# Ranker: what it decided. A "duplicate found" is an image whose decision became DUPLICATE.
DUPLICATES_FOUND = Counter(
    "dedup_duplicates_found_total",
    "Images the ranker put into a cluster as a lesser copy",
    ["service"],
)
CLUSTER_SIZE = Histogram(
    "dedup_cluster_size",
    "Images in each duplicate cluster the ranker re-decided",
    ["service"],
    buckets=(2, 3, 4, 5, 8, 12, 20, 50, 100, 500, 1000, 10000),
)
DECISIONS = Counter(
    "dedup_decisions_total",
    "Decisions published: keep, duplicate, unique, unreadable, deleted",
    ["service", "decision"],
)

# Embedder: calls to the Triton inference server (one per batch of images).
TRITON_SECONDS = Histogram(
    "dedup_triton_request_seconds",
    "Triton inference call latency (one call embeds a batch of images)",
    ["service", "model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRITON_ERRORS = Counter("dedup_triton_errors_total", "Failed Triton calls", ["service"])
