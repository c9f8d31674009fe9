"""A scan's state on disk: what the index pass made of each file, kept so that a re-run
(after Ctrl-C, or with files added or changed) loads it instead of decoding and embedding
the file again. The judging pass runs over the whole folder each time (a new file may be a
copy of any old one); of it, only the matcher's work on unchanged inputs is reused (below).

One SQLite file per folder, by default under $XDG_CACHE_HOME/dedup/scan (else
~/.cache/dedup/scan), named by a digest of the folder's resolved path: never inside the
scanned folder. WAL journal, each record committed as it is written: a process killed
mid-write loses at most the record it was writing (SQLite ignores a torn last frame), never
what was committed before. A file that is not a database (or is damaged) is set aside
and the scan starts afresh, saying so in one line.

A record, keyed by the file's image id (its folder and path): the file's version (the
scan's ETag: mtime in ns and size; a file whose version changed is redone), its hashed
group (dedup.v1 CandidateGroup: the event, the features with the hashes, status and
reason), its working copy (the JPEG the embedder and the matcher read) and its embedding
(float32, empty until embedded). And, from the judging pass, the matcher's output for
each image with the digest of its input (apps.scan.core.matcher_input): the matcher is most
of a judging pass, and its output is a function of its input group (the candidates with
their versions and the earlier stages' verdicts), so an image whose input is unchanged
(no new candidate, no candidate changed) is not matched again. The state's key (the record
format, the features' code and settings, the model) is kept beside them: a state written
under another key is not reused (cleared, one line says what differs); the matcher's own
code and settings are in each record's digest.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from dedup.v1.groups_pb2 import CandidateGroup

log = logging.getLogger("apps.scan")

# Raised when a record's layout changes meaning.
FORMAT = 1
FILE_SUFFIX = ".sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    image_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    etag TEXT NOT NULL,
    hashed BLOB NOT NULL,
    working_copy BLOB,
    embedding BLOB
);
CREATE TABLE IF NOT EXISTS judged (
    image_id TEXT PRIMARY KEY,
    input TEXT NOT NULL,
    matched BLOB NOT NULL
);
"""


def default_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the states live unless told: $XDG_CACHE_HOME/dedup/scan, ~/.cache/dedup/scan."""
    cache = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dedup" / "scan"


def state_file(folder: Path, directory: Path) -> Path:
    """The state file of `folder` in `directory`: the folder's last name (readable) and a
    digest of its resolved path (two folders of one name do not meet)."""
    resolved = str(folder.resolve())
    digest = hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    tail = "".join(c if c.isalnum() or c in "-_." else "_" for c in folder.resolve().name)
    return directory / f"{tail[:40] or 'root'}-{digest}{FILE_SUFFIX}"


def code_digest(paths: Iterable[Path]) -> str:
    """A digest of files' contents (the code that makes the features, a model's files):
    a change to any of them makes another key. Missing files count as empty."""
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.name.encode())
        with contextlib.suppress(OSError):
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@dataclass(frozen=True)
class Stored:
    """One file's record, as the index pass left it."""

    etag: str
    hashed: CandidateGroup
    has_working_copy: bool  # written out by `write_working_copies`, not held in memory
    embedding: npt.NDArray[np.float32] | None


