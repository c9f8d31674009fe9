"""The stage runtime: consume -> parse -> handle -> produce and commit.

Exactly once on the topics: records are handled as they are fetched, and as soon as a
partition's oldest records in hand are handled, their outputs and their input offsets go
in one Kafka transaction (a record handled early waits for those before it, not for a
batch); every consumer reads committed records only. A crash or a failure anywhere means
the uncommitted records are redone, never lost, and the records of the attempt that
failed are never seen. Handlers are idempotent (keyed by image id), so redoing one is
harmless to the state they keep (Milvus, the ranker's clusters).

Failures:
- a message that does not parse, or breaks the schema's rules (dedup.invariants: key ==
  image id, sizes, finite scores in range, ...), goes to `<topic>.dlq` at once, with
  every broken rule in its headers;
- a `TransientError` (or a timeout / connection error) is retried with capped
  exponential backoff for as long as it lasts: a dependency that is down stops the
  stage (lag grows), it never drops the message;
- any other exception is retried `max_attempts` times, then dead-lettered.

SIGTERM (or SIGINT) stops fetching, finishes and commits the records being handled,
gives back the others (never committed: they are redelivered) and exits. If those being
handled cannot finish within `shutdown_timeout_seconds` (a dependency is down), the
process exits without committing them, and they are redelivered to the next consumer.
During start-up (waiting for Kafka) nothing is in hand: the process exits at once. A
signal that arrives before the event loop's handler is installed is kept and acted on (as
PID 1 of a container, a process never sees a signal it has no handler for).
"""

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiokafka import (
    AIOKafkaConsumer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError

from dedup import invariants, metrics
from dedup.errors import InvalidMessageError
from dedup.health import Health, serve_health
from dedup.logs import check_outages, configure_logging, dependency_of_error, dependency_ok
from dedup.memory import return_large_blocks
from dedup.runtime.contract import TRANSIENT, In, Output, Stage, backoff_seconds
from dedup.runtime.kafka import (
    Outgoing,
    RenewableProducer,
    ensure_topics,
    make_consumer,
    make_producer,
    send_transaction,
    transactional_id,
    until_offsets_visible,
)
from dedup.runtime.signals import STOP_SIGNALS, early_signal, keep_early_signals
from dedup.settings import RuntimeSettings
from dedup.topics import dead_letter

log = logging.getLogger("dedup.runtime")

# Longest error text carried in a dead-letter header.
MAX_ERROR_HEADER = 2000


async def no_release(partitions: set[TopicPartition]) -> None:
    return None


class FinishInHandOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """A rebalance (a replica joins or leaves) first gives back the records in hand that
    no handler has started (`give_back`), then waits until the ones being handled are
    produced and committed: the partitions' next owner starts after them, and fetches the
    given-back ones again (a new assignment starts from the committed offsets). Without
    the wait, the next owner would publish them too (a transaction's offset commit does
    not check the group's generation in the protocol aiokafka speaks). Then it waits
    until the group reads those commits (`release`), or the next owner would start
    before them."""

    def __init__(self) -> None:
        self.nothing_in_hand = asyncio.Event()
        self.nothing_in_hand.set()
        self.revoking = False
        self.give_back: Callable[[], None] = lambda: None
        self.release: Callable[[set[TopicPartition]], Awaitable[None]] = no_release

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revoking = True
        try:
            self.give_back()
            await self.nothing_in_hand.wait()
            await self.release(revoked)
        finally:
            self.revoking = False

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None


@dataclass
class Slot:
    """One record in hand: its offset, whether a handler took it up (or it was given
    back), and once handled what it produces and when it finished."""

    offset: int
    started: bool = False
    given_back: bool = False
    outgoing: list[Outgoing] | None = None
    finished: int = 0


class Ledger:
    """The records in hand, in offset order per partition. What may be committed is each
    partition's handled prefix: a record handled early waits for those before it, so a
    transaction always holds the outputs of exactly the offsets it commits.

    Outputs go out in the order their handlers finished, whatever their partitions: the
    ranker's outputs for one image may come from several images' groups (the latest
    must land last), and its handler finishes in the order its state changed."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, deque[Slot]] = {}
        self._finished = itertools.count(1)
        self.in_hand = 0  # fetched and not yet committed (or given back), publishing included
        self.busy = 0  # started and not finished

    def start(self, slot: Slot) -> None:
        slot.started = True
        self.busy += 1

    def finish(self, slot: Slot, outgoing: list[Outgoing]) -> None:
        slot.outgoing, slot.finished = outgoing, next(self._finished)
        self.busy -= 1

    def add(self, tp: TopicPartition, offset: int) -> Slot:
        slot = Slot(offset)
        self._parts.setdefault(tp, deque()).append(slot)
        self.in_hand += 1
        return slot

    def take_ready(self) -> tuple[list[Outgoing], dict[TopicPartition, int], int]:
        """The handled prefixes, taken out: their outputs in offset order, the offsets to
        commit, and how many records they are (still in hand until `committed`)."""
        ready: list[Slot] = []
        offsets: dict[TopicPartition, int] = {}
        for tp, slots in self._parts.items():
            while slots and slots[0].outgoing is not None:
                slot = slots.popleft()
                ready.append(slot)
                offsets[tp] = slot.offset + 1
        ready.sort(key=lambda slot: slot.finished)
        outgoing = [o for slot in ready for o in slot.outgoing or ()]
        return outgoing, offsets, len(ready)

    def committed(self, count: int) -> None:
        self.in_hand -= count

    def give_back(self) -> int:
        """Drop each partition's tail of records no handler has started: they are never
        committed, so they are fetched again. Only a tail: nothing after a given-back
        record may be committed. How many were given back."""
        count = 0
        for slots in self._parts.values():
            while slots and not slots[-1].started:
                slots.pop().given_back = True
                count += 1
        self.in_hand -= count
        return count


class Abandoned(Exception):
    """Shutdown ran out of time while records were still retrying: leave them uncommitted.
    Or a stop came during start-up, when nothing is in hand."""


T = TypeVar("T")


async def until_stopped(call: Awaitable[T], stop: asyncio.Event) -> T:
    """Await `call`; a stop before it returns cancels it and raises Abandoned (start-up:
    connecting, waiting for a dependency, with nothing in hand to finish)."""
    task = asyncio.ensure_future(call)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stopped.cancel()
    if stop.is_set():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise Abandoned
    return task.result()


def parse_message(input_type: type[In], data: bytes | None) -> In:
    """Decode a record's value; raise DecodeError or InvalidMessageError if it is unusable."""
    if not data:
        raise InvalidMessageError("empty message")
    message = input_type()
    message.ParseFromString(data)
    # Every message that crosses a topic is keyed by image id (the type checker cannot know).
    has_id_field = "image_id" in message.DESCRIPTOR.fields_by_name
    if has_id_field and not getattr(message, "image_id"):  # noqa: B009
        raise InvalidMessageError(f"{input_type.__name__} without image_id")
    return message


def dead_letter_record(
    record: ConsumerRecord[bytes, bytes], stage: str, kind: str, error: BaseException, attempts: int
) -> Outgoing:
    """The record as received, sent to its topic's DLQ with the error in its headers."""
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR_HEADER]
    headers = (
        ("dedup-error", text.encode()),
        ("dedup-error-kind", kind.encode()),
        ("dedup-stage", stage.encode()),
        ("dedup-source-topic", record.topic.encode()),
        ("dedup-source-partition", str(record.partition).encode()),
        ("dedup-source-offset", str(record.offset).encode()),
        ("dedup-attempts", str(attempts).encode()),
    )
    return Outgoing(dead_letter(record.topic), record.key, record.value or b"", headers)


