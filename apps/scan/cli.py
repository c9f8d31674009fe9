"""`dedup scan DIR`: de-duplicate a local folder with the pipeline's own five stages.

    dedup scan DIR [--json FILE] [--csv FILE] [--html DIR] [--quiet] [--workers N]
                   [--state DIR | --fresh | --no-state]

No Kafka, no blob storage, no `make up`: the services' handlers run in this process on
the folder's files, with their hash and embedding indexes in this process (exact
search: a folder fits in memory); Triton is started privately on free ports (from
.venv-triton, as `make setup` installs it) with only the embedder's model, and stopped at
the end, unless --triton-url names a running one. --milvus-uri keeps the indexes in a
running Milvus instead (say, the local stack's).

What the index pass makes of each file is kept in a state file per folder (apps.scan.state,
under ~/.cache/dedup/scan unless --state names another folder): Ctrl-C keeps what was
done, and the same command run again indexes only the files it has not indexed before
(--fresh: all of them; --no-state: keep none).

The terminal gets each duplicate cluster (its kept copy first, then each duplicate, one
line each with the reason), the similar pairs, the files that could not be read, and
the totals; the exit code says whether duplicates were found (MEANING).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import signal
import sys
from enum import IntEnum
from pathlib import Path

from apps.scan.output import to_csv, to_html, to_json, totals_line
from apps.scan.servers import ServerError
from apps.scan.session import ScanOptions, ScanResult, run_scan
from apps.scan.state import default_dir, state_file
from dedup.clitools import USAGE_ERROR, HelpFormatter, output_problems, shown
from dedup.cpus import available_cpus
from dedup.logs import configure_cli_logging
from dedup.report import model
from dedup.report.text import listing

M_ARENA_MAX = -8  # from <malloc.h>


class Exit(IntEnum):
    """`dedup scan`'s exit codes (MEANING; README.md and `--help` list them)."""

    NO_DUPLICATES = 0
    DUPLICATES = 1
    USAGE = USAGE_ERROR
    FAILED = 3
    STAGE_FAILURES = 4
    INTERRUPTED = 130  # as a shell reports SIGINT


MEANING: dict[Exit, str] = {
    Exit.NO_DUPLICATES: "the scan finished and found no duplicates",
    Exit.DUPLICATES: "the scan finished and found duplicates",
    Exit.USAGE: "a bad command line, folder or output path (found before the scan)",
    Exit.FAILED: "the scan could not run (a server did not start) or write its outputs",
    Exit.STAGE_FAILURES: "the scan finished, but a stage failed on some files (see their reason)",
    Exit.INTERRUPTED: "interrupted (Ctrl-C, SIGTERM): what was done is kept, run it again",
}
EXIT_CODES = "exit codes:\n" + "\n".join(f"  {c.value:<4} {m}" for c, m in MEANING.items())


def exit_code(result: ScanResult) -> Exit:
    if result.failures:
        return Exit.STAGE_FAILURES
    return Exit.DUPLICATES if model.totals(result.rows).duplicates else Exit.NO_DUPLICATES


