"""`dedup act` against blob storage: each duplicate checked, then acted on or put back.

An in-memory stand-in for `dedup.blob.BlobStore`, with its conditions (ETags, "only if
absent"); tests/integration/test_report_actions.py runs the same on Azurite.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from itertools import count

from dedup import actions
from dedup.blob import BlobChangedError, BlobExistsError, BlobInfo, BlobMissingError
from dedup.tests.test_actions import KEPT, dup

Where = tuple[str, str]
_etags = count(100)


@dataclass(frozen=True)
class Stored:
    data: bytes
    etag: str
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class FakeBlobs:
    """What `dedup act` needs of blob storage, in memory; `during_copy` runs inside a copy."""

    def __init__(self) -> None:
        self.blobs: dict[Where, Stored] = {}
        self.during_copy: Callable[[], None] = lambda: None

    def put(self, where: Where, data: bytes, etag: str | None = None) -> None:
        self.blobs[where] = Stored(data, etag or f"0x{next(_etags)}")

    async def properties(self, container: str, name: str) -> BlobInfo | None:
        b = self.blobs.get((container, name))
        return None if b is None else BlobInfo(name, len(b.data), b.etag, "", 0.0, b.metadata)

    async def container_exists(self, container: str) -> bool:
        return True

    async def get_tags(self, container: str, name: str) -> dict[str, str]:
        return dict(self._get((container, name)).tags)

    async def set_tags(self, container: str, name: str, tags: Mapping[str, str]) -> None:
        b = self._get((container, name))
        self.blobs[container, name] = replace(b, tags=b.tags | dict(tags))

    async def copy(
        self,
        source: Where,
        target: Where,
        *,
        if_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> str:
        self.during_copy()  # what happens meanwhile; the copy itself is atomic, as Azure's
        b = self._get(source, if_match)
        if if_absent and target in self.blobs:
            raise BlobExistsError(target)
        meta = b.metadata if metadata is None else dict(metadata)
        self.blobs[target] = Stored(b.data, f"0x{next(_etags)}", meta, dict(tags or {}))
        return "/".join(target)

    async def delete(self, container: str, name: str, if_match: str | None = None) -> None:
        if (container, name) in self.blobs:
            self._get((container, name), if_match)
            del self.blobs[container, name]

    def _get(self, where: Where, if_match: str | None = None) -> Stored:
        if where not in self.blobs:
            raise BlobMissingError(where)
        if if_match and self.blobs[where].etag != if_match:
            raise BlobChangedError(where)
        return self.blobs[where]


def judged_store() -> tuple[FakeBlobs, actions.Action]:
    """Blob storage as the pipeline judged it: the kept copy and one duplicate of it."""
    store = FakeBlobs()
    store.put(("uploads", "k.jpg"), b"kept", "0xK")
    store.put(("uploads", "a.jpg"), b"copy", "0xA")
    store.blobs["uploads", "a.jpg"] = replace(
        store.blobs["uploads", "a.jpg"], metadata={"camera": "x100"}, tags={"owner": "ann"}
    )
    (action,), _ = actions.plan([KEPT, dup("a")], "quarantine", "q")
    return store, action


async def test_a_move_keeps_the_blob_as_it_was_and_a_restore_brings_it_back() -> None:
    store, a = judged_store()
    before = store.blobs["uploads", "a.jpg"]
    moved = await actions.settle(store, a, "quarantine", apply=True)
    assert moved == actions.Outcome("done", "moved: uploads/a.jpg -> q/uploads/a.jpg", 100)
    copy = store.blobs["q", "uploads/a.jpg"]
    assert (copy.data, copy.tags) == (b"copy", {"owner": "ann"})
    assert copy.metadata == {"camera": "x100"} | a.metadata
    assert ("uploads", "a.jpg") not in store.blobs
    # The next run finds it done: not counted, not printed, not an error.
    again = await actions.settle(store, a, "quarantine", apply=True)
    assert again.status == "already"

    quarantined = await store.properties("q", "uploads/a.jpg")
    assert quarantined is not None
    (r,), _ = actions.plan_restore("q", [quarantined])
    restored = await actions.settle_restore(store, r, apply=True)
    assert restored.line == "restored: q/uploads/a.jpg -> uploads/a.jpg"
    back = store.blobs["uploads", "a.jpg"]
    assert (back.data, back.metadata, back.tags) == (before.data, before.metadata, before.tags)
    assert ("q", "uploads/a.jpg") not in store.blobs


async def test_a_kept_copy_that_changes_during_the_move_gets_its_duplicate_back() -> None:
    store, a = judged_store()
    store.during_copy = lambda: store.put(("uploads", "k.jpg"), b"another picture")
    out = await actions.settle(store, a, "quarantine", apply=True)
    assert out.status == "skipped"
    assert "its kept copy uploads/k.jpg changed since it was judged" in out.line
    assert out.line.endswith("during the move; put back")
    back = store.blobs["uploads", "a.jpg"]
    assert (back.data, back.metadata, back.tags) == (b"copy", {"camera": "x100"}, {"owner": "ann"})
    assert ("q", "uploads/a.jpg") not in store.blobs


async def test_a_put_back_that_fails_says_how_to_finish_it() -> None:
    store, a = judged_store()

    def overwritten_and_taken() -> None:
        store.put(("uploads", "k.jpg"), b"another picture")
        store.during_copy = lambda: store.put(("uploads", "a.jpg"), b"a new upload")

    store.during_copy = overwritten_and_taken
    out = await actions.settle(store, a, "quarantine", apply=True)
    assert "putting it back failed" in out.line
    assert out.line.endswith("run dedup act --restore q --apply")
    assert store.blobs["uploads", "a.jpg"].data == b"a new upload"  # never replaced
    assert store.blobs["q", "uploads/a.jpg"].data == b"copy"  # nothing lost


async def test_nothing_is_touched_unless_both_blobs_are_as_judged() -> None:
    for change in ("kept overwritten", "kept deleted", "duplicate changed"):
        store, _ = judged_store()
        if change == "kept overwritten":
            store.put(("uploads", "k.jpg"), b"another picture")
        elif change == "kept deleted":
            del store.blobs["uploads", "k.jpg"]
        else:
            store.put(("uploads", "a.jpg"), b"edited")
        before = dict(store.blobs)
        for mode in ("tag", "quarantine"):
            (action,), _ = actions.plan([KEPT, dup("a")], mode, "q")
            for apply in (False, True):
                out = await actions.settle(store, action, mode, apply)
                assert out.status == "skipped" and out.line.endswith("left alone"), change
        assert store.blobs == before, change


async def test_tagging_once_is_enough() -> None:
    store, _ = judged_store()
    (a,), _ = actions.plan([KEPT, dup("a")], "tag", "q")
    dry = await actions.settle(store, a, "tag", apply=False)
    assert dry.line.startswith("would tag uploads/a.jpg") and store.blobs[
        "uploads", "a.jpg"
    ].tags == {"owner": "ann"}
    assert (await actions.settle(store, a, "tag", apply=True)).line == "tagged: uploads/a.jpg"
    assert store.blobs["uploads", "a.jpg"].tags == {"owner": "ann"} | a.tags
    assert (await actions.settle(store, a, "tag", apply=True)).status == "already"
