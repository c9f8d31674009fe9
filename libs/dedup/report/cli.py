"""`dedup report`: every image's latest decision from the decisions topic, as files.

    dedup report [--json F] [--csv F] [--html DIR] [--thumbnails embed|link|none]

The gallery embeds small thumbnails (data URIs) made from the working copies in blob
storage by default, so that it opens offline and needs no access to the (private)
storage account; `--thumbnails link` points at the working copies' URLs instead.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from dedup import topics
from dedup.blob import BlobMissingError, BlobSettings, BlobStore, BlobTooLargeError, open_service
from dedup.clitools import USAGE_ERROR, HelpFormatter, output_problems
from dedup.decisions import latest_decisions
from dedup.errors import TransientError
from dedup.logs import configure_cli_logging
from dedup.report import gallery, model
from dedup.report.model import Row
from dedup.settings import KafkaSettings, service_config

log = logging.getLogger("dedup.report")

Thumbnails = Literal["embed", "link", "none"]
# A working copy is at most 512 px; anything much bigger is not one.
MAX_WORKING_COPY_BYTES = 4 * 1024 * 1024


class ReportSettings(KafkaSettings, BlobSettings):
    """Where the report finds Kafka and blob storage: DEDUP_REPORT_* (defaults: the local
    stack)."""

    model_config = service_config("report")


async def fetch_thumbnails(
    settings: BlobSettings, shown: Sequence[Row], concurrency: int = 16
) -> dict[str, str]:
    """image id -> data URI of its working copy, for the images the gallery shows."""
    thumbs: dict[str, str] = {}
    limit = asyncio.Semaphore(concurrency)
    async with open_service(settings) as service:
        store = BlobStore(service, "report")

        async def one(r: Row) -> None:
            where = store.locate(r.working_copy_url) if r.working_copy_url else None
            if where is None:
                return
            async with limit:
                try:
                    data = await store.download(*where, MAX_WORKING_COPY_BYTES)
                except (BlobMissingError, BlobTooLargeError, TransientError) as error:
                    log.warning("no thumbnail for %s: %s", r.image_id, error)
                    return
            uri = await asyncio.to_thread(gallery.thumbnail_data_uri, data)
            if uri:
                thumbs[r.image_id] = uri

        await asyncio.gather(*(one(r) for r in shown))
    return thumbs


async def run(ns: argparse.Namespace) -> int:
    settings = ReportSettings()
    decisions = list((await latest_decisions(settings, ns.topic)).values())
    rows = model.rows(decisions)
    if ns.json:
        ns.json.write_text(model.to_json(rows, topic=ns.topic), encoding="utf-8")
        print(f"JSON: {ns.json}")
    if ns.csv:
        ns.csv.write_text(model.to_csv(rows), encoding="utf-8", newline="")  # CRLF as written
        print(f"CSV: {ns.csv}")
    if ns.html:
        shown = gallery.shown_images(rows, ns.max_clusters)
        mode: Thumbnails = ns.thumbnails
        if mode == "embed":
            thumbs = await fetch_thumbnails(settings, shown)
        elif mode == "link":
            thumbs = {r.image_id: r.working_copy_url for r in shown if r.working_copy_url}
        else:
            thumbs = {}
        ns.html.mkdir(parents=True, exist_ok=True)
        page = gallery.render(
            rows, thumbs, source=f"topic {ns.topic}", max_clusters=ns.max_clusters
        )
        index = ns.html / "index.html"
        index.write_text(page, encoding="utf-8")
        print(f"HTML gallery: {index}")
    print(model.summary(model.totals(rows)))
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dedup report",
        description="Every image's latest decision: its cluster, keep or not, scores, reason. "
        "The JSON and CSV have the layout of `dedup scan`'s "
        "(libs/dedup/report/result.schema.json).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--topic", default=topics.DECISIONS, help="the decisions topic")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON here")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one row per image here")
    parser.add_argument(
        "--html", type=Path, metavar="DIR", help="write the gallery to DIR/index.html"
    )
    parser.add_argument(
        "--thumbnails",
        choices=("embed", "link", "none"),
        default="embed",
        help="gallery images: embedded from the working copies, linked, or none",
    )
    parser.add_argument(
        "--max-clusters", type=int, default=500, help="clusters shown in the gallery"
    )
    return parser


def main(args: list[str] | None = None) -> int:
    ns = parser().parse_args(args)
    problems = output_problems([("--json", ns.json), ("--csv", ns.csv)], [("--html", ns.html)])
    if problems:
        for problem in problems:
            print(f"dedup report: {problem}", file=sys.stderr)
        return USAGE_ERROR
    configure_cli_logging()
    return asyncio.run(run(ns))
