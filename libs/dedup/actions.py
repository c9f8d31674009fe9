"""`dedup act`: act on the ranker's decisions. Dry-run unless --apply; never deletes by default.

    dedup act --tag [--apply]                   tag each duplicate with blob index tags
    dedup act --quarantine CONTAINER [--apply]  move each duplicate to CONTAINER
    dedup act --restore CONTAINER [--apply]     put what a quarantine moved back

Tagging sets `dedup-duplicate-of=<kept image id>` and `dedup-cluster=<cluster id>` on
every duplicate (other tags are kept), so that lifecycle rules or a search by tag
(`"dedup-cluster" = '...'`) can take it from there; nothing is moved. It needs the Storage
Blob Data Owner role (tags are not metadata) and an account without a hierarchical
namespace (Data Lake Gen2 accounts have no blob index tags). Azurite (the local stack)
supports them.

Quarantine is a move: a server-side copy to CONTAINER/<source container>/<blob name>
(with the blob's metadata and tags, and metadata that says what it duplicates), then the
source is deleted. Both steps are conditional on the blob's ETag as it was when the
hasher read it: a blob overwritten since it was judged is neither copied nor deleted.
`--restore` copies each blob back to where it came from (only if nothing is there now),
with its content, properties, tags and its own metadata, then deletes the quarantined
copy. Both read and write index tags, so they need the same role as tagging.

A duplicate is acted on only on certainty: its kept copy's latest decision is KEEP in
the same cluster and readable, and, checked in blob storage just before the duplicate is
touched, both blobs are still the versions that were judged (same ETag). Anything else
is skipped with a reason. The kept copy is read, not locked (a lease would block its
owner's writes), so it is read again after a move: if it changed meanwhile, the duplicate
is put back. `--limit N` counts what is done, not what is looked at: what an
earlier run did (tagged already, moved already) and what is skipped do not count, so the
next run goes on to the next duplicates.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol, TypeVar
from urllib.parse import quote

from dedup import topics
from dedup.blob import (
    BlobChangedError,
    BlobExistsError,
    BlobInfo,
    BlobMissingError,
    BlobSettings,
    BlobStore,
    open_service,
    quoted_etag,
)
from dedup.clitools import HelpFormatter, shown
from dedup.decisions import latest_decisions
from dedup.errors import TransientError
from dedup.settings import KafkaSettings, blob_container_name, service_config
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus

Mode = Literal["tag", "quarantine"]

TAG_DUPLICATE_OF = "dedup-duplicate-of"
TAG_CLUSTER = "dedup-cluster"

# The metadata a quarantine adds to each copy; `--restore` takes it off again.
META_DUPLICATE_OF = "dedup_duplicate_of"
META_CLUSTER = "dedup_cluster"
META_SOURCE = "dedup_source"
META_KEPT = "dedup_kept"
QUARANTINE_METADATA = (META_DUPLICATE_OF, META_CLUSTER, META_SOURCE, META_KEPT)

GONE = "gone (moved or deleted since it was judged)"


class ActSettings(KafkaSettings, BlobSettings):
    """Where `dedup act` finds Kafka and blob storage: DEDUP_ACT_* (default: local stack)."""

    model_config = service_config("act")


@dataclass(frozen=True)
class Action:
    """One duplicate to tag or move."""

    image_id: str
    container: str
    blob_name: str
    e_tag: str
    size_bytes: int
    duplicate_of: str
    cluster_id: str
    # The kept copy: where it is, and its ETag when it was judged.
    kept: tuple[str, str]
    kept_e_tag: str
    tags: dict[str, str] = field(default_factory=dict)
    # For a quarantine: where the copy goes, and the metadata it carries.
    target: tuple[str, str] | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.container}/{self.blob_name}"

    @property
    def kept_name(self) -> str:
        return "/".join(self.kept)


@dataclass(frozen=True)
class Skip:
    image_id: str
    name: str
    reason: str


def _name(d: Decision) -> str:
    return f"{d.container}/{d.blob_name}" if d.blob_name else d.blob_url or d.image_id


def plan(
    decisions: Iterable[Decision], mode: Mode, quarantine: str | None = None
) -> tuple[list[Action], list[Skip]]:
    """What would be done to each duplicate, and which are skipped and why (pure)."""
    if mode == "quarantine" and not quarantine:
        raise ValueError("a quarantine needs a container")
    latest = {d.image_id: d for d in decisions}
    actions: list[Action] = []
    skips: list[Skip] = []
    for d in sorted(latest.values(), key=lambda d: (d.cluster_id, _name(d))):
        if d.kind != DecisionKind.DECISION_KIND_DUPLICATE:
            continue
        kept = latest.get(d.duplicate_of)
        why = _unsafe(d, kept, mode, quarantine)
        if why:
            skips.append(Skip(d.image_id, _name(d), why))
            continue
        assert kept is not None
        action = Action(
            image_id=d.image_id,
            container=d.container,
            blob_name=d.blob_name,
            e_tag=d.e_tag,
            size_bytes=d.size_bytes,
            duplicate_of=d.duplicate_of,
            cluster_id=d.cluster_id,
            kept=(kept.container, kept.blob_name),
            kept_e_tag=kept.e_tag,
        )
        if mode == "tag":
            action = replace(
                action, tags={TAG_DUPLICATE_OF: d.duplicate_of, TAG_CLUSTER: d.cluster_id}
            )
        else:
            assert quarantine is not None
            action = replace(
                action,
                target=(quarantine, f"{d.container}/{d.blob_name}"),
                metadata={
                    # Metadata values are ASCII: names are percent-encoded.
                    META_DUPLICATE_OF: d.duplicate_of,
                    META_CLUSTER: d.cluster_id,
                    META_SOURCE: quote(f"{d.container}/{d.blob_name}"),
                    META_KEPT: quote(_name(kept)),
                },
            )
        actions.append(action)
    return actions, skips


def _unsafe(d: Decision, kept: Decision | None, mode: Mode, quarantine: str | None) -> str:
    """Why acting on duplicate `d` is not safe, or "" when it is."""
    if not d.container or not d.blob_name:
        return "its own group has not reached the ranker yet: location unknown"
    if (
        kept is None
        or kept.kind != DecisionKind.DECISION_KIND_KEEP
        or kept.cluster_id != d.cluster_id
        or kept.status not in (ImageStatus.IMAGE_STATUS_OK, ImageStatus.IMAGE_STATUS_UNSPECIFIED)
    ):
        return f"its kept copy {shown(d.duplicate_of)} is not confirmed as kept"
    if not kept.container or not kept.blob_name:
        return f"its kept copy {shown(d.duplicate_of)} has no location in its decision"
    if not kept.e_tag:
        kept_name = shown(_name(kept))
        return f"no ETag for its kept copy {kept_name}: cannot make sure it is the version judged"
    if mode == "quarantine" and d.container == quarantine:
        return "already in the quarantine container"
    if not d.e_tag:
        return "no ETag: cannot make sure the blob is the version judged"
    return ""


def version_problem(judged: str, now: str | None) -> str:
    """How a blob differs from the version that was judged (ETag `judged`), given its
    ETag `now` (None: it is gone); "" when it is that version."""
    if now is None:
        return f"is {GONE}"
    if quoted_etag(now) != quoted_etag(judged):
        return (
            f"changed since it was judged (ETag {quoted_etag(judged)} then, {quoted_etag(now)} now)"
        )
    return ""


def blocker(a: Action, kept_now: str | None, own_now: str) -> str:
    """Why `a` must not be carried out, given the ETags now of its kept copy (None: gone)
    and of the duplicate itself; "" when both are the versions judged (pure)."""
    if kept := version_problem(a.kept_e_tag, kept_now):
        return f"its kept copy {shown(a.kept_name)} {kept}; left alone"
    if own := version_problem(a.e_tag, own_now):
        return f"{own}; left alone"
    return ""


class ActBlobs(Protocol):
    """The blob operations `dedup act` uses: `dedup.blob.BlobStore` (a fake in unit tests)."""

    async def properties(self, container: str, name: str) -> BlobInfo | None: ...

    async def container_exists(self, container: str) -> bool: ...

    async def get_tags(self, container: str, name: str) -> dict[str, str]: ...

    async def set_tags(self, container: str, name: str, tags: Mapping[str, str]) -> None: ...

    async def copy(
        self,
        source: tuple[str, str],
        target: tuple[str, str],
        *,
        if_match: str | None = None,
        metadata: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        if_absent: bool = False,
    ) -> str: ...

    async def delete(self, container: str, name: str, if_match: str | None = None) -> None: ...


Status = Literal["done", "already", "skipped"]


@dataclass(frozen=True)
class Outcome:
    """What became of one planned action: done (or would be, in a dry run), done already by
    an earlier run, or skipped; `line` says what or why, ready to print."""

    status: Status
    line: str
    size_bytes: int = 0


def describe(a: Action, mode: Mode) -> str:
    if mode == "tag":
        tags = ", ".join(f"{k}={shown(v)}" for k, v in a.tags.items())
        return f"tag {shown(a.name)}: {tags}"
    return f"move {_move(a)} (duplicate of {shown(a.kept_name)})"


def _move(a: Action) -> str:
    assert a.target is not None
    return f"{shown(a.name)} -> {shown('/'.join(a.target))}"


def _etag(info: BlobInfo | None) -> str | None:
    return None if info is None else info.etag


def _skipped(name: str, reason: str) -> Outcome:
    return Outcome("skipped", f"skipped {shown(name)}: {reason}")


async def settle(store: ActBlobs, a: Action, mode: Mode, apply: bool) -> Outcome:
    """Check one duplicate against blob storage and, with `apply`, act on it."""
    kept_now = _etag(await store.properties(*a.kept))
    own = await store.properties(a.container, a.blob_name)
    if own is None:
        return await _gone(store, a)
    if why := blocker(a, kept_now, own.etag):
        return _skipped(a.name, why)
    if mode == "tag":
        current = await store.get_tags(a.container, a.blob_name)
        if current.items() >= a.tags.items():
            return Outcome("already", f"already tagged: {shown(a.name)}")
        if apply:
            await store.set_tags(a.container, a.blob_name, a.tags)
        line = f"tagged: {shown(a.name)}" if apply else f"would {describe(a, mode)}"
        return Outcome("done", line, a.size_bytes)
    assert a.target is not None
    if apply:
        tags = await store.get_tags(a.container, a.blob_name)
        await store.copy(
            (a.container, a.blob_name),
            a.target,
            if_match=a.e_tag,
            metadata=own.metadata | a.metadata,
            tags=tags,
        )
        await store.delete(a.container, a.blob_name, if_match=a.e_tag)
        # The kept copy was read, not locked: if it changed while the duplicate was moved,
        # the duplicate goes back, so that a move never leaves a cluster without its copy.
        if why := version_problem(a.kept_e_tag, _etag(await store.properties(*a.kept))):
            return await _put_back(store, a, own, why)
    line = f"moved: {_move(a)}" if apply else f"would {describe(a, mode)}"
    return Outcome("done", line, a.size_bytes)


async def _put_back(store: ActBlobs, a: Action, own: BlobInfo, why: str) -> Outcome:
    """Undo the move of `a` (whose blob was `own`): its kept copy `why` during the move."""
    assert a.target is not None
    reason = f"its kept copy {shown(a.kept_name)} {why} during the move"
    back = Restore(a.target[0], a.target[1], "", own.size, own.metadata)
    undone = await _guarded(lambda r: settle_restore(store, r, apply=True), back)
    if undone.status == "done":
        return _skipped(a.name, f"{reason}; put back")
    restore = f"dedup act --restore {shown(a.target[0])} --apply"
    return _skipped(a.name, f"{reason}; putting it back failed ({undone.line}): run {restore}")


async def _gone(store: ActBlobs, a: Action) -> Outcome:
    """A duplicate that is no longer where it was judged: moved by an earlier run, or gone."""
    if a.target is not None:
        moved = await store.properties(*a.target)
        if moved is not None and moved.metadata.get(META_SOURCE) == a.metadata[META_SOURCE]:
            return Outcome("already", f"already moved: {_move(a)}")
    return _skipped(a.name, GONE)


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


async def carry_out(
    items: Sequence[T],
    settle_one: Callable[[T], Awaitable[Outcome]],
    limit: int | None = None,
    concurrency: int = 16,
) -> list[Outcome]:
    """Settle the items in order, `concurrency` at a time, until `limit` are done: what is
    skipped or was done already does not count, so a later run goes on from there. Each
    outcome but "already" is printed as its window ends, in the items' order."""
    outcomes: list[Outcome] = []
    done, position = 0, 0
    while position < len(items) and (limit is None or done < limit):
        room = concurrency if limit is None else min(concurrency, limit - done)
        window = items[position : position + room]
        position += len(window)
        results = await asyncio.gather(*(_guarded(settle_one, item) for item in window))
        for o in results:
            if o.status != "already":
                print(o.line)
        done += sum(o.status == "done" for o in results)
        outcomes += results
    return outcomes


