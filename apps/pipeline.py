"""The stages in flow order, with the topic each one reads and writes; and `Topology`, the
topics, consumer groups and stores of one run of them (the demo, the end-to-end tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.util import find_spec

from dedup import topics


@dataclass(frozen=True)
class StageInfo:
    name: str
    input_topic: str
    output_topic: str
    http_port: int  # the default metrics/probe port of the service on the local stack

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    def is_built(self) -> bool:
        """Whether the service has an entry point in this checkout."""
        return (
            find_spec(self.module) is not None and find_spec(f"{self.module}.__main__") is not None
        )


PIPELINE = (
    StageInfo("hasher", topics.BLOB_EVENTS, topics.HASHED, 9101),
    StageInfo("verifier", topics.HASHED, topics.VERIFIED, 9102),
    StageInfo("embedder", topics.VERIFIED, topics.EMBEDDED, 9103),
    StageInfo("matcher", topics.EMBEDDED, topics.MATCHED, 9104),
    StageInfo("ranker", topics.MATCHED, topics.DECISIONS, 9105),
)


def runnable_stages() -> list[StageInfo]:
    """The stages built in this checkout, from the first up to the first one missing.

    A stage after a gap would wait for input that never comes.
    """
    stages: list[StageInfo] = []
    for stage in PIPELINE:
        if not stage.is_built():
            break
        stages.append(stage)
    return stages


@dataclass(frozen=True)
class Topology:
    """The topics, consumer groups and stores of one run of the five services.

    `Topology()` is the services' own defaults (what `make demo` runs); `private(tag)`
    gives a test topics, groups, Milvus collections and a working container of its own.
    The metrics ports stay the defaults (9101-9105), which Prometheus scrapes.
    """

    topic: dict[str, str] = field(default_factory=dict)  # stage input topics, and "decisions"
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # stage -> extra environment

    @classmethod
    def private(cls, tag: str) -> Topology:
        names = {s.input_topic: f"e2e.{tag}.{s.input_topic}" for s in PIPELINE}
        names[topics.DECISIONS] = f"e2e.{tag}.{topics.DECISIONS}"
        env = {
            s.name: {
                f"DEDUP_{s.name.upper()}_INPUT_TOPIC": names[s.input_topic],
                f"DEDUP_{s.name.upper()}_OUTPUT_TOPIC": names[s.output_topic],
                f"DEDUP_{s.name.upper()}_GROUP_ID": f"{s.name}-{tag}",
                f"DEDUP_{s.name.upper()}_LOG_LEVEL": "WARNING",
            }
            for s in PIPELINE
        }
        env["hasher"] |= {
            "DEDUP_HASHER_COLLECTION": f"e2e_{tag}_hashes",
            "DEDUP_HASHER_WORKING_CONTAINER": f"e2e-working-{tag}",
        }
        env["embedder"]["DEDUP_EMBEDDER_COLLECTION"] = f"e2e_{tag}_embeddings"
        return cls(names, env)

    def input_topic(self, stage: StageInfo) -> str:
        return self.topic.get(stage.input_topic, stage.input_topic)

    def output_topic(self, stage: StageInfo) -> str:
        return self.topic.get(stage.output_topic, stage.output_topic)

    @property
    def events(self) -> str:
        return self.topic.get(topics.BLOB_EVENTS, topics.BLOB_EVENTS)

    @property
    def decisions(self) -> str:
        return self.topic.get(topics.DECISIONS, topics.DECISIONS)
