"""What a stage is to its handler, and to whatever runs it: Kafka (``dedup.runtime.stage``)
or nothing at all (``dedup scan``). Light on purpose: no aiokafka, no health server."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from dedup.errors import TransientError

In = TypeVar("In", bound=Message)

# Errors worth waiting out: the dependency may come back.
TRANSIENT = (TransientError, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Output:
    """One message a handler asks to publish; `topic` defaults to the stage's output topic."""

    key: str
    message: Message
    topic: str | None = None


Handler = Callable[[In], Awaitable[Sequence[Output]]]


@dataclass(frozen=True)
class Stage(Generic[In]):
    """A service as the runtime sees it: its name, its input type, its pure handler."""

    name: str
    input_type: type[In]
    handle: Handler[In]
    # Groups reach this stage complete (the ranker): an OK image's sizes must be known.
    complete_input: bool = False


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Capped exponential backoff: base, 2*base, 4*base, ... at most cap (attempt >= 1)."""
    return float(min(cap, base * 2 ** min(attempt - 1, 30)))
