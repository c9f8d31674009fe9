"""`dedup scan`'s own parts without servers: the walk, the events, local blob storage,
the JSON entries, the progress line, the bounded map."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from apps.scan.core import bounded_map
from apps.scan.files import ACCOUNT, folder_container, local_files, readable, walk
from apps.scan.local_blobs import LocalBlobs, ReadOnlyContainerError
from apps.scan.progress import progress_line
from dedup.blob import BlobMissingError, BlobTooLargeError
from dedup.events import image_id
from dedup.report.model import entry
from dedup.tests.helpers import row


def make_tree(root: Path) -> None:
    (root / "a b" / "ç").mkdir(parents=True)
    (root / "a b" / "ç" / "photo 1.jpg").write_bytes(b"x" * 10)
    (root / "z.txt").write_text("hello")
    (root / ".hidden").write_text("still a file")
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "inside.jpg").write_bytes(b"y")
    (root / "link-to-dir").symlink_to(root / "elsewhere", target_is_directory=True)
    (root / "link-to-file.jpg").symlink_to(root / "z.txt")
    (root / "dangling.jpg").symlink_to(root / "nowhere")


def test_the_walk_lists_every_file_once_by_its_relative_path(tmp_path: Path) -> None:
    make_tree(tmp_path)
    names = [name for name, _ in walk(tmp_path)]
    assert names == sorted(names)
    assert set(names) == {
        ".hidden",
        "a b/ç/photo 1.jpg",
        "dangling.jpg",
        "elsewhere/inside.jpg",
        "link-to-file.jpg",
        "z.txt",
    }  # the linked directory is not walked (no loops, nothing outside the folder)


def test_names_that_are_not_utf8_get_a_readable_name(tmp_path: Path) -> None:
    raw = os.fsdecode(b"bad-\xff-name.jpg")
    (tmp_path / raw).write_bytes(b"z")
    assert readable(raw) == "bad-\ufffd-name.jpg"
    ((name, path),) = walk(tmp_path)
    assert name == "bad-\ufffd-name.jpg" and path.read_bytes() == b"z"


def test_a_file_becomes_the_blob_created_event_of_a_listing(tmp_path: Path) -> None:
    make_tree(tmp_path)
    files = {f.name: f for f in local_files(tmp_path)}
    photo = files["a b/ç/photo 1.jpg"]
    container = folder_container(tmp_path)
    assert photo.event.container == container == str(tmp_path.resolve())
    assert photo.image_id == image_id(ACCOUNT, container, "a b/ç/photo 1.jpg")
    assert photo.event.blob_name == "a b/ç/photo 1.jpg"
    assert photo.event.data.content_length == 10
    assert photo.event.data.content_type == "image/jpeg"
    assert photo.event.data.url == photo.path.absolute().as_uri()
    assert files["dangling.jpg"].event.data.content_length == 0


async def test_local_blobs_read_the_folder_and_never_write_it(tmp_path: Path) -> None:
    make_tree(tmp_path / "f")
    files = {name: path for name, path in walk(tmp_path / "f")}
    blobs = LocalBlobs({"folder": files}, tmp_path / "scratch")
    assert await blobs.download("folder", "z.txt", 100) == b"hello"
    with pytest.raises(BlobTooLargeError):
        await blobs.download("folder", "a b/ç/photo 1.jpg", 5)
    with pytest.raises(BlobMissingError):
        await blobs.download("folder", "not-there.jpg", 100)
    with pytest.raises(BlobMissingError):
        await blobs.download("folder", "dangling.jpg", 100)
    with pytest.raises(ReadOnlyContainerError):
        await blobs.upload("folder", "z.txt", b"overwritten")
    with pytest.raises(ReadOnlyContainerError):
        await blobs.delete("folder", "z.txt")
    assert (tmp_path / "f" / "z.txt").read_text() == "hello"
    assert blobs.locate(files["z.txt"].absolute().as_uri()) == ("folder", "z.txt")


async def test_local_blobs_keep_working_copies_in_scratch(tmp_path: Path) -> None:
    blobs = LocalBlobs({}, tmp_path / "scratch")
    await blobs.ensure_container("dedup-working")
    url = await blobs.upload("dedup-working", "abc.jpg", b"jpeg", "image/jpeg")
    assert blobs.locate(url) == ("dedup-working", "abc.jpg")
    assert await blobs.download("dedup-working", "abc.jpg", 100) == b"jpeg"
    assert blobs.path("dedup-working", "abc.jpg").is_relative_to((tmp_path / "scratch").resolve())
    with pytest.raises(BlobMissingError):
        blobs.path("dedup-working", "../../escape.jpg")
    await blobs.delete("dedup-working", "abc.jpg")
    await blobs.delete("dedup-working", "abc.jpg")  # idempotent
    with pytest.raises(BlobMissingError):
        await blobs.download("dedup-working", "abc.jpg", 100)
    assert blobs.locate("https://elsewhere.example/abc.jpg") is None


async def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    blobs = LocalBlobs({"folder": {"pipe.jpg": tmp_path / "pipe.jpg"}}, tmp_path / "s")
    with pytest.raises(BlobMissingError, match="not a regular file"):
        await asyncio.wait_for(blobs.download("folder", "pipe.jpg", 100), 5)


async def test_a_symlink_loop_is_missing_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").symlink_to("b.jpg")
    (tmp_path / "b.jpg").symlink_to("a.jpg")
    blobs = LocalBlobs({"folder": {"a.jpg": tmp_path / "a.jpg"}}, tmp_path / "s")
    with pytest.raises(BlobMissingError, match="cannot be read: Too many levels"):
        await blobs.download("folder", "a.jpg", 100)


def test_an_entry_names_images_by_id_with_their_paths_beside() -> None:
    paths = {"i1": "a.jpg", "i2": "b.jpg", "i3": "c.jpg"}
    dup = row("i2", "b.jpg", decision="duplicate", keep=False, duplicate_of="i1", similar=("i3",))
    e = entry(dup, paths)
    assert e["path"] == "b.jpg" and e["duplicate_of"] == "i1" and e["similar"] == ["i3"]
    assert e["duplicate_of_path"] == "a.jpg" and e["similar_paths"] == ["c.jpg"]
    assert e["keep"] is False and e["cluster"] == "c" and e["quality"] == 0.5
    bad = entry(row("i3", "c.jpg", decision="unreadable", status="corrupt", reason="r"), paths)
    assert bad["quality"] is None and bad["duplicate_of"] is None and bad["status"] == "corrupt"


def test_the_progress_line_tells_count_rate_and_eta() -> None:
    line = progress_line("hashing", 25, 100, 5.0)
    assert "25/100" in line and "25%" in line and "5.0 img/s" in line and "ETA 0:15" in line
    assert "in 0:20" in progress_line("matching", 100, 100, 20.0)
    assert "0/0" in progress_line("hashing", 0, 0, 0.0)


async def test_bounded_map_keeps_order_and_limit() -> None:
    running = peak = 0

    async def slow(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001 * (x % 3))
        running -= 1
        return x * 2

    assert await bounded_map(list(range(20)), slow, 4) == [x * 2 for x in range(20)]
    assert peak <= 4
    assert await bounded_map([], slow, 4) == []
