"""A byte budget shared by the threads of one process: hold bytes, wait until they are free.

The hasher's decodes take their estimated peak from it, so that however many images are
in flight, their decodes together stay within the service's memory limit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager


class OverBudgetError(ValueError):
    """A request larger than the whole budget: waiting would never make room for it."""

    def __init__(self, wanted: int, capacity: int) -> None:
        super().__init__(f"{wanted} bytes is more than the whole budget of {capacity}")
        self.wanted = wanted
        self.capacity = capacity


class ByteBudget:
    """`capacity` bytes shared by concurrent holders, handed out first come, first served
    (a large request is not overtaken for ever by small ones)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a budget needs at least one byte")
        self.capacity = capacity
        self._free = capacity
        self._queue: deque[object] = deque()
        self._changed = threading.Condition()

    @property
    def in_use(self) -> int:
        with self._changed:
            return self.capacity - self._free

    @property
    def waiting(self) -> int:
        with self._changed:
            return len(self._queue)

    def hold(self, wanted: int) -> AbstractContextManager[None]:
        """Block until `wanted` bytes are free, hold them for the block, give them back."""
        return self._hold(wanted)

    @contextmanager
    def _hold(self, wanted: int) -> Iterator[None]:
        if wanted > self.capacity:
            raise OverBudgetError(wanted, self.capacity)
        wanted = max(0, wanted)
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                self._changed.wait_for(lambda: self._queue[0] is ticket and self._free >= wanted)
            finally:
                self._queue.remove(ticket)
            self._free -= wanted
            self._changed.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._changed:
                self._free += wanted
                self._changed.notify_all()


__all__ = ["ByteBudget", "OverBudgetError"]
