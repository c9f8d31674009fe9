"""The Python API (apps.api): one real call on a tiny generated folder (a private Triton,
as `dedup scan` starts it) checked for its cluster, reasons, progress, logs and JSON; the
README's example run as written; errors raised before any server starts."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

import apps
from apps import api
from apps.scan import core, servers, state
from apps.scan.session import ScanOptions, ScanResult
from dedup import synthetic
from dedup.report import model
from dedup.tests.helpers import SCHEMA, row
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus

needs_triton = pytest.mark.skipif(
    not (servers.REPO / ".venv-triton").exists(), reason="needs Triton (`make setup`)"
)
ORIGINAL, COPY = "trip/original.jpg", "trip/copy-half.jpg"
FILES = 5


def grey_original() -> bytes:
    """A greyscale copy of ORIGINAL's picture: not in the folder."""
    return synthetic.encode(synthetic.EDITS["grey"](synthetic.photo(9601)))


def make_folder(root: Path) -> None:
    """Three images (one also as a half-size copy), a broken JPEG and a text file."""
    original = synthetic.photo(9601)
    (root / "trip").mkdir(parents=True)
    (root / ORIGINAL).write_bytes(synthetic.encode(original, quality=92))
    (root / COPY).write_bytes(synthetic.encode(synthetic.EDITS["resize-half"](original)))
    (root / "other.png").write_bytes(synthetic.encode(synthetic.photo(9602), "PNG"))
    (root / "broken.jpg").write_bytes(synthetic.encode(synthetic.photo(9603))[:300])
    (root / "notes.txt").write_text("not an image\n")


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def root_at_debug() -> Iterator[Records]:
    """The root logger at DEBUG with a handler that keeps every record it gets (as a
    caller's verbose logging set-up would be); as it was after."""
    root, handler = logging.getLogger(), Records()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@dataclass(frozen=True)
class Call:
    result: apps.Result
    progress: list[tuple[int, int, str]]
    records: list[logging.LogRecord]


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory) -> Call:
    """One real find_duplicates on the tiny folder, the root logger at DEBUG."""
    folder = tmp_path_factory.mktemp("api") / "photos"
    make_folder(folder)
    progress: list[tuple[int, int, str]] = []
    with root_at_debug() as handler:
        result = apps.find_duplicates(
            folder, progress=lambda *counts: progress.append(counts), workers=1
        )
    return Call(result, progress, handler.records)


@needs_triton
@pytest.mark.timeout(300)
def test_the_copy_is_found_and_the_original_kept(call: Call) -> None:
    result = call.result
    (cluster,) = result.clusters
    assert cluster.kept is not None and cluster.kept.path == ORIGINAL
    (copy,) = cluster.duplicates
    assert copy.path == COPY and copy.decision == model.DUPLICATE and not copy.keep
    assert "of the kept copy" in copy.reason and copy.scores
    assert cluster.bytes_freed == copy.size_bytes == result.totals.bytes_freed > 0
    assert [r.path for r in result.unique] == ["other.png"]
    assert [r.path for r in result.unreadable] == ["broken.jpg"]
    assert [r.path for r in result.not_images] == ["notes.txt"]
    assert result.similar == () and dict(result.failures) == {}
    assert sorted(r.path for r in result.images) == sorted(
        ["broken.jpg", "notes.txt", "other.png", ORIGINAL, COPY]
    )
    assert all(r.reason for r in result.images), [r for r in result.images if not r.reason]


@needs_triton
@pytest.mark.timeout(300)
def test_progress_counts_every_file_in_each_phase(call: Call) -> None:
    phases = list(dict.fromkeys(phase for _, _, phase in call.progress))
    assert phases == ["indexing", "embedding", "matching"]
    for phase in phases:
        counts = [(done, total) for done, total, p in call.progress if p == phase]
        assert {total for _, total in counts} == {FILES}
        assert [done for done, _ in counts] == list(range(FILES + 1))


@needs_triton
@pytest.mark.timeout(300)
def test_the_call_logs_nothing_below_warning_and_restores_the_levels(call: Call) -> None:
    below = [(r.name, r.levelname, r.getMessage()) for r in call.records if r.levelno < 30]
    assert below == []
    assert all(logging.getLogger(name).level == logging.NOTSET for name in api.QUIET_LOGGERS)


