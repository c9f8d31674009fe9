"""`dedup act`: act on the ranker's decisions. Dry-run unless --apply; never deletes by default.

    dedup act --tag [--apply]                   tag each duplicate with blob index tags
    dedup act --quarantine CONTAINER [--apply]  move each duplicate to CONTAINER

Tagging sets `dedup-duplicate-of=<kept image id>` and `dedup-cluster=<cluster id>` on
every duplicate (other tags are kept), so that lifecycle rules or a search by tag
(`"dedup-cluster" = '...'`) can take it from there; nothing is moved. It needs the Storage
Blob Data Owner role (tags are not metadata) and an account without a hierarchical
namespace (Data Lake Gen2 accounts have no blob index tags). Azurite (the local stack)
supports them.

Quarantine is a move: a server-side copy to CONTAINER/<source container>/<blob name>
(metadata says what it duplicates), then the source is deleted. Both steps are
conditional on the blob's ETag as it was when the hasher read it: a blob overwritten
since it was judged is neither copied nor deleted. The images are only ever moved, so a
quarantine can be undone by copying back.

A duplicate is acted on only if its kept copy is confirmed: that image's latest decision
is KEEP in the same cluster and it is readable. Anything else is skipped with a reason.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal
from urllib.parse import quote

from dedup import topics
from dedup.blob import (
    BlobChangedError,
    BlobMissingError,
    BlobSettings,
    BlobStore,
    open_service,
)
from dedup.errors import TransientError
from dedup.report.cli import latest_decisions
from dedup.settings import KafkaSettings, service_config
from dedup.v1.decisions_pb2 import Decision, DecisionKind
from dedup.v1.features_pb2 import ImageStatus

Mode = Literal["tag", "quarantine"]

TAG_DUPLICATE_OF = "dedup-duplicate-of"
TAG_CLUSTER = "dedup-cluster"


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
    kept_name: str
    tags: dict[str, str] = field(default_factory=dict)
    # For a quarantine: where the copy goes, and the metadata it carries.
    target: tuple[str, str] | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.container}/{self.blob_name}"


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
            kept_name=_name(kept),
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
                    "dedup_duplicate_of": d.duplicate_of,
                    "dedup_cluster": d.cluster_id,
                    "dedup_source": quote(f"{d.container}/{d.blob_name}"),
                    "dedup_kept": quote(_name(kept)),
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
        return f"its kept copy {d.duplicate_of} is not confirmed as kept"
    if mode == "quarantine":
        if d.container == quarantine:
            return "already in the quarantine container"
        if not d.e_tag:
            return "no ETag: cannot make sure the blob is the version judged"
    return ""


@dataclass
class Tally:
    done: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)


async def apply(
    store: BlobStore, actions: Sequence[Action], mode: Mode, concurrency: int = 16
) -> Tally:
    """Carry the actions out; a blob that is gone or changed is skipped, not forced."""
    tally = Tally()
    limit = asyncio.Semaphore(concurrency)
    if mode == "quarantine":
        for container in {a.target[0] for a in actions if a.target}:
            await store.ensure_container(container)

    async def one(a: Action) -> None:
        async with limit:
            try:
                if mode == "tag":
                    await store.set_tags(a.container, a.blob_name, a.tags)
                else:
                    assert a.target is not None
                    await store.copy(
                        (a.container, a.blob_name), a.target, if_match=a.e_tag, metadata=a.metadata
                    )
                    await store.delete(a.container, a.blob_name, if_match=a.e_tag)
            except BlobMissingError:
                tally.skipped.append(f"{a.name}: gone (moved or deleted already)")
                return
            except BlobChangedError:
                tally.skipped.append(f"{a.name}: changed since it was judged; left alone")
                return
            except TransientError as error:
                tally.skipped.append(f"{a.name}: blob storage failed ({error}); run again")
                return
        tally.done += 1
        tally.bytes += a.size_bytes
        print(f"{'tagged' if mode == 'tag' else 'moved'}: {a.name}")

    await asyncio.gather(*(one(a) for a in actions))
    return tally


def describe(a: Action, mode: Mode) -> str:
    if mode == "tag":
        tags = ", ".join(f"{k}={v}" for k, v in a.tags.items())
        return f"tag {a.name}: {tags}"
    assert a.target is not None
    return f"move {a.name} -> {a.target[0]}/{a.target[1]} (duplicate of {a.kept_name})"


async def run(ns: argparse.Namespace) -> int:
    settings = ActSettings()
    mode: Mode = "tag" if ns.tag else "quarantine"
    decisions = await latest_decisions(settings, ns.topic)
    actions, skips = plan(decisions, mode, ns.quarantine)
    if ns.limit is not None:
        actions = actions[: ns.limit]
    for s in skips:
        print(f"skip {s.name}: {s.reason}")
    total = sum(a.size_bytes for a in actions)
    if not ns.apply:
        for a in actions:
            print(f"would {describe(a, mode)}")
        print(
            f"dry run: {len(actions)} duplicates ({total} bytes) would be "
            f"{'tagged' if mode == 'tag' else 'moved'}, {len(skips)} skipped; "
            "add --apply to do it"
        )
        return 0
    async with open_service(settings) as service:
        tally = await apply(BlobStore(service, "act"), actions, mode)
    for line in tally.skipped:
        print(f"skipped {line}")
    print(
        f"{tally.done} duplicates ({tally.bytes} bytes) "
        f"{'tagged' if mode == 'tag' else 'moved'}; "
        f"{len(skips) + len(tally.skipped)} skipped"
    )
    return 0 if not tally.skipped else 1


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dedup act",
        description="Tag duplicates or move them to a quarantine container. Dry-run unless "
        "--apply; never deletes a duplicate except as the second half of a move.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--tag", action="store_true", help="set blob index tags on duplicates")
    what.add_argument("--quarantine", metavar="CONTAINER", help="move duplicates here")
    parser.add_argument("--apply", action="store_true", help="do it (default: only print)")
    parser.add_argument("--limit", type=int, help="act on at most this many duplicates")
    parser.add_argument("--topic", default=topics.DECISIONS, help="the decisions topic")
    ns = parser.parse_args(args)
    if ns.limit is not None and ns.limit < 0:
        parser.error("--limit must be 0 or more")
    return asyncio.run(run(ns))
