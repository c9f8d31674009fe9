"""The scan's state on disk (apps.scan.state): records kept per file version, a state of
another key or a damaged file not reused (and said so), a torn last write ignored."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from apps.scan import cli, state
from apps.scan.state import ScanState
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup

KEY = {"format": "1", "model": "sscd_distilled", "features": "abc"}


def group(image_id: str, etag: str = '"1-2"') -> CandidateGroup:
    g = CandidateGroup(image_id=image_id)
    g.event.data.e_tag = etag
    g.image.image_id = image_id
    g.image.status = ImageStatus.IMAGE_STATUS_OK
    g.image.pdq_hash = bytes(range(32))
    return g


def filled(path: Path, n: int = 3) -> ScanState:
    s = ScanState.open(path, KEY)
    for i in range(n):
        s.put_hashed(f"f{i}.jpg", group(f"id{i}"), b"jpeg %d" % i)
    s.put_embedding("id0", np.arange(4, dtype=np.float32))
    return s


def test_records_come_back_for_the_same_file_versions_only(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    filled(path).close()
    s = ScanState.open(path, KEY)
    assert s.note == "" and s.counts() == (3, 1)
    found = s.load({"id0": '"1-2"', "id1": '"1-2"', "id2": '"changed"'})
    assert set(found) == {"id0", "id1"}  # id2's file changed: indexed again
    assert found["id0"].hashed == group("id0") and found["id0"].working_copy == b"jpeg 0"
    assert found["id0"].embedding is not None and found["id0"].embedding.tolist() == [0, 1, 2, 3]
    assert found["id1"].embedding is None
    s.forget_others(["id0"])  # the others left the folder
    assert s.counts() == (1, 1)
    s.close()
    s.close()  # again: nothing


def test_a_state_of_another_model_or_settings_is_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    filled(path).close()
    s = ScanState.open(path, KEY | {"model": "other"})
    assert "written by another model or settings (model differ): not reused" in s.note
    assert s.counts() == (0, 0) and s.load({"id0": '"1-2"'}) == {}
    s.close()
    # Fresh: cleared without a note (the caller asked for it).
    filled(path).close()
    s = ScanState.open(path, KEY, fresh=True)
    assert s.note == "" and s.counts() == (0, 0)
    s.close()


def test_a_damaged_state_is_set_aside_and_the_scan_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"this is no database" * 100)
    s = ScanState.open(path, KEY)
    assert "could not be read" in s.note and "set aside" in s.note
    assert s.counts() == (0, 0)
    s.close()
    assert (tmp_path / "s.sqlite.damaged").read_bytes().startswith(b"this is no database")


def test_a_torn_last_write_is_ignored(tmp_path: Path) -> None:
    """As a process killed mid-write leaves it: the WAL's last frame cut short."""
    path = tmp_path / "s.sqlite"
    live = ScanState.open(path, KEY)  # left open: the records stay in the WAL, unmerged
    for i in range(20):
        live.put_hashed(f"f{i}.jpg", group(f"id{i}"), b"jpeg %d" % i)
    copy = tmp_path / "copy.sqlite"
    shutil.copy(path, copy)
    wal = Path(f"{path}-wal").read_bytes()
    assert len(wal) > 5000
    Path(f"{copy}-wal").write_bytes(wal[: len(wal) - 3000])
    live.close()
    s = ScanState.open(copy, KEY)
    indexed, _ = s.counts()
    assert s.note == "" and indexed == 19  # the last record's commit was torn: not there
    assert len(s.load({f"id{i}": '"1-2"' for i in range(20)})) == indexed
    s.close()


def test_the_state_lives_in_the_cache_named_by_the_folder(tmp_path: Path) -> None:
    assert state.default_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/dedup/scan")
    assert state.default_dir({}) == Path.home() / ".cache" / "dedup" / "scan"
    (tmp_path / "my photos").mkdir()
    (tmp_path / "other" / "my photos").mkdir(parents=True)
    a = state.state_file(tmp_path / "my photos", tmp_path / "states")
    b = state.state_file(tmp_path / "other" / "my photos", tmp_path / "states")
    assert a.parent == tmp_path / "states" and a.name.startswith("my_photos-") and a != b
    assert state.state_file(tmp_path / "x" / ".." / "my photos", tmp_path / "states") == a


def test_the_command_line_names_the_state(tmp_path: Path) -> None:
    ns = cli.parser().parse_args([str(tmp_path)])
    assert ns.state == state.default_dir() and not ns.fresh and not ns.no_state
    (tmp_path / "file").write_text("")
    bad = cli.parser().parse_args([str(tmp_path), "--state", str(tmp_path / "file")])
    assert cli.usage_problems(bad) == [f"--state {tmp_path / 'file'} is not a directory"]
