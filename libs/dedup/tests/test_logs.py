import json
import logging

from dedup.logs import JsonFormatter


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
