"""The back-fill lister's rate on a container of at least 10,000 blobs in Azurite.

Fills (once; later runs reuse it) a container with small blobs uploaded concurrently,
then times, on the same container in the same run:

- listing alone: `BlobStore.list_pages` page by page (Azure's 5,000-blob pages);
- the back-fill: `dedup.listing.backfill`, exactly what `dedup ingest backfill` runs:
  list a page, make a BlobCreated event per blob, publish them to Kafka, wait for every
  ack, save the continuation marker, next page.

and prints blobs/s for each (events/s equals blobs/s in the back-fill: every blob is
published). At this rate a 3M-blob container takes 3,000,000 / rate seconds.

    .venv/bin/python bench/backfill_lister.py [--blobs 10000] [--container bench-lister]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from dedup.blob import BlobSettings, BlobStore, open_service
from dedup.listing import BackfillState, Source, backfill
from dedup.runtime.kafka import Publisher
from dedup.settings import KafkaSettings

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "dedup.bench.blob-events"
PAYLOAD = b"\xff\xd8\xff\xe0 bench blob, not an image"


async def count(store: BlobStore, container: str) -> int:
    return sum([len(page) async for page, _ in store.list_pages(container)])


async def fill(store: BlobStore, container: str, wanted: int, concurrency: int = 64) -> None:
    """Upload blobs until the container holds `wanted` (names are deterministic)."""
    await store.ensure_container(container)
    have = await count(store, container)
    if have >= wanted:
        print(f"container {container} already holds {have:,} blobs", file=sys.stderr)
        return
    print(f"uploading {wanted - have:,} small blobs to {container} (once)", file=sys.stderr)
    names = iter([f"img/{i // 1000:03d}/{i:07d}.jpg" for i in range(have, wanted)])
    started = time.perf_counter()

    async def worker() -> None:
        for name in names:  # shared iterator: each name once
            await store.upload(container, name, PAYLOAD, "image/jpeg")

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    took = time.perf_counter() - started
    print(f"  uploaded in {took:.1f}s ({(wanted - have) / took:,.0f} blobs/s)", file=sys.stderr)


async def run(blobs: int, container: str) -> None:
    settings = BlobSettings()
    kafka = KafkaSettings()
    async with open_service(settings) as service:
        store = BlobStore(service, "bench")
        await fill(store, container, blobs)

        started = time.perf_counter()
        pages = 0
        listed = 0
        async for page, _ in store.list_pages(container):
            pages += 1
            listed += len(page)
        list_seconds = time.perf_counter() - started

        source = Source(service.account_name or "", service.url, container, TOPIC)
        saves = 0
        with tempfile.TemporaryDirectory() as tmp:
            state_file = Path(tmp) / "state.json"

            def saved(state: BackfillState) -> None:
                nonlocal saves
                state.save(state_file)
                saves += 1

            async with Publisher(kafka) as publisher:
                await publisher.ensure_topics([TOPIC])
                started = time.perf_counter()
                state = await backfill(
                    store, publisher, source, BackfillState(container, ""), saved
                )
                fill_seconds = time.perf_counter() - started

    print(f"container {container}: {listed:,} blobs in {pages} pages (Azurite, 127.0.0.1)")
    print(f"  listing only:  {listed / list_seconds:9,.0f} blobs/s  ({list_seconds:.2f}s)")
    print(
        f"  back-fill:     {state.listed / fill_seconds:9,.0f} blobs/s listed,"
        f" {state.published / fill_seconds:,.0f} events/s published and acknowledged"
        f" ({fill_seconds:.2f}s, {saves} state saves) to {TOPIC}"
    )
    print(
        f"  a 3,000,000-blob container at this rate: about"
        f" {3_000_000 / (state.listed / fill_seconds) / 60:.0f} minutes"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blobs", type=int, default=10_000)
    parser.add_argument("--container", default="bench-lister")
    args = parser.parse_args(argv)
    print(f"$ {' '.join([os.path.relpath(sys.executable, ROOT), *sys.argv])}")
    asyncio.run(run(args.blobs, args.container))
    return 0


if __name__ == "__main__":
    sys.exit(main())
