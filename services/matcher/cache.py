"""Least-recently-used caches, both bounded in bytes: image views by (image id, e_tag),
and pair decisions.

Memory does not grow with the number of images seen: inserting past the budget evicts
the least recently used entries first. Not thread-safe: the handler uses them from the
event loop only (the CPU work in worker threads never touches them).

``InFlight`` covers what a cache cannot: the same pair (or view) asked for by two groups
at once, before either has put it in its cache (`dedup scan` judges both directions of
a pair concurrently): the second waits for the first's answer instead of computing it
again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeAlias, TypeVar

from dedup.lru import ByteLRU
from services.matcher.decide import Decision
from services.matcher.geometry import ImageView

# (image id, e_tag): one version of one image's blob.
Version: TypeAlias = tuple[str, str]
# The two versions of a pair, in canonical (sorted) order.
PairKey: TypeAlias = tuple[Version, Version]


class ViewCache:
    """One view per image id, valid for the e_tag it was computed from: an overwritten
    blob (same id, new e_tag) is a miss and replaces it, the same version is never
    decoded twice."""

    def __init__(self, max_bytes: int) -> None:
        self._views: ByteLRU[str, tuple[str, ImageView]] = ByteLRU(
            max_bytes, lambda _, entry: entry[1].nbytes
        )

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self._views

    @property
    def max_bytes(self) -> int:
        return self._views.max_bytes

    @property
    def nbytes(self) -> int:
        return self._views.nbytes

    def get(self, image_id: str, e_tag: str = "") -> ImageView | None:
        """The cached view of this version; ``e_tag`` "": whichever version is cached."""
        entry = self._views.get(image_id)
        if entry is None or (e_tag and entry[0] != e_tag):
            return None
        return entry[1]

    def put(self, image_id: str, view: ImageView, e_tag: str = "") -> None:
        """Insert or replace; a view larger than the whole budget is not kept."""
        self._views.put(image_id, (e_tag, view))

    def drop(self, image_id: str) -> None:
        self._views.pop(image_id)


def pair_key(a: Version, b: Version) -> PairKey:
    """The pair's key, whichever of the two is the new image."""
    return (a, b) if a <= b else (b, a)


# What one pair decision's entry holds besides its strings (the OrderedDict's link, the
# key's tuples, the Decision and its provenance), measured with tracemalloc
# (test_cache.py checks the estimate).
PAIR_ENTRY_BYTES = 720


def pair_bytes(key: PairKey, decision: Decision) -> int:
    """The memory an entry takes, estimated."""
    strings = sum(len(part) for version in key for part in version) + len(decision.reason)
    return PAIR_ENTRY_BYTES + strings


class PairCache(ByteLRU[PairKey, Decision]):
    """Decisions of verified pairs (direction-free), keyed by ``pair_key``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(max_bytes, pair_bytes)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InFlight(Generic[K, V]):
    """The computations under way, by key, on one event loop: ``claim`` a key before
    computing it, ``wait`` for a claimed one's value (None: none under way, or it ended
    without one; then compute it yourself)."""

    def __init__(self) -> None:
        self._pending: dict[K, asyncio.Future[V | None]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    async def wait(self, key: K) -> V | None:
        pending = self._pending.get(key)
        # Shielded: a waiter cancelled does not cancel the computation others wait for.
        return None if pending is None else await asyncio.shield(pending)

    @contextlib.contextmanager
    def claim(self, key: K) -> Iterator[Callable[[V], None]]:
        """Yields the setter of the key's value; on leaving, waiters get it (or None)."""
        future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            yield future.set_result
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
            if not future.done():
                future.set_result(None)
