import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from azure.core.exceptions import ServiceRequestError

from dedup import logs
from dedup.errors import TransientError
from dedup.logs import (
    JsonFormatter,
    OutageFilter,
    adopt_library_loggers,
    configure_logging,
    dependency_of_error,
)


def test_log_lines_are_json_with_the_message_coordinates() -> None:
    record = logging.LogRecord(
        "dedup.runtime", logging.WARNING, __file__, 1, "retry %s", ("x",), None
    )
    record.__dict__.update(topic="t", partition=2, offset=41, image_id="img")
    line = json.loads(JsonFormatter("hasher").format(record))
    assert line["msg"] == "retry x"
    assert (line["service"], line["level"]) == ("hasher", "warning")
    assert (line["topic"], line["partition"], line["offset"], line["image_id"]) == (
        "t",
        2,
        41,
        "img",
    )


# ---- one line per dependency outage ---------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def captured() -> Iterator[tuple[OutageFilter, Clock, list[logging.LogRecord]]]:
    """A logger tree like a service's: every record through one handler with the filter."""
    clock = Clock()
    outages = OutageFilter(reminder_seconds=30, quiet_seconds=15, clock=clock)
    lines: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record)

    handler = Keep()
    handler.addFilter(outages)
    adopt_library_loggers()  # pymilvus's loggers, if imported, do not propagate
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield outages, clock, lines
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def broker_errors(clock: Clock, seconds: float, per_second: int) -> None:
    conn = logging.getLogger("aiokafka.conn")
    for _ in range(int(seconds * per_second)):
        clock.now += 1 / per_second
        conn.error("Unable connect to node with id 1: [Errno 111] Connection refused")


def test_a_35_s_broker_outage_is_three_lines(captured: Any) -> None:
    outages, clock, lines = captured
    broker_errors(clock, 35, 377)  # the rate the fault run saw
    outages.ok("kafka")  # the runtime's next commit
    texts = [r.getMessage() for r in lines]
    assert len(texts) == 3, texts
    assert texts[0].startswith("kafka: unavailable: Unable connect to node")
    assert texts[1].startswith("kafka: still unavailable after 30.0 s, ")
    assert texts[2].startswith("kafka: reachable again after 35.0 s, ")
    # Every error is a line or counted in the end line's total (the reminder's so far).
    assert 1 + 1 + lines[2].suppressed == 35 * 377
    assert 0 < lines[1].suppressed < lines[2].suppressed
    assert [r.outage for r in lines] == ["start", "ongoing", "end"]
    assert outages.down() == []


def test_an_outage_ends_when_its_errors_go_quiet(captured: Any) -> None:
    outages, clock, lines = captured
    broker_errors(clock, 5, 10)
    clock.now += 15
    outages.check_quiet()
    assert [r.outage for r in lines] == ["start", "end"]
    assert "reachable again after 4.9 s, 49 errors suppressed" in lines[1].getMessage()


def test_a_lone_error_needs_no_end_line(captured: Any) -> None:
    outages, clock, lines = captured
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed: rebalance")
    clock.now += 20
    outages.check_quiet()
    assert len(lines) == 1 and outages.down() == []


def test_dependencies_are_tracked_apart_and_other_lines_pass(captured: Any) -> None:
    outages, _, lines = captured
    for _ in range(10):
        logging.getLogger("pymilvus.decorators").error("RPC error: unavailable")
        logging.getLogger("dedup.runtime").warning(
            "transient failure", extra={"dependency": "blob"}
        )
        logging.getLogger("dedup.runtime").info("consuming")
        logging.getLogger("services.hasher").error("a bug, not an outage")
    assert outages.down() == ["blob", "milvus"]
    assert len(lines) == 2 + 10 + 10  # one start each; every unrelated line
    outages.ok("milvus")
    assert outages.down() == ["blob"]
    assert "milvus: reachable again" in lines[-1].getMessage()


def test_ok_without_an_outage_or_after_a_lone_error_says_nothing(captured: Any) -> None:
    outages, _, lines = captured
    outages.ok("kafka")
    assert lines == []
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed: rebalance")
    outages.ok("kafka")
    assert len(lines) == 1 and outages.down() == []


def test_the_start_line_is_one_json_line_with_the_outage_fields() -> None:
    outages = OutageFilter(clock=Clock())
    try:
        raise ConnectionError("refused")
    except ConnectionError:
        record = logging.LogRecord(
            "aiokafka.conn", logging.ERROR, __file__, 1, "conn %s", ("x",), sys.exc_info()
        )
    assert outages.filter(record)
    line = json.loads(JsonFormatter("ranker").format(record))
    assert line["msg"] == "kafka: unavailable: conn x"
    assert (line["dependency"], line["outage"]) == ("kafka", "start")
    assert "error" not in line  # no traceback per retry


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (TransientError("x", dependency="milvus"), "milvus"),
        (TransientError("x"), "dependency"),
        (KafkaConnectionError(), "kafka"),
        (ServiceRequestError("down"), "blob"),
    ],
)
def test_the_dependency_of_an_error(error: BaseException, dependency: str) -> None:
    assert dependency_of_error(error) == dependency


def test_library_loggers_that_keep_to_themselves_are_adopted() -> None:
    logger = logging.getLogger("pymilvus.test_adopt")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(sys.stderr))
    adopt_library_loggers()
    assert logger.propagate and logger.handlers == []


def test_configure_logging_installs_the_filter() -> None:
    configure_logging("hasher")  # the root conftest puts the root logger back
    assert logs.OUTAGES in logging.getLogger().handlers[0].filters
