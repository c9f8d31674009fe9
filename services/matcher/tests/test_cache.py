"""The view cache: least recently used out first, bounded in bytes."""

from __future__ import annotations

import numpy as np

from services.matcher.cache import ViewCache
from services.matcher.geometry import ImageView, KeypointSet


def view(nbytes: int) -> ImageView:
    empty = KeypointSet(np.zeros((0, 2), np.float32), None)
    grey = np.zeros(nbytes, np.uint8).reshape(1, -1)
    return ImageView(grey, 1.0, (0, 1, 0, nbytes), empty, empty)


def test_the_least_recently_used_view_goes_first() -> None:
    cache = ViewCache(max_bytes=300)
    a, b, c = view(100), view(100), view(100)
    cache.put("a", a)
    cache.put("b", b)
    cache.put("c", c)
    assert cache.get("a") is a  # "b" is now the oldest
    cache.put("d", view(100))
    assert "b" not in cache and {"a", "c", "d"} <= {k for k in "abcd" if k in cache}
    assert cache.nbytes == 300 and len(cache) == 3


def test_memory_stays_within_the_budget_whatever_comes_in() -> None:
    cache = ViewCache(max_bytes=1000)
    sizes = {f"img-{i}": 37 + i % 90 for i in range(200)}
    for key, size in sizes.items():
        cache.put(key, view(size))
        assert 0 < cache.nbytes <= 1000 and key in cache
    assert cache.nbytes == sum(size for key, size in sizes.items() if key in cache)


def test_replacing_and_dropping_keep_the_byte_count_exact() -> None:
    cache = ViewCache(max_bytes=1000)
    cache.put("a", view(100))
    cache.put("a", view(250))
    assert cache.nbytes == 250 and len(cache) == 1
    cache.drop("a")
    cache.drop("never there")
    assert cache.nbytes == 0 and len(cache) == 0


def test_a_view_bigger_than_the_budget_is_not_kept() -> None:
    cache = ViewCache(max_bytes=100)
    cache.put("small", view(50))
    cache.put("huge", view(500))
    assert "huge" not in cache and "small" in cache
    zero = ViewCache(max_bytes=0)
    zero.put("a", view(1))
    assert len(zero) == 0
