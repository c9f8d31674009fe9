"""JSON-lines logging to stdout, with the Kafka coordinates of the message in hand.

A dependency that is down (Kafka, Milvus, blob storage, Triton) makes its client library
and our retry loops log an error on every attempt, thousands of lines for a short broker
outage (issue 10). Every line goes through one `OutageFilter`, which turns
a dependency's errors into one line when they start, a reminder at most every
`reminder_seconds` while they last, and one line when the dependency is back, with the
outage's duration and how many lines it kept back. "Back" is known two ways: the stage
runtime reports a call that succeeded (`dependency_ok`: a commit, a produce ack, a
handler that went through after failing), or, for a stage with nothing to do, no error
from it for `quiet_seconds`.
"""

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

# Fields a log call may pass in `extra=` that are copied into the JSON line.
CONTEXT_FIELDS = (
    "service",
    "topic",
    "partition",
    "offset",
    "image_id",
    "attempt",
    "kind",
    "dependency",
    "outage",
    "outage_seconds",
    "suppressed",
)

# Loggers of the client libraries, by the dependency they talk to.
DEPENDENCY_LOGGERS: Final = (
    ("azure.eventhub", "eventhub"),
    ("aiokafka", "kafka"),
    ("kafka", "kafka"),
    ("pymilvus", "milvus"),
    ("azure", "blob"),
    ("tritonclient", "triton"),
)
REMINDER_SECONDS: Final = 30.0
QUIET_SECONDS: Final = 15.0
OUTAGE_LOGGER: Final = "dedup.outage"


def dependency_of(record: logging.LogRecord) -> str | None:
    """The dependency a warning or error is about: named by `extra={"dependency": ...}`
    (our own retry loops), else by the client library's logger; None for other lines."""
    if record.levelno < logging.WARNING or record.name == OUTAGE_LOGGER:
        return None
    named = record.__dict__.get("dependency")
    if isinstance(named, str) and named:
        return named
    for prefix, dependency in DEPENDENCY_LOGGERS:
        if record.name == prefix or record.name.startswith(prefix + "."):
            return dependency
    return None


def dependency_of_error(error: BaseException) -> str:
    """The dependency an exception came from: a TransientError names it, a client
    library's exception is known by its module; "dependency" when neither tells."""
    named = getattr(error, "dependency", None)
    if isinstance(named, str) and named:
        return named
    module = type(error).__module__
    for prefix, dependency in DEPENDENCY_LOGGERS:
        if module == prefix or module.startswith(prefix + "."):
            return dependency
    return "dependency"


@dataclass
class Outage:
    started: float
    last_error: float
    last_line: float
    suppressed: int = 0
    last_message: str = ""


class OutageFilter(logging.Filter):
    """Let through the first error of a dependency's outage, a reminder at most every
    `reminder_seconds`, and a line when it ends; count and drop the rest."""

    def __init__(
        self,
        reminder_seconds: float = REMINDER_SECONDS,
        quiet_seconds: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.reminder_seconds = reminder_seconds
        self.quiet_seconds = quiet_seconds
        self._clock = clock
        self._outages: dict[str, Outage] = {}
        self._lock = threading.Lock()

    def down(self) -> list[str]:
        with self._lock:
            return sorted(self._outages)

    def filter(self, record: logging.LogRecord) -> bool:
        self.check_quiet()
        dependency = dependency_of(record)
        if dependency is None:
            return True
        now = self._clock()
        message = record.getMessage()
        with self._lock:
            outage = self._outages.get(dependency)
            if outage is None:
                self._outages[dependency] = Outage(now, now, now, 0, message)
                _rewrite(record, f"{dependency}: unavailable: {message}", dependency, "start")
                return True
            outage.last_error, outage.last_message = now, message
            if now - outage.last_line < self.reminder_seconds:
                outage.suppressed += 1
                return False
            outage.last_line = now
            text = (
                f"{dependency}: still unavailable after {now - outage.started:.1f} s, "
                f"{outage.suppressed} errors suppressed so far; latest: {message}"
            )
            _rewrite(record, text, dependency, "ongoing", now - outage.started, outage.suppressed)
            return True

    def ok(self, dependency: str) -> None:
        """A call to `dependency` succeeded: its outage, if any, is over."""
        with self._lock:
            outage = self._outages.pop(dependency, None)
        # A lone error line (a rebalance's heartbeat warning) needs no end line of its own.
        if outage is not None and (outage.suppressed or outage.last_line > outage.started):
            _log_end(dependency, outage, self._clock() - outage.started, outage.suppressed)

    def check_quiet(self) -> None:
        """End the outages that have not logged an error for `quiet_seconds` (a stage with
        no traffic makes no call that could report success)."""
        now = self._clock()
        with self._lock:
            quiet = [
                (d, o) for d, o in self._outages.items() if now - o.last_error >= self.quiet_seconds
            ]
            for dependency, _ in quiet:
                del self._outages[dependency]
        for dependency, outage in quiet:
            if outage.suppressed or outage.last_line > outage.started:
                _log_end(dependency, outage, outage.last_error - outage.started, outage.suppressed)


def _rewrite(
    record: logging.LogRecord,
    text: str,
    dependency: str,
    phase: str,
    seconds: float | None = None,
    suppressed: int | None = None,
) -> None:
    record.msg, record.args = text, None
    record.dependency, record.outage = dependency, phase
    record.outage_seconds, record.suppressed = seconds, suppressed
    record.exc_info = record.exc_text = None  # one line: the traceback of every retry is noise


def _log_end(dependency: str, outage: Outage, seconds: float, suppressed: int) -> None:
    logging.getLogger(OUTAGE_LOGGER).warning(
        "%s: reachable again after %.1f s, %d errors suppressed",
        dependency,
        seconds,
        suppressed,
        extra={
            "dependency": dependency,
            "outage": "end",
            "outage_seconds": round(seconds, 3),
            "suppressed": suppressed,
        },
    )


# The filter of this process's log handler (configure_logging installs it).
OUTAGES = OutageFilter()


def dependency_ok(dependency: str) -> None:
    """Report a successful call to `dependency` (ends its outage line, if one is open)."""
    OUTAGES.ok(dependency)


def check_outages() -> None:
    """End outages that have gone quiet; the stage runtime calls this once a poll."""
    OUTAGES.check_quiet()


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def adopt_library_loggers() -> None:
    """Route the client libraries' loggers through ours: pymilvus, on import, gives its
    loggers a stderr handler of their own and stops them propagating, which would bypass
    both the JSON lines and the outage filter. Call again after importing such a library."""
    prefixes = tuple(prefix for prefix, _ in DEPENDENCY_LOGGERS)
    for name in list(logging.root.manager.loggerDict):
        if name.split(".", 1)[0] in prefixes or name in prefixes:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
            if "." in name:  # pymilvus sets some of its loggers to DEBUG: inherit instead
                logger.setLevel(logging.NOTSET)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(OUTAGES)
    adopt_library_loggers()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty at INFO: aiokafka about every rebalance step, the Azure SDK about every request,
    # pymilvus about every collection.
    for name in ("aiokafka", "azure", "pymilvus"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def configure_cli_logging() -> None:
    """A command's logging: warnings and errors as plain lines on stderr, each outage of a
    dependency one line (a long `dedup ingest watch` must not flood its terminal either)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(OUTAGES)
    adopt_library_loggers()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("pymilvus").setLevel(logging.WARNING)
