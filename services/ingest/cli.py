"""`dedup ingest`: blob events into Kafka, from an Event Hub, a back-fill or a watch.

    dedup ingest eventhub                 Event Grid -> Event Hub -> Kafka (production)
    dedup ingest backfill --container C   every blob of an existing container, resumable
    dedup ingest watch --container C      poll a container for new blobs (Azurite, demo)

Kafka, blob storage and filters come from DEDUP_INGEST_* (see services/ingest/settings.py);
options given here win. Events go to DEDUP_INGEST_OUTPUT_TOPIC (dedup.blob-events.v1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from dedup.blob import BlobStore, open_service
from dedup.errors import TransientError
from dedup.listing import BackfillState, Source, StateFileError, WatchState, backfill, poll
from dedup.logs import configure_cli_logging
from dedup.runtime.contract import backoff_seconds
from dedup.runtime.kafka import KafkaError, Publisher, transactional_id
from dedup.settings import load_settings
from services.ingest.progress import Progress
from services.ingest.settings import IngestSettings

log = logging.getLogger("dedup.ingest")

# Worth retrying from the saved state: the service may come back.
RETRYABLE = (
    TransientError,
    ServiceRequestError,
    ServiceResponseError,
    KafkaError,
    ConnectionError,
    TimeoutError,
)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def state_path(settings: IngestSettings, kind: str, container: str, prefix: str) -> Path:
    """A state file per container and prefix, under DEDUP_INGEST_STATE_DIR."""
    tag = hashlib.sha256(prefix.encode()).hexdigest()[:8] if prefix else "all"
    return settings.state_dir / f"{kind}-{container}-{tag}.json"


def overrides(ns: argparse.Namespace) -> dict[str, Any]:
    """Options that replace settings fields when given."""
    values: dict[str, Any] = {}
    if ns.topic:
        values["output_topic"] = ns.topic
    if ns.content_types is not None:
        values["content_types"] = ns.content_types
    return values


def account_of(service: Any) -> str:
    """The storage account name: with the container and blob name, the image's identity."""
    name = service.account_name
    if not name:
        raise ValueError(f"no storage account name in {service.url}")
    return str(name)


def source_of(
    settings: IngestSettings, account_url: str, account: str, ns: argparse.Namespace
) -> Source:
    return Source(
        account=account,
        account_url=account_url,
        container=ns.container,
        topic=settings.output_topic,
        prefix=ns.prefix,
        event_filter=settings.event_filter(),
        page_size=ns.page_size,
    )


async def run_backfill(settings: IngestSettings, ns: argparse.Namespace) -> int:
    path = ns.state or state_path(settings, "backfill", ns.container, ns.prefix)
    state = BackfillState.load(path, ns.container, ns.prefix)
    if state.done and not ns.restart:
        say(f"back-fill of {ns.container}/{ns.prefix}* is complete ({state.published:,} events)")
        say(f"  (state {path}; --restart to run it again)")
        return 0
    if ns.restart:
        state = BackfillState(ns.container, ns.prefix)
    if state.continuation:
        say(f"resuming after {state.listed:,} blobs (state {path})")
    progress = Progress(start=state.listed, expected=ns.expected)

    def saved(new: BackfillState) -> None:
        new.save(path)
        progress.update(new.listed, new.published, force=new.done)

    attempt = 0
    async with open_service(settings) as service:
        store = BlobStore(service, "ingest")
        source = source_of(settings, service.url, account_of(service), ns)
        async with Publisher(settings, transactional_id("ingest")) as publisher:
            await publisher.ensure_topics([settings.output_topic])
            while not state.done:
                try:
                    state = await backfill(store, publisher, source, state, saved)
                except RETRYABLE as error:
                    attempt += 1
                    delay = backoff_seconds(attempt, 0.5, 30.0)
                    say(f"\n{type(error).__name__}: {error}; resuming in {delay:.1f}s")
                    await asyncio.sleep(delay)
                    state = BackfillState.load(path, ns.container, ns.prefix)
    progress.close()
    say(f"back-fill of {ns.container}/{ns.prefix}*: {state.listed:,} blobs listed,")
    say(f"  {state.published:,} events published to {settings.output_topic} (state {path})")
    return 0


