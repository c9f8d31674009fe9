"""The `dedup` command: one entry point, a sub-command per job."""

import difflib
import os
import sys
from collections.abc import Callable
from importlib import import_module

from dedup.clitools import USAGE_ERROR, dedup_version, shown

# The exit code of a command whose reader went away (128 + SIGPIPE, as the shell's).
CLOSED_PIPE = 141

# Sub-command -> module with a `main(args) -> int`; imported only when used.
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("apps.scan.cli", "find duplicates in a local folder, in-process (no stack needed)"),
    "report": ("dedup.report.cli", "the decisions as JSON, CSV and an HTML gallery"),
    "act": ("dedup.actions", "tag duplicates or move them to a quarantine (dry-run by default)"),
    "ingest": ("services.ingest.cli", "blob events into Kafka: eventhub, backfill or watch"),
    "demo": ("apps.demo", "upload generated photos and run the pipeline on the local stack"),
}


def usage() -> str:
    lines = ["usage: dedup COMMAND [options]", "       dedup --version", "", "commands:"]
    lines += [f"  {name:10s} {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "`dedup COMMAND --help` tells more (its options, defaults and exit codes)."]
    return "\n".join(lines)


def unknown(command: str) -> str:
    """The error for a command that is not one of ours, with the nearest one if any."""
    near = difflib.get_close_matches(command, COMMANDS, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return f"dedup: unknown command '{shown(command)}'{hint}\n\n{usage()}"


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return dispatch(sys.argv[1:] if argv is None else argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in Python's exit
    except BrokenPipeError:
        # `dedup scan DIR | head`: the reader has what it wanted; no traceback, and no
        # second one when Python flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return CLOSED_PIPE


def dispatch(args: list[str]) -> int:
    """Run the sub-command that ``args`` name; its exit code."""
    if not args:
        print(usage(), file=sys.stderr)
        return USAGE_ERROR
    first = args[0]
    if first in ("-h", "--help"):
        print(usage())
        return 0
    if first in ("-V", "--version"):
        print(f"dedup {dedup_version()}")
        return 0
    if first not in COMMANDS:
        print(unknown(first), file=sys.stderr)
        return USAGE_ERROR
    command: Callable[[list[str]], int] = import_module(COMMANDS[first][0]).main
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
