"""The stages in flow order, with the topic each one reads and writes and its port; and
`Topology`, the topics, consumer groups and stores of one run of them (the demo, the
end-to-end tests).

One source for the wiring: each service's settings class (what the service itself runs
with). The pipeline is read from them; the chart's topics, the local Prometheus targets
and the images' ports are checked against it (tests/test_wiring.py, `make chart`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic_settings import BaseSettings

from dedup import topics
from dedup.settings import RuntimeSettings
from services.embedder.settings import EmbedderSettings
from services.hasher.settings import HasherSettings
from services.ingest.settings import IngestSettings
from services.matcher.settings import MatcherSettings
from services.ranker.settings import RankerSettings
from services.verifier.settings import VerifierSettings


@dataclass(frozen=True)
class StageInfo:
    name: str
    input_topic: str
    output_topic: str
    http_port: int  # the default metrics/probe port of the service on the local stack

    @property
    def module(self) -> str:
        return f"services.{self.name}"


def default(settings: type[BaseSettings], name: str) -> object:
    """A setting's default, as the service starts with it when nothing overrides it."""
    return settings.model_fields[name].default


def stage_of(name: str, settings: type[RuntimeSettings]) -> StageInfo:
    return StageInfo(
        name,
        str(default(settings, "input_topic")),
        str(default(settings, "output_topic")),
        int(str(default(settings, "http_port"))),
    )


PIPELINE = (
    stage_of("hasher", HasherSettings),
    stage_of("verifier", VerifierSettings),
    stage_of("embedder", EmbedderSettings),
    stage_of("matcher", MatcherSettings),
    stage_of("ranker", RankerSettings),
)
# The Event Hub consumer: it publishes into the first stage's input, it reads no topic.
INGEST_PORT = int(str(default(IngestSettings, "http_port")))


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