@dataclass
class StageRunner(Generic[In]):
    stage: Stage[In]
    settings: RuntimeSettings
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    health: Health = field(default_factory=Health)
    _deadline: float | None = None

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def group(self) -> str:
        return self.settings.group_id or self.name

    async def run(self) -> None:
        """Fetch while there is room in hand, handle each record as it comes (bounded by
        `concurrency`), and commit every handled prefix as soon as it is ready, with its
        outputs, in one transaction: an image waits for the records before it in its
        partition, never for a whole batch."""
        s = self.settings
        try:
            await self._retry_forever("kafka", lambda: ensure_topics(s, self._topics()))
        except Abandoned:
            log.info("stopped before start-up finished")
            return
        gate = FinishInHandOnRevoke()
        consumer = make_consumer(s, s.input_topic, self.group, gate)
        producer = RenewableProducer(
            s, functools.partial(make_producer, transactional_id=transactional_id(self.group))
        )
        try:
            await self._retry_forever("kafka", consumer.start)
            await self._retry_forever("kafka", producer.get)
        except Abandoned:
            await producer.stop()
            await consumer.stop()
            log.info("stopped before start-up finished")
            return
        self.health.ready, self.health.detail = True, "consuming"
        log.info(
            "consuming %s -> %s", s.input_topic, s.output_topic, extra={"topic": s.input_topic}
        )
        ledger = Ledger()
        handled, committed = asyncio.Event(), asyncio.Event()
        handlers = asyncio.Semaphore(s.concurrency)

        async def handle(record: ConsumerRecord[bytes, bytes], slot: Slot) -> None:
            async with handlers:
                if slot.given_back:
                    return
                ledger.start(slot)
                ledger.finish(slot, await self._process(record))
            handled.set()

        def settled() -> None:
            if not ledger.in_hand:
                gate.nothing_in_hand.set()
            committed.set()

        def give_back() -> None:
            if ledger.give_back():
                settled()

        gate.give_back = give_back
        unconfirmed: dict[TopicPartition, int] = {}  # committed, not yet read back

        async def release(partitions: set[TopicPartition]) -> None:
            """Before giving partitions up: wait until the group reads what was committed
            for them, so their next owner starts after it."""
            mine = {tp: unconfirmed.pop(tp) for tp in partitions if tp in unconfirmed}
            try:
                async with asyncio.timeout(s.kafka_session_timeout_ms / 1000):
                    await until_offsets_visible(consumer, mine)
            except (KafkaError, TimeoutError):
                log.warning(
                    "the group does not read the last commits yet; their records may be redone",
                    extra={"dependency": "kafka"},
                )

        gate.release = release

        async def commit_ready() -> None:
            while True:
                await handled.wait()
                if ledger.busy and s.commit_linger_seconds:
                    # Others are about to finish: one transaction for them all (a
                    # transaction costs the broker as much as its records).
                    await asyncio.sleep(s.commit_linger_seconds)
                handled.clear()
                outgoing, offsets, count = ledger.take_ready()
                if count:
                    await self._publish(producer, outgoing, offsets)
                    unconfirmed.update(offsets)
                    metrics.LAST_COMMIT.labels(self.name).set(time.time())
                    ledger.committed(count)
                    settled()

        async def until_committed() -> None:
            committed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(committed.wait(), s.poll_timeout_seconds)

        try:
            async with asyncio.TaskGroup() as tasks:
                committer = tasks.create_task(commit_ready())
                while not self.stop.is_set():
                    room = s.batch_size - ledger.in_hand
                    if room <= 0 or gate.revoking:
                        await until_committed()
                        continue
                    batch = await consumer.getmany(
                        timeout_ms=int(s.poll_timeout_seconds * 1000), max_records=room
                    )
                    for part in batch.values():
                        for record in part:
                            metrics.MESSAGES_CONSUMED.labels(self.name, record.topic).inc()
                            gate.nothing_in_hand.clear()
                            tp = TopicPartition(record.topic, record.partition)
                            tasks.create_task(handle(record, ledger.add(tp, record.offset)))
                    await self._update_lag(consumer)
                    check_outages()
                # Stopping: finish, produce and commit what is being handled, give back
                # the rest (the next consumer fetches it), then end.
                give_back()
                while ledger.in_hand:
                    await until_committed()
                await release(set(unconfirmed))
                committer.cancel()
        except BaseExceptionGroup as group:
            _, failed = group.split(Abandoned)
            if failed is not None:  # a failure of its own: raised as itself, not in a group
                raise (failed.exceptions[0] if len(failed.exceptions) == 1 else failed) from None
            log.warning("shutdown timed out; the records in hand stay uncommitted")
        finally:
            self.health.ready, self.health.detail = False, "stopping"
            await producer.stop()
            await consumer.stop()
            log.info("stopped")

    def _topics(self) -> list[str]:
        s = self.settings
        return [s.input_topic, s.output_topic, dead_letter(s.input_topic)]

    async def _process(self, record: ConsumerRecord[bytes, bytes]) -> list[Outgoing]:
        context = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        try:
            message = parse_message(self.stage.input_type, record.value)
            invariants.check(message, record.key, complete=self.stage.complete_input)
        except (DecodeError, InvalidMessageError) as error:
            metrics.ERRORS.labels(self.name, "parse").inc()
            log.warning("invalid message to DLQ: %s", error, extra=context)
            return [self._to_dlq(record, "parse", error, 1)]
        context["image_id"] = getattr(message, "image_id", None)
        failures = 0
        transient_attempts = 0
        down: set[str] = set()  # the dependencies this message waited for
        while True:
            metrics.INFLIGHT.labels(self.name).inc()
            started = time.perf_counter()
            try:
                outputs = await self.stage.handle(message)
                for dependency in down:
                    dependency_ok(dependency)
                return [self._serialise(o) for o in outputs]
            except TRANSIENT as error:
                transient_attempts += 1
                dependency = dependency_of_error(error)
                down.add(dependency)
                metrics.ERRORS.labels(self.name, "transient").inc()
                log.warning(
                    "transient failure, will retry: %s",
                    error,
                    extra=context | {"attempt": transient_attempts, "dependency": dependency},
                )
                delay = self._backoff(transient_attempts)
            except Exception as error:
                failures += 1
                metrics.ERRORS.labels(self.name, "permanent").inc()
                if failures >= self.settings.max_attempts:
                    log.exception("handler keeps failing; message to DLQ", extra=context)
                    return [self._to_dlq(record, "permanent", error, failures)]
                log.warning(
                    "handler failed, will retry: %s", error, extra=context | {"attempt": failures}
                )
                delay = self._backoff(failures)
            finally:
                metrics.INFLIGHT.labels(self.name).dec()
                metrics.HANDLER_SECONDS.labels(self.name).observe(time.perf_counter() - started)
            metrics.RETRIES.labels(self.name).inc()
            await self._sleep(delay)

    def _serialise(self, output: Output) -> Outgoing:
        return Outgoing(
            output.topic or self.settings.output_topic,
            output.key.encode(),
            output.message.SerializeToString(),
        )

    def _to_dlq(
        self, record: ConsumerRecord[bytes, bytes], kind: str, error: BaseException, attempts: int
    ) -> Outgoing:
        metrics.DLQ_MESSAGES.labels(self.name, record.topic).inc()
        return dead_letter_record(record, self.name, kind, error, attempts)

    async def _publish(
        self,
        producer: RenewableProducer,
        outgoing: list[Outgoing],
        offsets: dict[TopicPartition, int],
    ) -> None:
        """Send the batch's records and commit its offsets in one transaction, the whole
        of it retried until it lands. A failed attempt is aborted, so no reader sees its
        records: a retry (or a crash and redelivery) never publishes anything twice."""
        s = self.settings
        attempt = 0
        while True:
            try:
                sender = await producer.get()
                await asyncio.wait_for(
                    send_transaction(sender, outgoing, offsets, self.group),
                    s.kafka_transaction_timeout_ms / 1000,
                )
            except (KafkaError, TimeoutError) as error:
                producer.broken = True  # its successor aborts what it left open
                attempt += 1
                metrics.ERRORS.labels(self.name, "produce").inc()
                metrics.RETRIES.labels(self.name).inc()
                log.warning(
                    "publishing a batch of %d records failed, will retry it (%s)",
                    len(outgoing),
                    f"{type(error).__name__}: {error}",
                    extra={"dependency": "kafka", "attempt": attempt},
                )
                await self._sleep(self._backoff(attempt))
                continue
            for o in outgoing:
                metrics.MESSAGES_PRODUCED.labels(self.name, o.topic).inc()
            dependency_ok("kafka")
            return

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(KafkaError, asyncio.TimeoutError):
                position = await asyncio.wait_for(consumer.position(tp), timeout=1)
                metrics.CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition)).set(
                    max(0, highwater - position)
                )

    async def _retry_forever(self, what: str, call: Callable[[], Awaitable[object]]) -> None:
        """Start-up calls: wait for a dependency that is not there yet. A stop ends the
        wait, and the call in progress, at once (Abandoned): no batch is in hand yet."""
        attempt = 0
        while True:
            try:
                await self._unless_stopped(call())
                dependency_ok(what)
                return
            except (KafkaError, *TRANSIENT) as error:
                attempt += 1
                self.health.detail = f"waiting for {what}: {error}"
                log.warning(
                    "waiting for %s: %s",
                    what,
                    error,
                    extra={"attempt": attempt, "dependency": what},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self._backoff(attempt))

    async def _unless_stopped(self, call: Awaitable[object]) -> None:
        await until_stopped(call, self.stop)

    def _backoff(self, attempt: int) -> float:
        s = self.settings
        return backoff_seconds(attempt, s.retry_backoff_seconds, s.retry_backoff_max_seconds)

    async def _sleep(self, seconds: float) -> None:
        """Back off, unless shutdown has run out of patience for this batch."""
        if self.stop.is_set():
            if self._deadline is None:
                self._deadline = time.monotonic() + self.settings.shutdown_timeout_seconds
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise Abandoned
            seconds = min(seconds, remaining)
        await asyncio.sleep(seconds)