async def _guarded(settle_one: Callable[[T], Awaitable[Outcome]], item: T) -> Outcome:
    """`settle_one(item)`; a blob that went or changed under it, or blob storage that
    fails, skips the item: nothing is ever forced."""
    try:
        return await settle_one(item)
    except BlobMissingError:
        return _skipped(item.name, GONE)
    except BlobChangedError:
        return _skipped(item.name, "changed since it was judged; left alone")
    except BlobExistsError:
        return _skipped(item.name, "another blob is where it would go now; left alone")
    except TransientError as error:
        return _skipped(item.name, f"blob storage failed ({shown(str(error))}); run again")


@dataclass(frozen=True)
class Restore:
    """One quarantined blob to put back where it was."""

    quarantine: str
    blob_name: str  # <source container>/<source blob name>, as the quarantine named it
    e_tag: str
    size_bytes: int
    metadata: dict[str, str]  # the blob's own, without what the quarantine added

    @property
    def name(self) -> str:
        return f"{self.quarantine}/{self.blob_name}"

    @property
    def source(self) -> tuple[str, str]:
        container, _, name = self.blob_name.partition("/")
        return container, name


def plan_restore(quarantine: str, blobs: Iterable[BlobInfo]) -> tuple[list[Restore], list[Skip]]:
    """What a restore would put back, and what in the container it leaves (pure): only
    blobs that a quarantine moved there, i.e. whose metadata names the place they came from."""
    restores: list[Restore] = []
    skips: list[Skip] = []
    for b in blobs:
        if b.metadata.get(META_SOURCE) != quote(b.name) or not b.name.partition("/")[2]:
            reason = f"not moved there by dedup act (no {META_SOURCE} metadata naming it)"
            skips.append(Skip("", f"{quarantine}/{b.name}", reason))
            continue
        own = {k: v for k, v in b.metadata.items() if k not in QUARANTINE_METADATA}
        restores.append(Restore(quarantine, b.name, b.etag, b.size, own))
    return restores, skips