@needs_triton
@pytest.mark.timeout(300)
def test_to_json_is_dedup_scans_json(call: Call, tmp_path: Path) -> None:
    target = tmp_path / "scan.json"
    document = json.loads(call.result.to_json(target))
    jsonschema.validate(document, SCHEMA)
    assert json.loads(target.read_text(encoding="utf-8")) == document
    assert document["tool"] == "dedup scan" and document["root"] == str(call.result.root)
    by_path = {e["path"]: e for e in document["images"]}
    assert by_path[COPY]["duplicate_of_path"] == ORIGINAL
    assert document["totals"]["duplicates"] == 1


def readme_example() -> str:
    readme = (servers.REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**From Python**") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "README.md's From Python section has a python block"
    return found[1]


@needs_triton
@pytest.mark.timeout(300)
def test_the_readmes_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_folder(tmp_path / "photos")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "new.jpg").write_bytes(grey_original())
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(readme_example(), "README.md", "exec"), {})  # noqa: S102 (our README)
    printed = out.getvalue()
    assert f"keep {ORIGINAL}, " in printed and f"  drop {COPY}: " in printed
    assert "matching 5/5\n" in printed
    assert f"{FILES} of {FILES} files reused\n" in printed
    assert f"new.jpg: duplicate, keep {ORIGINAL}: a greyscale copy of the kept copy" in printed
    jsonschema.validate(json.loads((tmp_path / "scan.json").read_text()), SCHEMA)


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(servers, "launch_triton", refuse)


def test_a_bad_folder_or_option_raises_before_any_server(tmp_path: Path, no_server: None) -> None:
    with pytest.raises(FileNotFoundError, match=r"no such folder: .*nowhere"):
        apps.find_duplicates(tmp_path / "nowhere")
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match=r"not a folder: .*a\.jpg"):
        apps.find_duplicates(tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="at least 1"):
        apps.find_duplicates(tmp_path, in_flight=0)


def test_a_server_that_cannot_start_raises_server_start_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(*args: object) -> None:
        raise servers.ServerError("Triton (.venv-triton) is not installed: run `make setup`")

    monkeypatch.setattr(servers, "launch_triton", missing)
    with pytest.raises(apps.ServerStartError, match="not installed: run `make setup`"):
        apps.find_duplicates(tmp_path)


async def test_it_runs_inside_a_running_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook's cell runs in an event loop: asyncio.run would refuse to nest."""
    seen: list[ScanOptions] = []

    @contextlib.asynccontextmanager
    async def fake(
        root: Path, ends: object, scratch: Path, options: ScanOptions
    ) -> AsyncIterator[core.OpenScan]:
        seen.append(options)
        rows = [row("k", "k.jpg", reason="kept"), row("u", "u.jpg", cluster="u",
                    decision="unique", reason="no duplicate found", similar=("k",))]  # fmt: skip
        done = ScanResult(root, rows, failures={"u": "matcher failed: x"}, seconds=0.1)
        yield core.OpenScan(done, cast(core.Checker, None))

    def report(done: int, total: int, phase: str) -> None:
        pass

    monkeypatch.setattr(core, "open_scan", fake)
    # A Triton URL given: no server is started.
    result = apps.find_duplicates(tmp_path, progress=report, workers=2, triton_url="[::1]:1")
    (options,) = seen
    assert options.on_progress is report and not options.progress and options.workers == 2
    assert options.state is not None and options.state.parent == state.default_dir()
    assert [(a.path, b.path) for a, b in result.similar] == [("k.jpg", "u.jpg")]
    assert dict(result.failures) == {"u.jpg": "matcher failed: x"}


@needs_triton
@pytest.mark.timeout(300)
def test_a_scanner_keeps_its_triton_for_several_scans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launched: list[object] = []
    launch = servers.launch_triton

    def counted(*args: Any) -> Any:
        launched.append(args)
        return launch(*args)

    monkeypatch.setattr(servers, "launch_triton", counted)
    make_folder(tmp_path / "a")
    (tmp_path / "b").mkdir()
    photo = synthetic.photo(9701)
    (tmp_path / "b" / "x.jpg").write_bytes(synthetic.encode(photo))
    (tmp_path / "b" / "x-grey.jpg").write_bytes(synthetic.encode(synthetic.EDITS["grey"](photo)))
    with apps.Scanner(workers=1) as scanner:
        first, second = scanner.scan(tmp_path / "a"), scanner.scan(tmp_path / "b")
        with pytest.raises(FileNotFoundError):
            scanner.scan(tmp_path / "c")
    assert len(launched) == 1
    assert [(c.kept and c.kept.path, [d.path for d in c.duplicates]) for c in first.clusters] == [
        (ORIGINAL, [COPY])
    ]
    assert [len(c.members) for c in second.clusters] == [2]
    with pytest.raises(RuntimeError, match="not open"):
        scanner.scan(tmp_path / "a")