def request_stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    early = early_signal()
    if early is not None:
        log.info("stopping: %s arrived during start-up", early.name)
        stop.set()


S = TypeVar("S", bound=RuntimeSettings)
# Builds a service's stage with its clients (Milvus, blob storage, Triton) and closes them.
OpenStage = Callable[[S], AbstractAsyncContextManager[Stage[Any]]]


async def serve(name: str, settings: S, open_stage: OpenStage[S]) -> None:
    """Run a service until SIGTERM: probes and metrics first, then its stage on Kafka.

    A dependency that is not reachable at start-up is waited for (readiness stays false)
    rather than crashing the process into a restart loop.
    """
    health = Health()
    stop = asyncio.Event()
    request_stop_on_signals(stop)
    http = await serve_health(health, settings.http_host, settings.http_port)
    attempt = 0
    try:
        while not stop.is_set():
            try:
                async with contextlib.AsyncExitStack() as opened:
                    # Opening waits for the stage's own dependencies (Milvus, blob storage,
                    # Triton): a stop meanwhile ends it.
                    stage = await until_stopped(
                        opened.enter_async_context(open_stage(settings)), stop
                    )
                    await StageRunner(stage, settings, stop, health).run()
                return
            except Abandoned:
                log.info("stopped before start-up finished")
                return
            except TRANSIENT as error:
                attempt += 1
                health.detail = f"waiting for a dependency: {error}"
                log.warning(
                    "cannot start yet: %s",
                    error,
                    extra={"attempt": attempt, "dependency": dependency_of_error(error)},
                )
                delay = backoff_seconds(
                    attempt, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
    finally:
        await http.cleanup()


def main(name: str, settings: S, open_stage: OpenStage[S]) -> None:
    """The entry point of a service's `__main__`."""
    keep_early_signals()
    return_large_blocks()  # before any thread starts
    configure_logging(name, settings.log_level)
    asyncio.run(serve(name, settings, open_stage))
