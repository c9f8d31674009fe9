"""The stages in flow order, with the topic each one reads and writes."""

from dataclasses import dataclass
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
