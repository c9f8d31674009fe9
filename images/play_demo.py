"""The demo's images through a running pipeline: `make demo`'s generated photos (a fixed
seed, so that two runs see the same files), uploaded to the stack's Azurite and published
as BlobCreated events the way `dedup demo` does, then every decision awaited on Kafka and
written as {file name: [kind, status, the kept copy's file name]}.

    python images/play_demo.py OUT.json            the stages already run (the chart's pods)
    python images/play_demo.py OUT.json --stages   start them as processes, as `make demo`
    python images/play_demo.py --compare A.json B.json

Kafka and Azurite from DEDUP_DEMO_* (images/play.sh --demo sets the private stack's).
Uses `dedup demo`'s own functions (apps/demo.py, apps/outcomes.py, apps/processes.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from apps.demo import ACCOUNT, DemoSettings, content_type, publish_events
from apps.outcomes import own_decisions, wait_for_decisions
from apps.pipeline import PIPELINE, Topology
from apps.processes import start_stages, stop_stages
from dedup.blob import BlobStore, open_service
from dedup.listing import Source
from dedup.synthetic import sample_set
from dedup.v1.decisions_pb2 import DecisionKind
from dedup.v1.features_pb2 import ImageStatus

SEED = 14


async def run(out: Path, stages: bool, originals: int, edits: int, patience: float) -> int:
    settings = DemoSettings()
    prefix = f"play-{time.strftime('%Y%m%d-%H%M%S')}"
    files = sample_set(originals, edits, seed=SEED)
    async with open_service(settings) as service:
        store = BlobStore(service, "demo")
        await store.ensure_container("uploads")
        for f in files:
            await store.upload("uploads", f"{prefix}/{f.name}", f.data, content_type(f.name))
        source = Source(
            account=service.account_name or ACCOUNT,
            account_url=service.url,
            container="uploads",
            topic=Topology().events,
            prefix=f"{prefix}/",
        )
        ids = await publish_events(store, settings, source)
    print(f"uploaded and published {len(ids)} images ({prefix}/)", flush=True)
    procs = start_stages(PIPELINE, Topology(), out.parent / "logs") if stages else []
    started = time.monotonic()
    try:
        decisions = await wait_for_decisions(settings, Topology().decisions, ids, patience, procs)
    finally:
        codes = stop_stages(procs)
    took = time.monotonic() - started
    names = {d.image_id: d.blob_name.removeprefix(f"{prefix}/") for d in decisions.values()}
    table = {
        names[i]: [
            DecisionKind.Name(d.kind),
            ImageStatus.Name(d.status),
            names.get(d.duplicate_of, d.duplicate_of),
        ]
        for i, d in decisions.items()
    }
    await asyncio.to_thread(out.write_text, json.dumps(dict(sorted(table.items())), indent=1))
    done = len(own_decisions(decisions))
    print(f"{done}/{len(ids)} images decided in {took:.0f} s -> {out}; exit codes {codes}")
    return 0 if done == len(ids) else 1


def compare(a: Path, b: Path) -> int:
    left, right = json.loads(a.read_text()), json.loads(b.read_text())
    differ = sorted(
        name for name in left.keys() | right.keys() if left.get(name) != right.get(name)
    )
    kinds: dict[str, int] = {}
    for row in left.values():
        kinds[row[0]] = kinds.get(row[0], 0) + 1
    print(f"{a.name}: {len(left)} decisions {kinds}; {b.name}: {len(right)} decisions")
    for name in differ:
        print(f"  {name}: {left.get(name)} vs {right.get(name)}")
    print("the same decisions" if not differ else f"{len(differ)} decisions differ")
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--stages", action="store_true")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"))
    parser.add_argument("--originals", type=int, default=16)
    parser.add_argument("--edits", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    options = parser.parse_args()
    if options.compare:
        return compare(*options.compare)
    if options.out is None:
        parser.error("OUT.json or --compare A B")
    options.out.parent.mkdir(parents=True, exist_ok=True)
    return asyncio.run(
        run(options.out, options.stages, options.originals, options.edits, options.timeout)
    )


if __name__ == "__main__":
    sys.exit(main())