def _restore_line(r: Restore, apply: bool) -> str:
    where = f"{shown(r.name)} -> {shown('/'.join(r.source))}"
    return f"restored: {where}" if apply else f"would restore {where}"


async def settle_restore(store: ActBlobs, r: Restore, apply: bool) -> Outcome:
    """Put one quarantined blob back (with `apply`): never over a blob that is there now."""
    container, name = r.source
    if not await store.container_exists(container):
        return _skipped(r.name, f"its container {shown(container)} is gone; left in quarantine")
    if await store.properties(container, name) is not None:
        where = shown(f"{container}/{name}")
        return _skipped(r.name, f"a blob is at {where} again; left in quarantine")
    if apply:
        tags = await store.get_tags(r.quarantine, r.blob_name)
        await store.copy(
            (r.quarantine, r.blob_name),
            r.source,
            if_match=r.e_tag,
            if_absent=True,
            metadata=r.metadata,
            tags=tags,
        )
        await store.delete(r.quarantine, r.blob_name, if_match=r.e_tag)
    return Outcome("done", _restore_line(r, apply), r.size_bytes)


def summary(
    outcomes: Sequence[Outcome], planned_skips: int, what: str, verb: str, apply: bool
) -> str:
    """The last line of a run: how many were (or would be) done, done before, skipped."""
    done = [o for o in outcomes if o.status == "done"]
    size = sum(o.size_bytes for o in done)
    already = sum(o.status == "already" for o in outcomes)
    skipped = planned_skips + sum(o.status == "skipped" for o in outcomes)
    counts = f"{already} done by an earlier run, {skipped} skipped"
    if apply:
        return f"{len(done)} {what} ({size} bytes) {verb}; {counts}"
    would = f"{len(done)} {what} ({size} bytes) would be {verb}"
    return f"dry run: {would}; {counts}; add --apply to do it"


