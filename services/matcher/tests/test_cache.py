"""The caches: views (least recently used out first, bounded in bytes, by e_tag) and pairs."""

from __future__ import annotations

import hashlib
import tracemalloc
from dataclasses import replace

import numpy as np

from dedup.v1.groups_pb2 import Derivation, Verdict
from services.matcher.cache import PairCache, ViewCache, pair_bytes, pair_key
from services.matcher.decide import Check, Decision
from services.matcher.geometry import ImageView, MatchParams
from services.matcher.provenance import Provenance


def view(nbytes: int) -> ImageView:
    grey = np.zeros(nbytes, np.uint8).reshape(1, -1)
    return ImageView(grey, 1.0, (0, 1, 0, nbytes), MatchParams(max_features=0))


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


def test_a_view_is_valid_for_the_e_tag_it_was_computed_from() -> None:
    cache = ViewCache(max_bytes=300)
    v1, v2 = view(100), view(100)
    cache.put("a", v1, "etag-1")
    assert cache.get("a", "etag-1") is v1
    assert cache.get("a", "etag-2") is None  # an overwritten blob: recompute
    assert cache.get("a") is v1  # no e_tag known: whichever version is cached
    cache.put("a", v2, "etag-2")  # the new version replaces the old one
    assert cache.get("a", "etag-1") is None and cache.get("a", "etag-2") is v2
    assert len(cache) == 1 and cache.nbytes == 100
    cache.drop("a")
    assert cache.get("a") is None and cache.nbytes == 0


def decision(reason: str) -> Decision:
    return Decision(Verdict.VERDICT_DUPLICATE, Check.ALIGNED_RESIDUAL, reason)


def test_a_pair_has_one_key_whichever_image_is_new() -> None:
    a, b = ("a", "etag-a"), ("b", "etag-b")
    assert pair_key(a, b) == pair_key(b, a) == (a, b)
    assert pair_key(("a", "etag-2"), b) != pair_key(a, b)


def test_the_pair_cache_keeps_the_most_recently_used_pairs_within_its_bytes() -> None:
    keys = [pair_key((f"x{i}", "e"), ("y", "e")) for i in range(3)]
    size = pair_bytes(keys[0], decision("0"))
    cache = PairCache(max_bytes=2 * size)
    cache.put(keys[0], decision("0"))
    cache.put(keys[1], decision("1"))
    assert cache.get(keys[0]) == decision("0")  # now the most recent
    cache.put(keys[2], decision("2"))
    assert len(cache) == 2 and cache.get(keys[1]) is None
    assert cache.get(keys[0]) is not None and cache.get(keys[2]) is not None
    assert cache.nbytes == 2 * size
    cache.put(keys[2], decision("2"))  # again: replaced, not counted twice
    assert cache.nbytes == 2 * size
    off = PairCache(max_bytes=0)
    off.put(keys[0], decision("0"))
    assert len(off) == 0


def test_a_pair_entrys_estimate_is_near_what_it_takes() -> None:
    entries = 2000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = PairCache(max_bytes=1 << 40)
        for i in range(entries):
            ours = (hashlib.sha256(b"%d" % i).hexdigest(), f'"0x8DC{i:012d}"')
            theirs = (hashlib.sha256(b"%d" % (i + 1)).hexdigest(), f'"0x8DD{i:012d}"')
            found = Provenance(
                0.9, 0.8, Derivation.DERIVATION_CROP, Derivation.DERIVATION_UNSPECIFIED
            )
            cache.put(
                pair_key(ours, theirs),
                replace(decision(f"{120 + i % 50} inliers of {130 + i} matches"), provenance=found),
            )
        taken = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.75 < cache.nbytes / taken < 1.33, (cache.nbytes / entries, taken / entries)