def write_outputs(
    result: ScanResult, json_out: Path | None, csv_out: Path | None, html_dir: Path | None
) -> None:
    """The files asked for (their paths were checked before the scan); raises OSError."""
    root = str(result.root)
    if json_out:
        json_out.write_text(to_json(root, result.rows, result.seconds), encoding="utf-8")
        print(f"JSON: {shown(str(json_out))}")
    if csv_out:
        csv_out.write_text(to_csv(result.rows), encoding="utf-8", newline="")  # CRLF as written
        print(f"CSV: {shown(str(csv_out))}")
    if html_dir:
        html_dir.mkdir(exist_ok=True)
        index = html_dir / "index.html"
        index.write_text(to_html(root, result.rows, result.thumbnails), encoding="utf-8")
        print(f"HTML gallery: {shown(str(index))}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dedup scan",
        description="Find duplicate images in a local folder (recursively) with the "
        "pipeline's own stages; every file gets a cluster, keep or not, and a reason. "
        "The clusters are listed here, kept copy first; the JSON and CSV have one entry "
        "per file (libs/dedup/report/result.schema.json).",
        epilog=EXIT_CODES,
        formatter_class=HelpFormatter,
    )
    p.add_argument("folder", type=Path, metavar="DIR", help="the folder to scan")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every file's result here")
    p.add_argument("--csv", type=Path, metavar="FILE", help="write one row per file here")
    p.add_argument("--html", type=Path, metavar="DIR", help="write the gallery to DIR/index.html")
    p.add_argument(
        "--workers",
        type=int,
        default=available_cpus(),
        help="threads decoding images (one per CPU this process may use)",
    )
    p.add_argument(
        "--in-flight",
        type=int,
        default=ScanOptions.in_flight,
        help="images in flight at once (memory grows with it)",
    )
    p.add_argument(
        "--milvus-uri",
        help="keep the indexes in this running Milvus (default: none, in this process)",
    )
    p.add_argument(
        "--triton-url", help="a running Triton's gRPC host:port (default: none, a private one)"
    )
    p.add_argument(
        "--quiet", action="store_true", help="no progress bar and no listing: the totals only"
    )
    resume = p.add_argument_group(
        "resuming",
        "What the index pass makes of each file (its hashes, working copy and embedding) is "
        "kept in a state file per folder as it is made, never in the folder: a scan "
        "interrupted (Ctrl-C) and run again, or run again after files were added or "
        "changed, indexes only the files it has not indexed before; the judging pass runs "
        "over the whole folder each time, matching again only the images whose candidates "
        "changed.",
    )
    resume.add_argument(
        "--state",
        type=Path,
        metavar="DIR",
        default=default_dir(),
        help="keep the states here (one file per scanned folder)",
    )
    resume.add_argument(
        "--fresh", action="store_true", help="ignore what the state holds: index every file anew"
    )
    resume.add_argument("--no-state", action="store_true", help="neither read nor write a state")
    return p


def usage_problems(ns: argparse.Namespace) -> list[str]:
    """Everything wrong with the command line, found before any work."""
    problems = []
    if not ns.folder.is_dir():
        problems.append(f"{shown(str(ns.folder))} is not a directory")
    if ns.workers < 1 or ns.in_flight < 1:
        problems.append("--workers and --in-flight must be at least 1")
    if ns.state.exists() and not ns.state.is_dir() and not ns.no_state:
        problems.append(f"--state {shown(str(ns.state))} is not a directory")
    files = [("--json", ns.json), ("--csv", ns.csv)]
    return problems + output_problems(files, [("--html", ns.html)])


def tell(text: str) -> None:
    print(f"dedup scan: {shown(text)}", file=sys.stderr, flush=True)


def few_malloc_arenas() -> None:
    """Two glibc malloc arenas instead of one per thread (as MALLOC_ARENA_MAX=2 would):
    the decoding and matching threads each fragment an arena of their own otherwise, a
    large part of a scan's peak memory. Before any thread starts; a no-op off glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)


def main(args: list[str] | None = None) -> int:
    few_malloc_arenas()
    ns = parser().parse_args(args)
    if problems := usage_problems(ns):
        for problem in problems:
            print(f"dedup scan: {problem}", file=sys.stderr)
        return Exit.USAGE
    configure_cli_logging()
    options = ScanOptions(
        workers=ns.workers,
        in_flight=ns.in_flight,
        thumbnails=ns.html is not None,
        progress=not ns.quiet,
        state=None if ns.no_state else state_file(ns.folder, ns.state),
        fresh=ns.fresh,
        notify=tell,
    )
    # SIGTERM as Ctrl-C: the private servers are stopped and the workspace removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = asyncio.run(run_scan(ns.folder, options, ns.milvus_uri, ns.triton_url))
    except (ServerError, ValueError) as error:
        print(f"dedup scan: {error}", file=sys.stderr)
        return Exit.FAILED
    except KeyboardInterrupt:
        if options.state is None:  # else the engine said what it kept
            print("\ndedup scan: interrupted", file=sys.stderr)
        return Exit.INTERRUPTED
    if not ns.quiet and (lines := listing(result.rows)):
        print("\n".join(lines))
    code = exit_code(result)
    try:
        write_outputs(result, ns.json, ns.csv, ns.html)
    except OSError as error:
        print(f"dedup scan: cannot write the outputs: {error}", file=sys.stderr)
        code = Exit.FAILED
    print(totals_line(result.rows, result.seconds))
    if result.failures:
        print(f"{len(result.failures)} images hit a stage failure (see `reason`)", file=sys.stderr)
    return code