async def run_watch(settings: IngestSettings, ns: argparse.Namespace) -> int:
    path = ns.state or state_path(settings, "watch", ns.container, ns.prefix)
    state = WatchState.load(path, ns.container, ns.prefix)
    interval = ns.interval or settings.watch_interval_seconds
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    attempt = 0
    async with open_service(settings) as service:
        store = BlobStore(service, "ingest")
        source = source_of(settings, service.url, account_of(service), ns)
        async with Publisher(settings, transactional_id("ingest")) as publisher:
            await publisher.ensure_topics([settings.output_topic])
            say(f"watching {ns.container}/{ns.prefix}* every {interval}s (state {path})")
            while not stop.is_set():
                try:
                    state, published = await poll(store, publisher, source, state)
                    state.save(path)
                    attempt = 0
                    if published:
                        say(f"published {published} events to {settings.output_topic}")
                except RETRYABLE as error:
                    attempt += 1
                    say(f"{type(error).__name__}: {error}; retrying")
                    interval_now = backoff_seconds(attempt, 0.5, 30.0)
                else:
                    interval_now = interval
                if ns.once:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval_now)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dedup ingest",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    sub = p.add_subparsers(dest="command", required=True)

    def listing(name: str, about: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=about, description=about)
        cmd.add_argument("--container", required=True, help="the blob container (required)")
        cmd.add_argument(
            "--prefix", default="", help="only blobs whose names start so (default: all)"
        )
        cmd.add_argument(
            "--state",
            type=Path,
            help="state file (default: DEDUP_INGEST_STATE_DIR/<command>-<container>-<prefix>"
            ".json, .run/ingest/ unless set)",
        )
        cmd.add_argument(
            "--topic",
            help="publish here (default: DEDUP_INGEST_OUTPUT_TOPIC, dedup.blob-events.v1)",
        )
        cmd.add_argument(
            "--content-types",
            type=lambda v: [t.strip() for t in v.split(",") if t.strip()],
            help="comma-separated, e.g. 'image/*' (default: DEDUP_INGEST_CONTENT_TYPES, all)",
        )
        return cmd

    fill = listing("backfill", "publish an event for every blob of a container (resumable)")
    fill.add_argument(
        "--expected", type=int, help="about how many blobs: shows an ETA (default: no ETA)"
    )
    fill.add_argument("--page-size", type=int, help="blobs per listing page (default: 5000)")
    fill.add_argument(
        "--restart",
        action="store_true",
        help="start again from the first blob (default: go on from the state file)",
    )
    watch = listing("watch", "poll a container and publish events for new or changed blobs")
    watch.add_argument(
        "--interval",
        type=float,
        help="seconds between polls (default: DEDUP_INGEST_WATCH_INTERVAL_SECONDS, 2)",
    )
    watch.add_argument(
        "--once", action="store_true", help="one poll, then exit (default: poll until stopped)"
    )
    watch.add_argument("--page-size", type=int, help="blobs per listing page (default: 5000)")
    sub.add_parser(
        "eventhub",
        help="consume Event Grid events from an Event Hub",
        description="Consume Event Grid's BlobCreated and BlobDeleted events from an Event "
        "Hub and publish them to Kafka, checkpointing in blob storage: the production "
        "ingest, the same as `python -m services.ingest`. It takes no options: everything "
        "comes from DEDUP_INGEST_* (DEDUP_INGEST_EVENTHUB_CONNECTION_STRING or "
        "DEDUP_INGEST_EVENTHUB_NAMESPACE with a workload identity, DEDUP_INGEST_EVENTHUB_NAME, "
        "DEDUP_INGEST_EVENTHUB_CONSUMER_GROUP ($Default), DEDUP_INGEST_CHECKPOINT_CONTAINER "
        "(dedup-eventhub-checkpoints), Kafka's and blob storage's settings); see "
        "services/ingest/README.md. It runs until SIGTERM or Ctrl-C; its health and metrics "
        "are on DEDUP_INGEST_HTTP_PORT (9106).",
    )
    return p


COMMANDS: dict[str, Callable[[IngestSettings, argparse.Namespace], Any]] = {
    "backfill": run_backfill,
    "watch": run_watch,
}


def main(args: list[str] | None = None) -> int:
    ns = parser().parse_args(args)
    if ns.command == "eventhub":
        from services.ingest.eventhub import main as consume

        consume()
        return 0
    settings = load_settings(IngestSettings).model_copy(update=overrides(ns))
    configure_cli_logging()
    try:
        code: int = asyncio.run(COMMANDS[ns.command](settings, ns))
    except StateFileError as error:  # restarting would not help: say so once, exit 2
        say(f"dedup ingest {ns.command}: {error}")
        return 2
    return code
