"""The back-fill's progress line, state files and options."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dedup.progress import clock_text
from services.ingest.cli import main, overrides, parser, state_path
from services.ingest.progress import Progress, progress_line
from services.ingest.settings import IngestSettings


def test_progress_line_without_and_with_a_total() -> None:
    assert progress_line(12_000, 11_990, 10.0) == "12,000 listed  11,990 published  1,200/s  0:10"
    line = progress_line(1_500_000, 1_500_000, 600.0, start=300_000, expected=3_000_000)
    assert line.startswith("1,500,000/3,000,000 listed (50%)")
    assert "2,000/s" in line and line.endswith("10:00  ETA 12:30")
    assert progress_line(0, 0, 0.0, expected=10).endswith("ETA ?")
    assert clock_text(3 * 3600 + 61) == "3:01:01"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_redraws_at_most_every_interval() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(stream=out, every=1.0, clock=clock)
    progress.update(10, 10)
    clock.now = 0.5
    progress.update(20, 20)  # too soon
    clock.now = 1.2
    progress.update(30, 30)
    progress.update(40, 40, force=True)
    progress.close()
    assert [line.split("  ")[0] for line in out.getvalue().splitlines()] == [
        "10 listed",
        "30 listed",
        "40 listed",
    ]


def test_state_files_are_per_container_and_prefix() -> None:
    settings = IngestSettings(state_dir=Path("/s"))
    assert state_path(settings, "backfill", "c", "") == Path("/s/backfill-c-all.json")
    a, b = state_path(settings, "watch", "c", "a/"), state_path(settings, "watch", "c", "b/")
    assert a != b and a.parent == Path("/s")


def test_options() -> None:
    ns = parser().parse_args(
        [
            "backfill",
            "--container",
            "c",
            "--prefix",
            "p/",
            "--expected",
            "3000000",
            "--topic",
            "t",
            "--content-types",
            "image/*, image/png",
        ]
    )
    assert (ns.container, ns.prefix, ns.expected, ns.restart) == ("c", "p/", 3_000_000, False)
    assert overrides(ns) == {"output_topic": "t", "content_types": ["image/*", "image/png"]}
    ns = parser().parse_args(["watch", "--container", "c", "--once", "--interval", "0.5"])
    assert (ns.once, ns.interval, overrides(ns)) == (True, 0.5, {})
    with pytest.raises(SystemExit):
        parser().parse_args(["backfill"])  # --container is required


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_INGEST_CONTAINERS", "uploads, photos")
    monkeypatch.setenv("DEDUP_INGEST_CONTENT_TYPES", "image/*")
    monkeypatch.setenv("DEDUP_INGEST_EVENTHUB_NAMESPACE", "")
    s = IngestSettings()
    assert s.event_filter().containers == frozenset({"uploads", "photos"})
    assert s.event_filter().content_types == ("image/*",)
    assert (s.eventhub_namespace, s.output_topic, s.http_port) == (
        None,
        "dedup.blob-events.v1",
        9106,
    )


def test_a_state_file_of_another_container_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "watch.json"
    state.write_text('{"container": "photos", "prefix": ""}')
    assert main(["watch", "--once", "--container", "uploads", "--state", str(state)]) == 2
    assert "holds the watch of photos/*" in capsys.readouterr().err
