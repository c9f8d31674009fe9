"""A least-recently-used map bounded in bytes: the services' caches (the matcher's views
and pair decisions, the ranker's recent cards) keep memory flat whatever they see."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """Entries up to `max_bytes` by `size` (each entry's estimate, taken once when put):
    putting past the budget evicts the least recently used first; an entry larger than
    the whole budget is not kept. Not thread-safe."""

    def __init__(self, max_bytes: int, size: Callable[[K, V], int]) -> None:
        self._max_bytes = max_bytes
        self._size = size
        self._entries: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def nbytes(self) -> int:
        """What the entries take, by their estimates."""
        return self._bytes

    def get(self, key: K) -> V | None:
        """The entry, now the most recently used; None when it is not held."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: K, value: V) -> None:
        """Insert or replace, then evict down to the budget."""
        self.pop(key)
        size = self._size(key, value)
        if size > self._max_bytes:
            return
        self._entries[key] = (value, size)
        self._bytes += size
        while self._bytes > self._max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self._bytes -= evicted

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._bytes -= entry[1]
        return entry[0]
