"""JSON-lines logging to stdout, with the Kafka coordinates of the message in hand."""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

# Fields a log call may pass in `extra=` that are copied into the JSON line.
CONTEXT_FIELDS = ("service", "topic", "partition", "offset", "image_id", "attempt", "kind")


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


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty at INFO: aiokafka about every rebalance step, the Azure SDK about every request.
    for name in ("aiokafka", "azure"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def adopt_library_loggers(prefix: str) -> None:
    """Route a library that configures its own handlers (pymilvus: plain-text lines to
    stderr, some at DEBUG) through ours instead, at WARNING and above."""
    for name in [
        prefix,
        *(n for n in logging.root.manager.loggerDict if n.startswith(prefix + ".")),
    ]:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.WARNING if name == prefix else logging.NOTSET)
