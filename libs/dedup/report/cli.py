"""`dedup report`: every image's latest decision from the decisions topic, as files.

    dedup report [--json F] [--csv F] [--html DIR] [--thumbnails embed|link|none]
                 [--max-thumbnails N] [--links sas|plain] [--link-hours H]

The HTML report holds every image; it embeds small thumbnails (data URIs) made from the
working copies in blob storage for the largest clusters and the similar pairs (at most
--max-thumbnails), so that it opens offline; `--thumbnails link` points at the working
copies' URLs instead. Its links to the blobs carry a read-only SAS per container, or
point under DEDUP_REPORT_LINK_BASE_URL (dedup.report.links says which and why).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Literal

from dedup import topics
from dedup.blob import BlobMissingError, BlobSettings, BlobStore, BlobTooLargeError, open_service
from dedup.clitools import USAGE_ERROR, HelpFormatter, output_problems
from dedup.decisions import latest_decisions
from dedup.errors import TransientError
from dedup.logs import configure_cli_logging
from dedup.report import gallery, links, model
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

    # Links to the blobs under this base instead (`<base>/<container>/<blob name>`: a proxy
    # that signs people in), with no SAS in the page.
    link_base_url: str | None = None


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


async def linked(
    settings: BlobSettings,
    rows: list[Row],
    thumbs: dict[str, str],
    mode: links.Links,
    hours: float,
    base_url: str | None = None,
) -> tuple[list[Row], dict[str, str], dict[str, str]]:
    """The rows and thumbnails with links a browser can open (dedup.report.links): under
    `base_url` if given, else with the SAS to append per container (the third value)."""
    if base_url:
        base = base_url

        def moved(url: str) -> str:
            where = store.locate(url) if url else None
            return links.base_url_link(base, *where) if where else url

        async with open_service(settings) as service:
            store = BlobStore(service, "report")
            rows = [replace(r, url=moved(r.url)) for r in rows]
            thumbs = {i: t if t.startswith("data:") else moved(t) for i, t in thumbs.items()}
        return rows, thumbs, {}
    if mode == "plain":
        return rows, thumbs, {}
    async with open_service(settings) as service:
        store = BlobStore(service, "report")
        linked_thumbs = [t for t in thumbs.values() if not t.startswith("data:")]
        containers = {r.container for r in rows} | {
            where[0] for t in linked_thumbs if (where := store.locate(t))
        }
        from azure.core.exceptions import AzureError

        try:
            suffix = await links.container_sas(service, containers, hours)
        except AzureError as error:  # e.g. an identity that may not sign: bare links
            log.warning("links without a SAS (they need access to the account): %s", error)
            return rows, thumbs, {}

    def signed(t: str) -> str:
        where = None if t.startswith("data:") else store.locate(t)
        return t + suffix[where[0]] if where and where[0] in suffix else t

    # Few thumbnails: each carries its own container's token; the links take theirs from
    # the one copy per container in the page.
    in_rows = {c: token for c, token in suffix.items() if c in {r.container for r in rows}}
    return rows, {i: signed(t) for i, t in thumbs.items()}, in_rows


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
        shown = gallery.shown_images(rows, ns.max_thumbnails)
        mode: Thumbnails = ns.thumbnails
        if mode == "embed":
            thumbs = await fetch_thumbnails(settings, shown)
        elif mode == "link":
            thumbs = {r.image_id: r.working_copy_url for r in shown if r.working_copy_url}
        else:
            thumbs = {}
        rows, thumbs, suffix = await linked(
            settings, rows, thumbs, ns.links, ns.link_hours, settings.link_base_url
        )
        ns.html.mkdir(parents=True, exist_ok=True)
        page = gallery.render(rows, thumbs, source=f"topic {ns.topic}", link_suffix=suffix)
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
        "--html", type=Path, metavar="DIR", help="write the HTML report to DIR/index.html"
    )
    parser.add_argument(
        "--thumbnails",
        choices=("embed", "link", "none"),
        default="embed",
        help="gallery images: embedded from the working copies, linked, or none",
    )
    parser.add_argument(
        "--max-thumbnails",
        type=int,
        metavar="N",
        default=gallery.MAX_THUMBNAILS,
        help="thumbnails in the HTML report (the largest clusters' and the similar pairs'); "
        "every image is listed either way",
    )
    parser.add_argument(
        "--links",
        choices=("sas", "plain"),
        default="sas",
        help="links to the blobs: with a read-only SAS per container (user delegation key "
        "under Entra ID, else the account key), or bare URLs (public containers); "
        "DEDUP_REPORT_LINK_BASE_URL overrides both",
    )
    parser.add_argument(
        "--link-hours",
        type=float,
        metavar="H",
        default=24.0,
        help=f"how long a SAS link works (at most {links.MAX_HOURS})",
    )
    return parser


def main(args: list[str] | None = None) -> int:
    ns = parser().parse_args(args)
    problems = output_problems([("--json", ns.json), ("--csv", ns.csv)], [("--html", ns.html)])
    if not 0 < ns.link_hours <= links.MAX_HOURS:
        problems.append(f"--link-hours must be more than 0 and at most {links.MAX_HOURS}")
    if ns.max_thumbnails < 0:
        problems.append("--max-thumbnails must be 0 or more")
    if problems:
        for problem in problems:
            print(f"dedup report: {problem}", file=sys.stderr)
        return USAGE_ERROR
    configure_cli_logging()
    return asyncio.run(run(ns))
