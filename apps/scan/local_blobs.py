"""Blob storage on the local disk, for `dedup scan`: the `dedup.blob.Blobs` the services use.

Two kinds of container:
- the scanned folder: read-only, a table of blob name -> file (the walk made the names;
  a file name that is not valid UTF-8 gets a readable name, the table still finds it);
- writable containers (the hasher's working copies): a directory each, under a scratch
  directory that the scan deletes at the end.

URLs are `file://` URIs of the files, so `locate` maps a working copy URL back, as
`BlobStore.locate` does for an account's URLs.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from dedup.blob import BlobMissingError, BlobTooLargeError


class ReadOnlyContainerError(PermissionError):
    """The scanned folder is never written to or deleted from."""


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, a device never end
            raise BlobMissingError(f"{path} is not a regular file")
        size = info.st_size
        if size > max_bytes:
            raise BlobTooLargeError(f"{size} bytes is over the {max_bytes} limit")
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except (FileNotFoundError, NotADirectoryError) as error:
        raise BlobMissingError(f"{path} not found") from error
    except IsADirectoryError as error:
        raise BlobMissingError(f"{path} is a directory") from error
    except OSError as error:
        # Not readable by us (mode 000 to a non-root user), a symlink loop (ELOOP), an I/O
        # error: this file's status, never a failure of the scan.
        raise BlobMissingError(f"{path} cannot be read: {error.strerror or error}") from error
    if len(data) > max_bytes:  # grew since stat
        raise BlobTooLargeError(f"over the {max_bytes} limit")
    return data


class LocalBlobs:
    def __init__(self, folders: Mapping[str, Mapping[str, Path]], scratch: Path) -> None:
        """`folders`: read-only containers, each blob name -> file; `scratch`: where the
        writable containers live (one directory each, made on first use)."""
        self._files = {c: dict(names) for c, names in folders.items()}
        self._scratch = scratch.resolve()
        self._dirs: dict[str, Path] = {}
        self._by_url = {
            path.absolute().as_uri(): (c, name)
            for c, names in self._files.items()
            for name, path in names.items()
        }

    def add_file(self, container: str, name: str, path: Path) -> None:
        """One more read-only blob: `path` as `name` in `container` (an image checked
        against the scanned folder)."""
        self._files.setdefault(container, {})[name] = path
        self._by_url.setdefault(path.absolute().as_uri(), (container, name))

    def path(self, container: str, name: str) -> Path:
        """The file behind a blob (it may not exist)."""
        if container in self._files:
            found = self._files[container].get(name)
            if found is None:
                raise BlobMissingError(f"{container}/{name} not found")
            return found
        root = self._dir(container)
        target = (root / name).resolve()
        if not name or not target.is_relative_to(root):
            raise BlobMissingError(f"{name!r} is not a blob name in {container}")
        return target

    def url(self, container: str, name: str) -> str:
        return self.path(container, name).absolute().as_uri()

    def _dir(self, container: str) -> Path:
        if container not in self._dirs:
            # One directory per writable container; its name need not be the container's.
            self._dirs[container] = self._scratch / f"container-{len(self._dirs)}"
        return self._dirs[container]

    async def ensure_container(self, container: str) -> None:
        if container not in self._files:
            await asyncio.to_thread(self._dir(container).mkdir, parents=True, exist_ok=True)

    async def download(self, container: str, name: str, max_bytes: int) -> bytes:
        return await asyncio.to_thread(_read, self.path(container, name), max_bytes)

    async def upload(
        self,
        container: str,
        name: str,
        data: bytes,
        content_type: str = "application/octet-stream",
    ) -> str:
        if container in self._files:
            raise ReadOnlyContainerError(f"{container} is the scanned folder: never written")
        target = self.path(container, name)

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

        await asyncio.to_thread(write)
        return target.as_uri()

    async def delete(self, container: str, name: str, if_match: str | None = None) -> None:
        if container in self._files:
            raise ReadOnlyContainerError(f"{container} is the scanned folder: never deleted from")
        try:
            target = self.path(container, name)
        except BlobMissingError:
            return
        await asyncio.to_thread(target.unlink, missing_ok=True)

    def locate(self, url: str) -> tuple[str, str] | None:
        if url in self._by_url:
            return self._by_url[url]
        parts = urlsplit(url)
        if parts.scheme != "file":
            return None
        path = Path(url2pathname(parts.path))
        for container, root in self._dirs.items():
            if path.is_relative_to(root):
                return container, path.relative_to(root).as_posix()
        return None
