"""Where the ranker keeps its graph: each image's own links and the adjacency they make.

Only images with links are in it. `dedup scan` and the tests keep it in dicts
(`MemoryGraph`); the service keeps it in the SQLite file of its cards (`SpilledGraph`),
so that its memory does not grow with the images linked (the README's "Memory and
start-up time"). Either holds exactly what the images' cards say: it is rebuilt from
them at every start.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Final, Protocol

# Ids of linked images read per query while `sources` walks them all.
PAGE: Final = 1000


class Graph(Protocol):
    """Each image's own links (serialised) and the undirected edges by verdict."""

    def own(self, image_id: str, /) -> bytes | None: ...

    def set_own(self, image_id: str, links: bytes | None, /) -> None: ...

    def sources(self) -> Iterator[str]:
        """Every image with links of its own, in id order (it may change while walked)."""
        ...

    def neighbours(self, image_id: str, verdict: int, /) -> set[str]: ...

    def has_edge(self, a: str, b: str, verdict: int, /) -> bool: ...

    def add_edge(self, a: str, b: str, verdict: int, /) -> None: ...

    def remove_edge(self, a: str, b: str, verdict: int, /) -> None: ...

    def linked(self) -> int:
        """Images with at least one edge."""
        ...


class MemoryGraph:
    def __init__(self) -> None:
        self._own: dict[str, bytes] = {}
        self._adjacent: dict[int, dict[str, set[str]]] = {}

    def own(self, image_id: str) -> bytes | None:
        return self._own.get(image_id)

    def set_own(self, image_id: str, links: bytes | None) -> None:
        if links is None:
            self._own.pop(image_id, None)
        else:
            self._own[image_id] = links

    def sources(self) -> Iterator[str]:
        yield from sorted(self._own)

    def neighbours(self, image_id: str, verdict: int) -> set[str]:
        return set(self._adjacent.get(verdict, {}).get(image_id, ()))

    def has_edge(self, a: str, b: str, verdict: int) -> bool:
        return b in self._adjacent.get(verdict, {}).get(a, ())

    def add_edge(self, a: str, b: str, verdict: int) -> None:
        adjacency = self._adjacent.setdefault(verdict, {})
        adjacency.setdefault(a, set()).add(b)
        adjacency.setdefault(b, set()).add(a)

    def remove_edge(self, a: str, b: str, verdict: int) -> None:
        adjacency = self._adjacent.get(verdict, {})
        for one, other in ((a, b), (b, a)):
            if one in adjacency:
                adjacency[one].discard(other)
                if not adjacency[one]:
                    del adjacency[one]

    def linked(self) -> int:
        return len(set().union(*(adjacency.keys() for adjacency in self._adjacent.values())))


class SpilledGraph:
    """The graph in tables of an SQLite database (the cards' file): every edge stored in
    both directions, so an image's neighbours are one range of the primary key. Not
    thread-safe, as the cards."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        db.execute("CREATE TABLE own_links (id TEXT PRIMARY KEY, links BLOB) WITHOUT ROWID")
        db.execute(
            "CREATE TABLE edges (a TEXT, verdict INTEGER, b TEXT, PRIMARY KEY (a, verdict, b))"
            " WITHOUT ROWID"
        )

    def own(self, image_id: str) -> bytes | None:
        row = self._db.execute("SELECT links FROM own_links WHERE id = ?", (image_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_own(self, image_id: str, links: bytes | None) -> None:
        if links is None:
            self._db.execute("DELETE FROM own_links WHERE id = ?", (image_id,))
        else:
            self._db.execute(
                "INSERT INTO own_links (id, links) VALUES (?, ?)"
                " ON CONFLICT (id) DO UPDATE SET links = excluded.links",
                (image_id, links),
            )

    def sources(self) -> Iterator[str]:
        after = ""
        while True:
            page = [
                row[0]
                for row in self._db.execute(
                    "SELECT id FROM own_links WHERE id > ? ORDER BY id LIMIT ?", (after, PAGE)
                )
            ]
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1]

    def neighbours(self, image_id: str, verdict: int) -> set[str]:
        rows = self._db.execute(
            "SELECT b FROM edges WHERE a = ? AND verdict = ?", (image_id, verdict)
        )
        return {row[0] for row in rows}

    def has_edge(self, a: str, b: str, verdict: int) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM edges WHERE a = ? AND verdict = ? AND b = ?", (a, verdict, b)
        ).fetchone()
        return row is not None

    def add_edge(self, a: str, b: str, verdict: int) -> None:
        self._db.executemany(
            "INSERT OR IGNORE INTO edges (a, verdict, b) VALUES (?, ?, ?)",
            ((a, verdict, b), (b, verdict, a)),
        )

    def remove_edge(self, a: str, b: str, verdict: int) -> None:
        self._db.executemany(
            "DELETE FROM edges WHERE a = ? AND verdict = ? AND b = ?",
            ((a, verdict, b), (b, verdict, a)),
        )

    def linked(self) -> int:
        count: int = self._db.execute("SELECT count(DISTINCT a) FROM edges").fetchone()[0]
        return count


__all__ = ["Graph", "MemoryGraph", "SpilledGraph"]
