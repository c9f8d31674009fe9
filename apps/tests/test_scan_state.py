"""The scan's state on disk (apps.scan.state): records kept per file version, a state of
another key or a damaged file not reused (and said so), a torn last write ignored."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from apps.scan import cli, core, state
from apps.scan.state import ScanState
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup, Verdict

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
    assert found["id0"].hashed == group("id0") and found["id0"].has_working_copy
    targets = {"id0": tmp_path / "wc" / "0.jpg", "id2": tmp_path / "wc" / "2.jpg"}
    assert s.write_working_copies(targets) == {"id0", "id2"}
    assert targets["id0"].read_bytes() == b"jpeg 0"
    assert found["id0"].embedding is not None and found["id0"].embedding.tolist() == [0, 1, 2, 3]
    assert found["id1"].embedding is None
    s.forget_others(["id0"])  # the others left the folder
    assert s.counts() == (1, 1)
    s.close()
    s.close()  # again: nothing


def test_the_matchers_outputs_are_kept_by_image_with_their_inputs_digest(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    s = filled(path)
    matched = group("id0")
    matched.stages.append("matcher")
    s.put_judged("id0", "digest0", matched)
    s.put_judged("gone", "digest1", group("gone"))
    s.close()
    s = ScanState.open(path, KEY)
    assert s.judged("id0", "digest0") == matched and s.judged("gone", "digest1") == group("gone")
    assert s.judged("id0", "another input") is None
    s.forget_others(["id0", "id1", "id2"])
    assert s.judged("gone", "digest1") is None and s.judged("id0", "digest0") == matched
    s.close()
    assert ScanState.open(path, KEY, fresh=True).judged("id0", "digest0") is None


def memo(path: Path) -> core.MatcherMemo:
    return core.MatcherMemo(ScanState.open(path, KEY), b"salt")


def test_a_matchers_output_is_reused_for_the_same_input_in_this_scans_folder(
    tmp_path: Path,
) -> None:
    given = group("a")
    given.image.working_copy_url = "file:///scratch-1/a.jpg"
    given.candidates.add(image_id="b", working_copy_url="file:///scratch-1/b.jpg", e_tag="1")
    given.candidates[0].scores.embedding_similarity = 0.8123456
    out = CandidateGroup()
    out.CopyFrom(given)
    out.candidates[0].verdict = Verdict.VERDICT_DUPLICATE
    m = memo(tmp_path / "s.sqlite")
    m.put(core.matcher_input(given, m.salt), out)

    # The next scan: another scratch folder, the last bits of a similarity moved.
    now = CandidateGroup()
    now.CopyFrom(given)
    now.image.working_copy_url = "file:///scratch-2/a.jpg"
    now.candidates[0].working_copy_url = "file:///scratch-2/b.jpg"
    now.candidates[0].scores.embedding_similarity = 0.8123457
    digest = core.matcher_input(now, m.salt)
    assert digest == core.matcher_input(given, m.salt)
    reused = m.get(now, digest)
    assert reused is not None and m.reused == 1
    assert reused.candidates[0].verdict == Verdict.VERDICT_DUPLICATE
    assert reused.image.working_copy_url == "file:///scratch-2/a.jpg"
    assert reused.candidates[0].working_copy_url == "file:///scratch-2/b.jpg"
    assert reused.candidates[0].scores.embedding_similarity == pytest.approx(0.8123457)

    # Another candidate version, another salt (matcher code or settings): matched again.
    changed = CandidateGroup()
    changed.CopyFrom(now)
    changed.candidates[0].e_tag = "2"
    assert m.get(changed, core.matcher_input(changed, m.salt)) is None
    assert core.matcher_input(now, b"other") != digest
    m.state.close()


def test_a_write_that_fails_is_said_once_and_the_scan_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = filled(tmp_path / "s.sqlite", n=1)
    locked = sqlite3.connect(tmp_path / "s.sqlite", timeout=0)
    locked.execute("BEGIN EXCLUSIVE")  # another scan of the folder, writing
    s._db.execute("PRAGMA busy_timeout = 0")
    s.put_hashed("f1.jpg", group("id1"), b"jpeg")
    s.put_embedding("id1", np.zeros(4, np.float32))
    assert s.failed
    said = [r.getMessage() for r in caplog.records if "cannot write the state" in r.getMessage()]
    assert len(said) == 1  # once, for both writes
    locked.rollback()
    locked.close()
    s.close()


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


def test_the_states_folder_is_private(tmp_path: Path) -> None:
    ScanState.open(tmp_path / "states" / "s.sqlite", KEY).close()
    assert (tmp_path / "states").stat().st_mode & 0o777 == 0o700


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