def test_import_apps_loads_no_engine() -> None:
    probe = (
        "import sys, apps; apps.Result; apps.find_duplicates; "
        "heavy = [m for m in sys.modules if m.startswith(('services', 'apps.scan.core', 'cv2'))]; "
        "print(heavy)"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(servers.REPO / "libs"), str(servers.REPO)])
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


@needs_triton
@pytest.mark.timeout(300)
def test_a_scanner_checks_new_images_against_the_folder_it_scanned(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    make_folder(folder)
    (tmp_path / "new.png").write_bytes(synthetic.encode(synthetic.photo(9604), "PNG"))
    with apps.Scanner(workers=1, state=tmp_path / "state") as scanner:
        with pytest.raises(RuntimeError, match="no folder scanned yet"):
            scanner.check(tmp_path / "new.png")
        first = scanner.scan(folder)
        assert first.reused == 0
        copy = scanner.check(grey_original())
        unrelated = scanner.check(tmp_path / "new.png")
        broken = scanner.check(b"not an image")
        with pytest.raises(FileNotFoundError, match="no such file"):
            scanner.check(tmp_path / "nowhere.jpg")
        # The checks left the folder as it was; its second scan reuses the state.
        again = scanner.scan(folder)
    assert copy.is_duplicate and copy.image.decision == model.DUPLICATE
    assert copy.image.path == api.BYTES and "greyscale copy of the kept copy" in copy.image.reason
    assert [r.path for r in copy.duplicates] == [COPY, ORIGINAL]
    assert copy.kept is not None and copy.kept.path == ORIGINAL
    assert copy.image.duplicate_of == copy.kept.image_id
    assert not unrelated.is_duplicate and unrelated.image.decision == model.UNIQUE
    assert unrelated.image.path == str(tmp_path / "new.png") and unrelated.kept is None
    assert broken.image.decision == model.UNREADABLE and not broken.is_duplicate
    assert again.reused == FILES
    assert again.images == first.images and again.clusters == first.clusters


def test_a_checks_copies_are_its_whole_cluster_changed_or_not() -> None:
    """The ranker hands back only the decisions a check changed: the folder's images it
    left as they were are in its cluster too."""
    rows = [row("k", "k.jpg", cluster="k", reason="kept"),
            row("d", "d.jpg", cluster="k", decision="duplicate", keep=False, duplicate_of="k"),
            row("u", "u.jpg", cluster="u", decision="unique")]  # fmt: skip
    folder = api.result_of(Path("/photos"), rows, {}, 0.1)
    ok = ImageStatus.IMAGE_STATUS_OK
    new = Decision(image_id="n", kind=DecisionKind.DECISION_KIND_DUPLICATE, cluster_id="k",
                   duplicate_of="k", status=ok, reason="a copy")  # fmt: skip
    kept_again = Decision(image_id="k", kind=DecisionKind.DECISION_KIND_KEEP, cluster_id="k")
    check = api.check_of(core.Checked(new, (kept_again,)), "new.jpg", folder)
    assert [r.path for r in check.duplicates] == ["d.jpg", "k.jpg"] and check.is_duplicate
    assert check.kept is not None and check.kept.path == "k.jpg"
    assert check.image.path == "new.jpg" and check.image.decision == model.DUPLICATE
    alone = Decision(image_id="m", kind=DecisionKind.DECISION_KIND_UNIQUE, cluster_id="m",
                     status=ok, similar=["u"])  # fmt: skip
    check = api.check_of(core.Checked(alone, ()), "m.jpg", folder)
    assert check.duplicates == () and check.kept is None and not check.is_duplicate
    assert [r.path for r in check.similar] == ["u.jpg"]