def _exit_code(outcomes: Sequence[Outcome]) -> int:
    """1 when blob storage made a planned action unsafe or failed it, else 0."""
    return int(any(o.status == "skipped" for o in outcomes))


async def act(settings: ActSettings, mode: Mode, ns: argparse.Namespace) -> int:
    decisions = (await latest_decisions(settings, ns.topic)).values()
    actions, skips = plan(decisions, mode, ns.quarantine)
    for s in skips:
        print(f"skip {shown(s.name)}: {s.reason}")
    async with open_service(settings) as service:
        store = BlobStore(service, "act")
        if ns.apply and ns.quarantine:
            await store.ensure_container(ns.quarantine)
        outcomes = await carry_out(actions, lambda a: settle(store, a, mode, ns.apply), ns.limit)
    verb = "tagged" if mode == "tag" else "moved"
    print(summary(outcomes, len(skips), "duplicates", verb, ns.apply))
    return _exit_code(outcomes)


async def restore(settings: ActSettings, ns: argparse.Namespace) -> int:
    """Put back what a quarantine moved to `ns.restore`, a page of its listing at a time."""
    outcomes: list[Outcome] = []
    planned_skips = 0
    async with open_service(settings) as service:
        store = BlobStore(service, "act")
        if not await store.container_exists(ns.restore):
            print(f"no container {shown(ns.restore)}: nothing to restore", file=sys.stderr)
            return 1
        async for blobs, _ in store.list_pages(ns.restore, metadata=True):
            restores, skips = plan_restore(ns.restore, blobs)
            for s in skips:
                print(f"skip {shown(s.name)}: {s.reason}")
            planned_skips += len(skips)
            left = (
                None if ns.limit is None else ns.limit - sum(o.status == "done" for o in outcomes)
            )
            if left is not None and left <= 0:
                break
            outcomes += await carry_out(
                restores, lambda r: settle_restore(store, r, ns.apply), left
            )
    print(summary(outcomes, planned_skips, "blobs", "restored", ns.apply))
    return _exit_code(outcomes)


