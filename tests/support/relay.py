"""A stage for testing the runtime on the real broker: BlobEvent in, CandidateGroup out.

It fails on purpose where asked: permanently for blob names with `fail_prefix`, and
transiently for the first `transient_failures` attempts at each image, so tests can
prove the DLQ and the retry paths. Run it with `python -m tests.support.relay`.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from dedup.errors import TransientError
from dedup.runtime.contract import Output, Stage
from dedup.runtime.stage import main
from dedup.settings import RuntimeSettings, service_config
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.groups_pb2 import CandidateGroup


class RelaySettings(RuntimeSettings):
    model_config = service_config("relay")
    input_topic: str = "test.relay.in"
    output_topic: str = "test.relay.out"
    http_port: int = 0
    delay_seconds: float = 0.0
    fail_prefix: str = "poison"
    transient_failures: int = 0


def relay_stage(settings: RelaySettings) -> Stage[BlobEvent]:
    attempts: Counter[str] = Counter()

    async def handle(event: BlobEvent) -> Sequence[Output]:
        await asyncio.sleep(settings.delay_seconds)
        if event.blob_name.startswith(settings.fail_prefix):
            raise ValueError(f"refusing {event.blob_name}")
        attempts[event.image_id] += 1
        if attempts[event.image_id] <= settings.transient_failures:
            raise TransientError(f"pretend the dependency is down for {event.image_id}")
        group = CandidateGroup(image_id=event.image_id, event=event, stages=["relay"])
        return [Output(event.image_id, group)]

    return Stage("relay", BlobEvent, handle)


@asynccontextmanager
async def open_relay(settings: RelaySettings) -> AsyncIterator[Stage[BlobEvent]]:
    yield relay_stage(settings)


if __name__ == "__main__":
    main("relay", RelaySettings(), open_relay)
