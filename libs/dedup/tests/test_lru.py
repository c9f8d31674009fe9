from dedup.lru import ByteLRU


def sized(_: str, value: bytes) -> int:
    return len(value)


def test_putting_past_the_budget_evicts_the_least_recently_used_first() -> None:
    lru: ByteLRU[str, bytes] = ByteLRU(10, sized)
    lru.put("a", b"xxxx")
    lru.put("b", b"xxxx")
    assert lru.get("a") == b"xxxx"  # now b is the least recently used
    lru.put("c", b"xxxx")
    assert "b" not in lru and "a" in lru and "c" in lru
    assert lru.nbytes == 8


def test_a_replaced_entry_counts_once_and_one_over_the_budget_is_not_kept() -> None:
    lru: ByteLRU[str, bytes] = ByteLRU(10, sized)
    lru.put("a", b"xxxx")
    lru.put("a", b"xx")
    assert lru.nbytes == 2 and len(lru) == 1
    lru.put("big", b"x" * 11)
    assert "big" not in lru and lru.nbytes == 2
    assert lru.pop("a") == b"xx" and lru.nbytes == 0 and lru.pop("a") is None
