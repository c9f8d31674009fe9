"""The bad-input corpus (tests/support/bad_inputs.py) through the deployed pipeline:
uploaded to Azurite under its hostile names, `dedup ingest watch`, the five services as
their own processes. Every file gets one decision with its typed status and a reason,
copies merge only with copies of the same picture, and no service falls over: each is
alive to the end, stops with 0 on SIGTERM, and logs no traceback."""

from __future__ import annotations

import asyncio
import csv
import time
import uuid
from pathlib import Path

from apps.pipeline import PIPELINE, Topology
from dedup.blob import BlobInfo, BlobSettings, open_service
from dedup.decisions import latest_decisions
from dedup.events import created_from_listing, image_id
from dedup.report import gallery, model
from dedup.runtime.kafka import Publisher
from dedup.settings import KafkaSettings
from tests.e2e.test_pipeline import ACCOUNT, run, upload_and_run
from tests.support import bad_inputs


async def publish_unstored(topic: str, container: str, cases: list[bad_inputs.Case]) -> None:
    """BlobCreated events for names no container can hold (a forged or buggy producer):
    the hasher must say the blob is missing, not fail on the name."""
    async with open_service(BlobSettings()) as service, Publisher(KafkaSettings()) as out:
        await out.ensure_topics([topic])
        for c in cases:
            info = BlobInfo(c.name, len(c.data), '"0x1"', "image/jpeg", time.time())
            event = created_from_listing(ACCOUNT, str(service.url), container, info)
            await out.publish(topic, event.image_id, event)


def test_every_bad_input_gets_a_decision_and_no_service_falls(tmp_path: Path) -> None:
    cases = bad_inputs.cases()
    tag = uuid.uuid4().hex[:10]
    container, topology = f"e2e-uploads-{tag}", Topology.private(tag)
    topology.env["hasher"] |= bad_inputs.HASHER_ENV
    files = {c.name: (c.data, c.group) for c in cases if c.storable}
    by_id = {image_id(ACCOUNT, container, c.name): c for c in cases}

    started = time.monotonic()
    unstored = [c for c in cases if not c.storable]
    asyncio.run(publish_unstored(topology.events, container, unstored))
    _, codes, _ = asyncio.run(upload_and_run(tag, files, topology, tmp_path, scrape=False))
    # It waited for the uploaded files' decisions; the unstored ones were published first.
    decisions = asyncio.run(
        latest_decisions(KafkaSettings(), topology.decisions, wanted=set(by_id))
    )
    print(f"pipeline over {len(cases)} bad inputs: {time.monotonic() - started:.1f} s")
    logs = {p.stem: p.read_text() for p in sorted((tmp_path / "logs").glob("*.log"))}
    tails = "\n".join(f"--- {name}\n{text[-2000:]}" for name, text in logs.items())

    rows = {by_id[i].name: model.row(d) for i, d in decisions.items()}
    # Nothing silently dropped: every image's own decision, by the name it was uploaded as.
    missing = sorted(
        c.name for c in cases if c.name not in rows or rows[c.name].status == "pending"
    )
    assert not missing, f"no decision for {missing}\n{tails}"
    print(bad_inputs.table([(c.kind, r.status, r.decision, r.reason) for c in cases
                            if (r := rows[c.name])]))  # fmt: skip
    for c in cases:
        r = rows[c.name]
        assert (r.status, c.kind) == (c.status, c.kind), r
        assert r.reason.strip(), r
        assert (r.decision == model.UNREADABLE) == (c.status != "ok"), r
    bad_inputs.assert_clusters_are_copies({n: r.cluster for n, r in rows.items()}, cases)

    # No restart: every service ran to the SIGTERM and stopped cleanly, without a crash.
    assert codes == [0] * len(PIPELINE), tails
    assert set(logs) == {s.name for s in PIPELINE}
    for name, text in logs.items():
        for bad in ("Traceback", "to DLQ", "handler failed"):
            assert bad not in text, f"{name}: {bad}\n{text[-4000:]}"

    # The report of those decisions: names are data in its CSV and gallery too.
    out = tmp_path / "report"
    run(["report", "--topic", topology.decisions, "--csv", str(tmp_path / "report.csv"),
         "--html", str(out), "--thumbnails", "none"])  # fmt: skip
    with (tmp_path / "report.csv").open(newline="", encoding="utf-8") as fh:
        paths = {r["path"] for r in csv.DictReader(fh)}
    # Every name comes back whole (newlines, tabs, quotes), a formula's with a quote first.
    formula = {c.name for c in cases if c.name.startswith(("=", "-"))}
    assert formula and paths == {c.name for c in cases} - formula | {f"'{n}" for n in formula}
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and page.count("<script") == 2 and "<b>bold" not in page
    names = gallery.names(page)  # the page's script shows them as text (textContent)
    assert any(n.endswith("<img src=x onerror=alert(1)><script>.jpg") for n in names)
