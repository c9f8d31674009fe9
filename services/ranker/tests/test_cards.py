"""The ranker's cards on disk, the recent ones in memory: bounded in bytes, all kept."""

from __future__ import annotations

import hashlib
import tracemalloc
from pathlib import Path

from dedup.v1.decisions_pb2 import Decision
from services.ranker.cards import SpilledCards, entry_bytes
from services.ranker.handler import Ranker
from services.ranker.tests.helpers import DUP, REJ, SIM, Img, group


def image_id(i: int) -> str:
    return hashlib.sha256(b"%d" % i).hexdigest()[:32]


def test_every_card_is_read_back_and_the_memory_held_stays_within_the_bound(
    tmp_path: Path,
) -> None:
    cards = SpilledCards(tmp_path, max_bytes=64 * 1024)
    try:
        for i in range(3000):
            cards[image_id(i)] = b"card %d " % i * 40
        cards[image_id(7)] = b"replaced"
        assert len(cards) == 3000
        assert cards.nbytes <= 64 * 1024
        assert cards[image_id(7)] == b"replaced"
        assert all(cards.get(image_id(i)) == b"card %d " % i * 40 for i in range(8, 3000))
        assert cards.get("unknown") is None and "unknown" not in cards
        assert cards.nbytes <= 64 * 1024
    finally:
        cards.close()
    assert not list(tmp_path.iterdir())  # the file goes with the store


def test_a_recent_cards_estimate_is_near_what_it_takes(tmp_path: Path) -> None:
    entries = 2000
    cards = SpilledCards(tmp_path, max_bytes=1 << 40)
    try:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(entries):
                cards[image_id(i)] = bytes(380 + i % 50)
            taken = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        estimated = sum(entry_bytes(image_id(i), bytes(380 + i % 50)) for i in range(entries))
        assert cards.nbytes == estimated
        assert 0.75 < estimated / taken < 1.33, (estimated / entries, taken / entries)
    finally:
        cards.close()


def grown_per_image(ranker: Ranker, first: int, last: int) -> float:
    """Python's memory the ranker gained per image from image `first` to `last` (unique
    images, each with a rejected candidate: what most of a real stream is)."""

    def feed(images: range) -> None:
        for i in images:
            ranker.handle(group(Img(image_id(i)), [(Img(image_id(i - 1)), REJ)]))

    tracemalloc.start()  # from the start: what the first images left is traced too
    try:
        feed(range(first))
        before = tracemalloc.get_traced_memory()[0]
        feed(range(first, last))
        return (tracemalloc.get_traced_memory()[0] - before) / (last - first)
    finally:
        tracemalloc.stop()


def test_the_rankers_memory_does_not_grow_with_the_images_it_has_seen(tmp_path: Path) -> None:
    ranker = Ranker(SpilledCards(tmp_path, max_bytes=128 * 1024))
    # All in memory (Ranker()), each image keeps ~390 B here; spilled, the 128 KiB of
    # recent cards were full after the first 300 images.
    assert grown_per_image(ranker, 1000, 4000) < 20
    assert len(ranker) == 4000
    assert ranker.decision(image_id(5)) is not None


def test_a_rebuild_one_record_at_a_time_equals_one_from_the_latest_decisions(
    tmp_path: Path,
) -> None:
    qualities = (0.9, 0.5, 0.7, 0.4, 0.6)
    a, b, c, d, e = (Img(x, quality=q) for x, q in zip("abcde", qualities, strict=True))
    live = Ranker()
    history: list[tuple[str, Decision | None]] = []
    for g in (
        group(a),
        group(b, [(a, DUP)]),
        group(c, [(b, DUP)]),
        group(d, [(c, SIM)]),
        group(b, [(a, REJ)]),  # b's links change: the topic holds both versions
        group(e),
    ):
        history += [(x.image_id, x) for x in live.handle(g).decisions]
    history.append(("e", None))  # a tombstone
    latest = {key: x for key, x in history if x is not None}
    del latest["e"]

    expected = Ranker()
    expected.restore(latest.values())
    streamed = Ranker(SpilledCards(tmp_path, max_bytes=1024))
    for key, x in history:
        streamed.forget(key) if x is None else streamed.take(x)
    assert streamed.repair().decisions == []
    assert len(streamed) == len(expected) == 4 and streamed.linked == expected.linked
    assert all(streamed.decision(i) == expected.decision(i) for i in "abcd")
    assert streamed.decision("e") is None
    more = group(d, [(a, DUP)])
    assert streamed.handle(more).decisions == expected.handle(more).decisions


def test_the_cards_file_leaves_nothing_in_the_folder_however_the_process_ends(
    tmp_path: Path,
) -> None:
    # A restarted container keeps its pod's /tmp: a file left by each crash would fill it.
    cards = SpilledCards(tmp_path, max_bytes=16)  # every card but the newest on disk
    for i in range(50):
        cards[f"img-{i}"] = bytes([i]) * 100
    assert list(tmp_path.iterdir()) == []
    assert cards["img-7"] == bytes([7]) * 100 and len(cards) == 50
    cards.close()
