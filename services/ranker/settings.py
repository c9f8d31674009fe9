"""The ranker's settings: environment variables DEDUP_RANKER_*."""

from pydantic import Field

from dedup import topics
from dedup.settings import KafkaTopic, RuntimeSettings, service_config


class RankerSettings(RuntimeSettings):
    model_config = service_config("ranker")

    input_topic: KafkaTopic = topics.MATCHED
    # Also the ranker's state: read back in full at start-up (see services/ranker/README.md).
    output_topic: KafkaTopic = topics.DECISIONS
    http_port: int = 9105
    # One graph, changed by one group at a time in input order: handling is in memory and
    # takes microseconds, so concurrency would buy nothing and cost the ordering.
    concurrency: int = Field(1, ge=1, le=1)
    # The start-up read of the decisions topic ends once the topic is this quiet.
    restore_idle_seconds: float = Field(1.0, gt=0)
    # Each image's last decision (its card) is kept in an SQLite file in
    # cards_folder ("": the system's temporary folder, the chart's /tmp emptyDir), made
    # afresh at every start, and the most recently used up to cards_memory_bytes in
    # memory too: the ranker's memory stays flat however many images there are
    # (services/ranker/README.md, "Memory"), the graph of linked images in that file too.
    # cards_in_memory: all of them and the graph in memory only.
    cards_folder: str = ""
    cards_memory_bytes: int = Field(4 * 1024 * 1024, ge=0)
    cards_in_memory: bool = False