class ScanState:
    """The state file of one folder, open: used by one thread at a time (the scan opens and
    loads it in a worker thread, then writes it from its event loop)."""

    def __init__(self, path: Path, connection: sqlite3.Connection, note: str = "") -> None:
        self.path = path
        self._db = connection
        # Why what was there is not reused (another key, a damaged file), or "".
        self.note = note
        self._closed = False
        # A write failed (the disk is full, another scan holds the file): the scan goes
        # on without keeping more (said once).
        self.failed = False

    @classmethod
    def open(cls, path: Path, key: Mapping[str, str], *, fresh: bool = False) -> ScanState:
        """The state at `path` (made if missing) under `key`; cleared if `fresh`, or if it
        was written under another key, or set aside if it is no database."""
        # Private: it holds a small copy of every picture (a folder made here is 0700).
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        note = ""
        try:
            db, stored = cls._read(path)
        except sqlite3.DatabaseError as error:
            aside = path.with_suffix(path.suffix + ".damaged")
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    Path(f"{path}{suffix}").replace(f"{aside}{suffix}")
            note = f"the state {path} could not be read ({error}): set aside, indexing afresh"
            db, stored = cls._connect(path), {}
        wanted = {"key." + k: v for k, v in key.items()}
        old = {k: v for k, v in stored.items() if k.startswith("key.")}
        if fresh or old != wanted:
            if old and old != wanted and not fresh:
                differs = sorted(
                    k.removeprefix("key.") for k in old.keys() | wanted.keys()
                    if old.get(k) != wanted.get(k)
                )  # fmt: skip
                note = (
                    f"the state {path} was written by another model or settings "
                    f"({', '.join(differs)} differ): not reused, indexing afresh"
                )
            with transaction(db):
                db.execute("DELETE FROM files")
                db.execute("DELETE FROM judged")
                db.execute("DELETE FROM meta")
                db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(wanted.items()))
        return cls(path, db, note)

    @classmethod
    def _read(cls, path: Path) -> tuple[sqlite3.Connection, dict[str, str]]:
        db = cls._connect(path)
        try:
            db.execute("SELECT count(*) FROM files").fetchone()
            return db, dict(db.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError:
            db.close()
            raise

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # Autocommit: every record is its own transaction, committed as it is written.
        db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at checkpoints, never torn
            db.executescript(SCHEMA)
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def load(self, versions: Mapping[str, str]) -> dict[str, Stored]:
        """The records of the files whose version (image id -> ETag) is the one stored."""
        found = {}
        rows = self._db.execute(
            "SELECT image_id, etag, hashed, length(working_copy) > 0, embedding FROM files"
        )
        for image_id, etag, hashed, has_copy, embedding in rows:
            if versions.get(image_id) != etag:
                continue
            try:
                group = CandidateGroup.FromString(hashed)
            except DecodeError:  # a record we cannot parse: the file is indexed again
                continue
            vector = np.frombuffer(embedding, np.float32).copy() if embedding else None
            found[image_id] = Stored(etag, group, bool(has_copy), vector)
        return found

    def write_working_copies(self, targets: Mapping[str, Path]) -> set[str]:
        """Each image's working copy (image id -> file) written out, one at a time (never
        all in memory); returns the image ids written."""
        done = set()
        rows = self._db.execute(
            "SELECT image_id, working_copy FROM files WHERE length(working_copy) > 0"
        )
        for image_id, data in rows:
            target = targets.get(image_id)
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                done.add(image_id)
        return done

    def _write(self, sql: str, values: tuple[object, ...]) -> None:
        if self.failed or self._closed:
            return
        try:
            self._db.execute(sql, values)
        except sqlite3.Error as error:
            self.failed = True
            log.warning("cannot write the state %s (%s): what is done from now on is not kept",
                        self.path, error)  # fmt: skip

    def put_hashed(self, name: str, group: CandidateGroup, working_copy: bytes | None) -> None:
        """A file's hashed group and working copy (its embedding comes later)."""
        self._write(
            "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, NULL)",
            (group.image_id, name, group.event.data.e_tag, group.SerializeToString(),
             working_copy),
        )  # fmt: skip

    def put_embedding(self, image_id: str, vector: npt.NDArray[np.float32]) -> None:
        self._write(
            "UPDATE files SET embedding = ? WHERE image_id = ?",
            (np.asarray(vector, np.float32).tobytes(), image_id),
        )

    def judged(self, image_id: str, digest: str) -> CandidateGroup | None:
        """The matcher's output stored for the image, if its input had this digest."""
        try:
            row = self._db.execute(
                "SELECT matched FROM judged WHERE image_id = ? AND input = ?", (image_id, digest)
            ).fetchone()
            return None if row is None else CandidateGroup.FromString(row[0])
        except (sqlite3.Error, DecodeError):  # unreadable: matched again
            return None

    def put_judged(self, image_id: str, digest: str, matched: CandidateGroup) -> None:
        self._write(
            "INSERT OR REPLACE INTO judged VALUES (?, ?, ?)",
            (image_id, digest, matched.SerializeToString()),
        )

    def counts(self) -> tuple[int, int]:
        """(files indexed, of them embedded); (0, 0) once closed."""
        if self._closed:
            return 0, 0
        try:
            row = self._db.execute("SELECT count(*), count(embedding) FROM files").fetchone()
        except sqlite3.Error:
            return 0, 0
        return int(row[0]), int(row[1])

    def forget_others(self, image_ids: Iterable[str]) -> None:
        """Drop the records of files no longer in the folder."""
        keep = set(image_ids)
        gone = [(i,) for (i,) in self._db.execute("SELECT image_id FROM files") if i not in keep]
        gone += [(i,) for (i,) in self._db.execute("SELECT image_id FROM judged") if i not in keep]
        with transaction(self._db):
            self._db.executemany("DELETE FROM files WHERE image_id = ?", gone)
            self._db.executemany("DELETE FROM judged WHERE image_id = ?", gone)

    def close(self) -> None:
        """Checkpointed and closed (again: nothing)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