async def run(ns: argparse.Namespace) -> int:
    settings = ActSettings()
    if ns.restore:
        return await restore(settings, ns)
    return await act(settings, "tag" if ns.tag else "quarantine", ns)


def _container(value: str) -> str:
    """An argument that names a container, checked by Azure's rules before anything runs."""
    try:
        return blob_container_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dedup act",
        description="Tag duplicates, move them to a quarantine container, or put quarantined "
        "blobs back. Dry-run unless --apply; never deletes a blob except as the second half "
        "of a move.",
        epilog="exit codes:\n  0  everything done (dry-run: doable)\n  1  something skipped "
        "(each line says why), or no such quarantine to restore\n  2  a bad command line",
        formatter_class=HelpFormatter,
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--tag", action="store_true", help="set blob index tags on duplicates")
    what.add_argument(
        "--quarantine", metavar="CONTAINER", type=_container, help="move duplicates here"
    )
    what.add_argument(
        "--restore",
        metavar="CONTAINER",
        type=_container,
        help="move what a quarantine put here back",
    )
    parser.add_argument(
        "--apply", action="store_true", help="do it (default: off, only print what it would do)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="do at most N (what is skipped or was done before does not count) "
        "(default: none, all)",
    )
    parser.add_argument("--topic", default=topics.DECISIONS, help="the decisions topic")
    return parser


def main(args: list[str] | None = None) -> int:
    cli = parser()
    ns = cli.parse_args(args)
    if ns.limit is not None and ns.limit < 0:
        cli.error("--limit must be 0 or more")
    return asyncio.run(run(ns))
