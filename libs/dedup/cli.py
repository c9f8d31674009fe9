"""The `dedup` command: one entry point, a sub-command per job."""

import sys
from collections.abc import Callable
from importlib import import_module

# Sub-command -> module with a `main(args) -> int`; imported only when used.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("dedup.demo", "upload generated photos and run the pipeline on the local stack"),
    "ingest": ("services.ingest.cli", "blob events into Kafka: eventhub, backfill or watch"),
    "report": ("dedup.report.cli", "the decisions as JSON, CSV and an HTML gallery"),
    "act": ("dedup.actions", "tag duplicates or move them to a quarantine (dry-run by default)"),
    "scan": ("dedup.scan.cli", "find duplicates in a local folder, in-process (no stack needed)"),
}


def usage() -> str:
    lines = ["usage: dedup COMMAND [options]", "", "commands:"]
    lines += [f"  {name:10s} {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "`dedup COMMAND --help` tells more."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(usage(), file=sys.stderr if args and args[0] not in ("-h", "--help") else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    command: Callable[[list[str]], int] = import_module(COMMANDS[args[0]][0]).main
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
