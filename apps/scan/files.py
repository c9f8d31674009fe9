"""The scanned folder: every file under it, by its path, as the BlobCreated event a
listing of blob storage would have produced for it."""

from __future__ import annotations

import mimetypes
import os
import time
from dataclasses import dataclass
from pathlib import Path

from dedup.blob import BlobInfo
from dedup.events import created_from_listing
from dedup.v1.events_pb2 import BlobEvent

# The "storage account" of local files: image ids are image_id("local", <folder>, <path>).
ACCOUNT = "local"


@dataclass(frozen=True)
class LocalFile:
    name: str  # the path relative to the folder, with "/" (readable text: see `readable`)
    path: Path
    event: BlobEvent

    @property
    def image_id(self) -> str:
        return self.event.image_id


def readable(relative: str) -> str:
    """A relative path as text: a name that is not valid UTF-8 (os.walk hands it over with
    surrogate escapes) gets U+FFFD for its bad bytes; messages and JSON need real text."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def walk(root: Path) -> list[tuple[str, Path]]:
    """(name, path) of every file under `root`, recursively, sorted by name. Links to files
    count as files; linked directories are not followed (no loops, nothing outside)."""
    found: dict[str, Path] = {}
    for directory, dirs, files in os.walk(root, followlinks=False):
        # A link to a directory is listed among the directories: not walked, not a file.
        for name in files:
            path = Path(directory, name)
            text = readable(path.relative_to(root).as_posix())
            # Two names that differ only in bytes that are not UTF-8 read the same.
            unique, n = text, 1
            while unique in found:
                n += 1
                unique = f"{text} ({n})"
            found[unique] = path
        dirs.sort()
    return sorted(found.items())


def event_of(container: str, name: str, path: Path) -> BlobEvent:
    """The BlobCreated event of a listed blob (dedup.events.created_from_listing), with the
    file's URL; the ETag says which version of the file it was (mtime and size)."""
    try:
        st = path.stat()
        size, mtime_ns = st.st_size, st.st_mtime_ns
    except OSError:  # a dangling link: the hasher reports it missing
        size, mtime_ns = 0, time.time_ns()
    info = BlobInfo(
        name=name,
        size=size,
        etag=f'"{mtime_ns:x}-{size:x}"',
        content_type=mimetypes.guess_type(name)[0] or "",
        last_modified=mtime_ns / 1e9,
    )
    event = created_from_listing(ACCOUNT, "file://", container, info)
    event.data.url = path.absolute().as_uri()
    return event


def folder_container(root: Path) -> str:
    """The container of a folder's files: its full path."""
    return str(root.resolve())


def local_files(root: Path) -> list[LocalFile]:
    """Every file under `root` with its event."""
    container = folder_container(root)
    return [LocalFile(name, path, event_of(container, name, path)) for name, path in walk(root)]
