"""A least-recently-used cache of image views (features + grey copy), bounded in bytes.

Memory does not grow with the number of images seen: inserting past the budget evicts
the least recently used views first. Not thread-safe: the handler uses it from the
event loop only (the CPU work in worker threads never touches it).
"""

from __future__ import annotations

from collections import OrderedDict

from services.matcher.geometry import ImageView


class ViewCache:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._views: OrderedDict[str, ImageView] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._views)

    def __contains__(self, key: str) -> bool:
        return key in self._views

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> ImageView | None:
        view = self._views.get(key)
        if view is not None:
            self._views.move_to_end(key)
        return view

    def put(self, key: str, view: ImageView) -> None:
        """Insert or replace; a view larger than the whole budget is not kept."""
        self.drop(key)
        if view.nbytes > self._max_bytes:
            return
        self._views[key] = view
        self._bytes += view.nbytes
        while self._bytes > self._max_bytes:
            _, evicted = self._views.popitem(last=False)
            self._bytes -= evicted.nbytes

    def drop(self, key: str) -> None:
        view = self._views.pop(key, None)
        if view is not None:
            self._bytes -= view.nbytes
