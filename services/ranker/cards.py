"""Where the ranker keeps each image's card (its last decision, serialised).

A card is needed again only when a later group links to its image, so the service keeps
them all in an SQLite file on local disk and only the most recently used in memory,
bounded in bytes: the ranker's memory stays flat however many images the decisions topic
holds (the file grows instead: the README's "Memory and start-up time"). The file is a
spill, not a second source of truth: it is made afresh at every start and filled from
the topic (`Ranker.restore`), and unlinked once open. `dedup scan` and the tests keep
the cards in a plain dict (`Cards` is what the ranker needs of either).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Final, Protocol

from dedup.lru import ByteLRU

# What one recent card takes besides its bytes: its id (32 characters), the bytes
# object's header and the OrderedDict's entry, measured with tracemalloc (test_cards.py
# checks the estimate).
ENTRY_BYTES: Final = 150
# SQLite's own page cache, per connection (its default is 2 MiB).
PAGE_CACHE_KIB: Final = 2048


class Cards(Protocol):
    """The cards by image id: a dict has all of it."""

    def get(self, image_id: str, /) -> bytes | None: ...

    def __getitem__(self, image_id: str, /) -> bytes: ...

    def __setitem__(self, image_id: str, card: bytes, /) -> None: ...

    def __contains__(self, image_id: object, /) -> bool: ...

    def __len__(self) -> int: ...

    def pop(self, image_id: str, default: None, /) -> bytes | None: ...


def entry_bytes(image_id: str, card: bytes) -> int:
    """The memory a recent card takes, estimated."""
    return ENTRY_BYTES + len(image_id) + len(card)


class SpilledCards:
    """Every card in an SQLite file, the most recently used up to `max_bytes` in memory
    too. Not thread-safe: the ranker handles one group at a time on the event loop."""

    def __init__(self, folder: Path | str, max_bytes: int) -> None:
        self._recent: ByteLRU[str, bytes] = ByteLRU(max_bytes, entry_bytes)
        handle, path = tempfile.mkstemp(dir=folder, prefix="ranker-cards-", suffix=".sqlite")
        os.close(handle)
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            # Nothing to recover after a crash (the next start rebuilds from the topic):
            # no journal, no fsync.
            for pragma in ("journal_mode = OFF", "synchronous = OFF", "locking_mode = EXCLUSIVE",
                           f"cache_size = -{PAGE_CACHE_KIB}"):  # fmt: skip
                self._db.execute(f"PRAGMA {pragma}")
            self._db.execute("CREATE TABLE cards (id TEXT PRIMARY KEY, card BLOB) WITHOUT ROWID")
        finally:
            # Unlinked once open (no journal names it again): however the process ends,
            # the file goes with it, and a restarted container (its pod's /tmp kept)
            # finds no cards of its predecessors filling the volume.
            os.unlink(path)

    @property
    def database(self) -> sqlite3.Connection:
        """The file's connection, for the graph's tables (`SpilledGraph`)."""
        return self._db

    @property
    def max_bytes(self) -> int:
        return self._recent.max_bytes

    @property
    def nbytes(self) -> int:
        """The memory the recent cards take (estimated)."""
        return self._recent.nbytes

    def __len__(self) -> int:
        """Counted in the file (a scan of it: for logs and benchmarks, not per group)."""
        count: int = self._db.execute("SELECT count(*) FROM cards").fetchone()[0]
        return count

    def __contains__(self, image_id: object) -> bool:
        return isinstance(image_id, str) and self.get(image_id) is not None

    def __getitem__(self, image_id: str) -> bytes:
        found = self.get(image_id)
        if found is None:
            raise KeyError(image_id)
        return found

    def get(self, image_id: str) -> bytes | None:
        found = self._recent.get(image_id)
        if found is not None:
            return found
        row = self._db.execute("SELECT card FROM cards WHERE id = ?", (image_id,)).fetchone()
        if row is None:
            return None
        card: bytes = row[0]
        self._recent.put(image_id, card)
        return card

    def __setitem__(self, image_id: str, card: bytes) -> None:
        if self._recent.get(image_id) == card:
            return
        self._db.execute(
            "INSERT INTO cards (id, card) VALUES (?, ?)"
            " ON CONFLICT (id) DO UPDATE SET card = excluded.card",
            (image_id, card),
        )
        self._recent.put(image_id, card)

    def pop(self, image_id: str, default: None = None) -> bytes | None:
        found = self.get(image_id)
        self._db.execute("DELETE FROM cards WHERE id = ?", (image_id,))
        self._recent.pop(image_id)
        return found if found is not None else default

    def close(self) -> None:
        self._db.close()


__all__ = ["Cards", "SpilledCards"]
