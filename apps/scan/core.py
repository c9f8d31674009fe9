"""`dedup scan`'s engine: the five services' own stages, in-process, over a local folder.

Each service's stage is opened exactly as the service opens it (its settings from
DEDUP_<SERVICE>_* as usual), except that blob storage is the local folder
(apps.scan.local_blobs), the hash and embedding indexes live in this process (the
services' in-memory indexes; or the scan's own collections in a given Milvus, dropped at
the end) and Triton is the scan's (a private one by default, see servers.py). Nothing of
the decision logic lives here.

Order: a folder has no arrival order, so every image is judged against the whole
folder, in two passes that decode and embed each file once:

1. index: the hasher (download, decode, hashes, working copy, stored in the hash index)
   on every file while Triton starts, then the embedder (the embedding, stored); nothing
   is searched yet (it would not see the files after it); each image's hashed features
   are kept;
2. judge: the hasher's search again from those stored hashes (no pixels: it now sees
   every image, so hash candidates are found in both directions), verifier, embedder
   (it finds this version's embedding stored and reuses it; every candidate's embedding
   is stored, so its drop rule applies whichever file came first), matcher, ranker.

With a state (apps.scan.state), what the index pass makes of each file is written there as
it is made, and a file the state holds at its version is indexed from it (its hashes,
working copy and embedding stored again, no pixels decoded, no model called); the
judging pass runs over the whole folder, and the matcher's output of an image whose
input group is unchanged comes from the state too (MatcherMemo). Ctrl-C cancels the scan:
the files in flight are dropped, what is done is in the state already.

Images run concurrently, a bounded number at once (the embedder batches them into
Triton calls); nothing depends on which finishes first, and the ranker's clusters and
kept copies do not depend on the order it sees the groups in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from google.protobuf.message import Message

from apps.scan.files import LocalFile, event_of, folder_container, local_files
from apps.scan.local_blobs import LocalBlobs
from apps.scan.progress import Progress
from apps.scan.servers import REPO, Endpoints
from apps.scan.session import ScanOptions, ScanResult
from apps.scan.state import ScanState, Stored, code_digest
from dedup.blob import BlobSettings
from dedup.clitools import shown
from dedup.events import BLOB_DELETED
from dedup.report import gallery, model
from dedup.report.model import Row
from dedup.runtime.contract import TRANSIENT, Output, Stage, backoff_seconds
from dedup.settings import MilvusSettings, RuntimeSettings
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup
from services.embedder.handler import STAGE as EMBEDDER
from services.embedder.index import Vector
from services.embedder.settings import EmbedderSettings
from services.embedder.stage import open_embedder
from services.hasher.handler import STAGE as HASHER
from services.hasher.handler import working_copy_name
from services.hasher.settings import HasherSettings
from services.hasher.stage import open_hasher
from services.matcher.settings import MatcherSettings
from services.matcher.stage import open_stage as open_matcher
from services.ranker.handler import Ranker
from services.ranker.stage import ranker_stage
from services.verifier.settings import VerifierSettings
from services.verifier.stage import open_stage as open_verifier

log = logging.getLogger("apps.scan")

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M", bound=Message)

# A dependency that stays away this many tries in a row fails the image (the services
# would wait forever; a one-shot command should say so instead).
TRANSIENT_ATTEMPTS = 6
# The matcher's feature cache: an eighth of the service's, so that the scan's memory stays
# within its budget however large the folder.
MATCHER_CACHE_BYTES = 32 * 1024 * 1024
ERROR = "error"
DEFAULT_OPTIONS = ScanOptions()
# The "folder" of the images checked against a scanned one (Checker).
CHECKED = "dedup-checked"
# What the state on disk keeps: a readable image, or one whose bytes said why not (a
# missing file is asked again: its permissions may change without its version).
STORABLE = frozenset(
    {
        ImageStatus.IMAGE_STATUS_OK,
        ImageStatus.IMAGE_STATUS_CORRUPT,
        ImageStatus.IMAGE_STATUS_UNSUPPORTED,
        ImageStatus.IMAGE_STATUS_TOO_LARGE,
        ImageStatus.IMAGE_STATUS_BOMB,
        ImageStatus.IMAGE_STATUS_EMPTY,
    }
)
# The matcher's settings that do not change what it decides.
MATCHER_UNDECIDING = frozenset({"cache_bytes", "pair_cache_bytes", "working_copy_max_bytes"})
# The code that makes what the state keeps: a change to it is another state key.
FEATURE_CODE = (
    *(REPO / "services" / "hasher").glob("*.py"),
    REPO / "services" / "embedder" / "preprocess.py",
    REPO / "libs" / "dedup" / "colour.py",
    REPO / "libs" / "dedup" / "imaging.py",
)


@dataclass(frozen=True)
class StageSettings:
    hasher: HasherSettings
    verifier: VerifierSettings
    embedder: EmbedderSettings
    matcher: MatcherSettings


def stage_settings(endpoints: Endpoints, tag: str, options: ScanOptions) -> StageSettings:
    """The services' settings (environment as usual) pointed at the scan's servers."""
    concurrency = max(1, options.in_flight)
    # Unused when the indexes live in the scan's process.
    milvus_uri = endpoints.milvus_uri or MilvusSettings().milvus_uri
    return StageSettings(
        hasher=HasherSettings(
            milvus_uri=milvus_uri,
            collection=f"scan_{tag}_hashes",
            worker_threads=options.workers,
            concurrency=concurrency,
        ),
        verifier=VerifierSettings(),
        embedder=EmbedderSettings(
            milvus_uri=milvus_uri,
            triton_url=endpoints.triton_url,
            collection=f"scan_{tag}_embeddings",
            # A folder is small: exact search (IVF's clusters only pay off at millions).
            index_type="FLAT",
            concurrency=concurrency,
        ),
        matcher=MatcherSettings(concurrency=concurrency, cache_bytes=MATCHER_CACHE_BYTES),
    )


def state_key(settings: StageSettings) -> dict[str, str]:
    """What the state's records depend on: a state written under another key is not
    reused. The record format, the code that makes the features, the hasher's settings
    that change them, and the model (its name and its repository files, if local)."""
    h, e = settings.hasher, settings.embedder
    model_dir = REPO / "services" / "embedder" / "models" / e.triton_model
    return {
        "format": "1",
        "features": code_digest(FEATURE_CODE),
        "hasher": json.dumps(
            {
                "working_side": h.working_side,
                "max_pixels": h.max_pixels,
                "max_bytes": h.blob_max_download_bytes,
                "decode_memory_bytes": h.decode_memory_bytes,
            },
            sort_keys=True,
        ),
        "model": e.triton_model,
        "model_files": code_digest(p for p in model_dir.rglob("*") if p.is_file()),
    }


async def bounded_map(items: Sequence[T], fn: Callable[[T], Awaitable[R]], limit: int) -> list[R]:
    """fn over items, at most `limit` at once, started in order; results in order."""
    results: list[R | None] = [None] * len(items)
    next_index = iter(range(len(items)))

    async def worker() -> None:
        for i in next_index:
            results[i] = await fn(items[i])

    await asyncio.gather(*(worker() for _ in range(max(1, min(limit, len(items))))))
    return results  # type: ignore[return-value]  # every slot is filled


async def each_file(
    label: str,
    files: Sequence[LocalFile],
    fn: Callable[[LocalFile], Awaitable[None]],
    options: ScanOptions,
) -> None:
    """fn over the files, `options.in_flight` at once, with a progress line named `label`."""
    progress = Progress(label, len(files), enabled=options.progress, report=options.on_progress)

    async def one(f: LocalFile) -> None:
        try:
            await fn(f)
        finally:
            progress.advance()

    try:
        await bounded_map(files, one, options.in_flight)
    finally:
        progress.close()


async def call(stage: Stage[M], message: M) -> Sequence[Output]:
    """The stage's handler, with the runtime's backoff on transient errors (bounded)."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await stage.handle(message)
        except TRANSIENT:
            if attempt >= TRANSIENT_ATTEMPTS:
                raise
            await asyncio.sleep(backoff_seconds(attempt, 0.2, 5.0))


def slim(group: CandidateGroup) -> CandidateGroup:
    """What the judging pass needs of a hashed group: the image, not its candidates."""
    return CandidateGroup(
        image_id=group.image_id, image=group.image, event=group.event, stages=group.stages
    )


def only_group(outputs: Sequence[Output]) -> CandidateGroup:
    groups = [o.message for o in outputs if isinstance(o.message, CandidateGroup)]
    if len(groups) != 1:
        raise RuntimeError(f"expected one group, got {len(outputs)} outputs")
    return groups[0]


def error_row(f: LocalFile, reason: str) -> Row:
    """A file no stage could judge: alone, kept, with the reason."""
    return Row(
        image_id=f.image_id,
        container="",
        path=f.name,
        url=f.event.data.url,
        cluster=f.image_id,
        decision=model.UNREADABLE,
        keep=True,
        duplicate_of="",
        status=ERROR,
        reason=reason,
        quality=0.0,
        size_bytes=f.event.data.content_length,
        width=0,
        height=0,
    )


@dataclass(frozen=True)
class Hashing:
    # Stores a file's hashes and working copy, searches nothing (the index pass).
    hasher: Stage[BlobEvent]
    # The hasher's search of an image hashed before, from its stored hashes.
    research: Stage[CandidateGroup]
    # Indexes an image hashed by an earlier scan (the state on disk): no pixels.
    restore: Callable[[ImageFeatures], Awaitable[None]]


@dataclass(frozen=True)
class Stages:
    hashing: Hashing
    verifier: Stage[CandidateGroup]
    # Stores an image's embedding, searches nothing (the index pass).
    store_embedding: Stage[CandidateGroup]
    # The embedding stored for an image; one made by an earlier scan, stored again.
    stored_embedding: Callable[[ImageFeatures], Awaitable[Vector | None]]
    restore_embedding: Callable[[ImageFeatures, Vector], Awaitable[None]]
    embedder: Stage[CandidateGroup]
    matcher: Stage[CandidateGroup]
    ranker: Stage[CandidateGroup]


@contextlib.asynccontextmanager
async def open_hashing(
    settings: HasherSettings, blobs: LocalBlobs, *, in_memory: bool
) -> AsyncIterator[Hashing]:
    """The hasher on the folder's blobs (it needs no model server)."""
    async with open_hasher(settings, blobs, in_memory=in_memory) as hasher:

        async def research(group: CandidateGroup) -> Sequence[Output]:
            return [Output(group.image_id, await hasher.research(group))]

        async def store(event: BlobEvent) -> Sequence[Output]:
            return await hasher.handle(event, search=False)

        yield Hashing(
            Stage(HASHER, BlobEvent, store), Stage(HASHER, CandidateGroup, research), hasher.restore
        )


@contextlib.asynccontextmanager
async def open_stages(
    settings: StageSettings, blobs: LocalBlobs, ranker: Ranker, hashing: Hashing, *,
    in_memory: bool
) -> AsyncIterator[Stages]:  # fmt: skip
    """The other stages on the folder's blobs (the embedder asks the model server for its
    model's shape: it must be up); `in_memory`: their indexes in this process."""
    async with contextlib.AsyncExitStack() as stack:
        enter = stack.enter_async_context
        embedder = await enter(open_embedder(settings.embedder, blobs, in_memory=in_memory))

        async def store(group: CandidateGroup) -> Sequence[Output]:
            return await embedder.handle(group, search=False)

        yield Stages(
            hashing=hashing,
            verifier=await enter(open_verifier(settings.verifier)),
            store_embedding=Stage(EMBEDDER, CandidateGroup, store),
            stored_embedding=embedder.stored,
            restore_embedding=embedder.restore,
            embedder=Stage(EMBEDDER, CandidateGroup, embedder.handle),
            matcher=await enter(open_matcher(settings.matcher, blobs)),
            ranker=ranker_stage(ranker),
        )


async def drop_collections(milvus_uri: str, names: Iterable[str]) -> None:
    # Imported here: pymilvus is large, and only a scan given a Milvus needs it.
    from dedup.vectors import open_milvus

    client = open_milvus(MilvusSettings(milvus_uri=milvus_uri))
    try:
        for name in names:
            with contextlib.suppress(Exception):  # best effort: the scan's result stands
                await client.drop_collection(name)
    finally:
        await client.close()


def open_state(root: Path, settings: StageSettings, options: ScanOptions) -> ScanState | None:
    if options.state is None:
        return None
    try:
        state = ScanState.open(options.state, state_key(settings), fresh=options.fresh)
    except (OSError, sqlite3.Error) as error:
        log.warning("cannot keep a state in %s (%s): scanning without one",
                    shown(str(options.state)), shown(str(error)))  # fmt: skip
        return None
    if state.note:
        log.warning("%s", shown(state.note))
    return state


@dataclass(frozen=True)
class Checked:
    """What `Checker.check` found for one image: its decision as the ranker made it with
    the folder's images, and the decisions it changed (its cluster's, with it in)."""

    decision: Decision
    changed: tuple[Decision, ...]
    reason: str = ""  # a stage that failed on it, if any


class Checker:
    """One image at a time through the stages of a scan that is done, against the folder's
    indexes and clusters; it leaves them as they were (the image is deleted from the
    indexes and the ranker after)."""

    def __init__(self, stages: Stages, blobs: LocalBlobs, ranker: Ranker) -> None:
        self._stages, self._blobs, self._ranker = stages, blobs, ranker
        self._checks = 0

    async def check(self, path: Path, name: str) -> Checked:
        """The image in file `path` (called `name`), as if it were one more file of the
        folder; raises for an image the hasher could not handle at all."""
        self._checks += 1
        blob = f"{self._checks}/{name}"
        self._blobs.add_file(CHECKED, blob, path)
        event = await asyncio.to_thread(event_of, CHECKED, blob, path)
        stages, reason = self._stages, ""
        try:
            group = slim(only_group(await call(stages.hashing.hasher, event)))
            for stage in (stages.hashing.research, stages.verifier, stages.embedder,
                          stages.matcher):  # fmt: skip
                try:
                    group = only_group(await call(stage, group))
                except Exception as error:
                    reason = f"{stage.name} failed: {error}"
                    break
            outcome = self._ranker.handle(group)
        finally:
            await self._forget(event)
        (decision,) = (d for d in outcome.decisions if d.image_id == event.image_id)
        changed = tuple(d for d in outcome.decisions if d.image_id != event.image_id)
        return Checked(decision, changed, reason)

    async def _forget(self, event: BlobEvent) -> None:
        """The checked image out of the indexes and the clusters: as a deleted blob."""
        deleted = BlobEvent()
        deleted.CopyFrom(event)
        deleted.event_type = BLOB_DELETED
        with contextlib.suppress(Exception):
            gone = only_group(await call(self._stages.hashing.hasher, deleted))
            await call(self._stages.embedder, gone)
            self._ranker.handle(gone)


@dataclass(frozen=True)
class OpenScan:
    result: ScanResult
    checker: Checker


async def scan(
    root: Path, endpoints: Endpoints, scratch: Path, options: ScanOptions = DEFAULT_OPTIONS
) -> ScanResult:
    """Judge every file under `root`; working copies go under `scratch`; what the index
    pass makes is kept in `options.state` (if given), and what it holds is reused."""
    async with open_scan(root, endpoints, scratch, options) as done:
        return done.result


@contextlib.asynccontextmanager
async def open_scan(
    root: Path, endpoints: Endpoints, scratch: Path, options: ScanOptions = DEFAULT_OPTIONS
) -> AsyncIterator[OpenScan]:
    """`scan`, its stages and indexes kept open while the block runs: its `checker`
    checks more images against the folder."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    container = await asyncio.to_thread(folder_container, root)
    files = await asyncio.to_thread(local_files, root)
    blobs = LocalBlobs({container: {f.name: f.path for f in files}}, scratch)
    settings = stage_settings(endpoints, uuid.uuid4().hex[:12], options)
    state = await asyncio.to_thread(open_state, root, settings, options)
    ranker = Ranker()
    failures: dict[str, str] = {}
    partial: dict[str, str] = {}
    scanned = False
    try:
        known: dict[str, Stored] = {}
        if state is not None:
            versions = {f.image_id: f.event.data.e_tag for f in files}
            known = await asyncio.to_thread(state.load, versions)
            await asyncio.to_thread(state.forget_others, versions)
        in_memory = endpoints.milvus_uri is None
        async with open_hashing(settings.hasher, blobs, in_memory=in_memory) as hashing:
            hashed = await restore_hashed(
                hashing, blobs, settings.hasher.working_container, known, state
            )
            reused = len(hashed)
            if state is not None and options.notify is not None and hashed:
                options.notify(
                    f"resuming: {reused} of {len(files)} files were indexed before "
                    f"(state {state.path}); {len(files) - reused} to index"
                )
            todo = [f for f in files if f.image_id not in hashed]
            hashed |= await hash_all(hashing, todo, options, failures, state, blobs)
            await endpoints.ready()  # a private Triton started while the files were hashed
            async with open_stages(settings, blobs, ranker, hashing, in_memory=in_memory) as stages:
                await embed_all(stages, files, hashed, known, options, state)
                known = {}  # restored: not needed any more
                memo = None
                if state is not None:
                    memo = MatcherMemo(state, matcher_salt(settings.matcher))
                await judge_all(stages, files, hashed, options, partial, memo)
                if memo is not None and memo.reused and options.notify is not None:
                    options.notify(
                        f"the matcher's work on {memo.reused} of {len(files)} images came "
                        "from the state (their candidates had not changed)"
                    )
                if state is not None:
                    state.close()
                rows = final_rows(files, ranker, failures, partial)
                thumbnails = (
                    await working_copy_thumbnails(rows, blobs) if options.thumbnails else {}
                )
                # The working copies go with the scratch folder: their URLs would name nothing.
                rows = [dataclasses.replace(r, working_copy_url="") for r in rows]
                result = ScanResult(
                    root, rows, thumbnails, failures | partial, loop.time() - started,
                    reused=reused, state=state.path if state else None,
                )  # fmt: skip
                scanned = True
                yield OpenScan(result, Checker(stages, blobs, ranker))
    except asyncio.CancelledError:
        if state is not None and options.notify is not None and not scanned:
            indexed, embedded = state.counts()
            options.notify(
                f"interrupted: {indexed} of {len(files)} files indexed ({embedded} embedded) "
                f"are kept in {state.path}; run the same scan again to resume"
            )
        raise
    finally:
        if state is not None:
            state.close()
        if endpoints.milvus_uri:
            await drop_collections(
                endpoints.milvus_uri, (settings.hasher.collection, settings.embedder.collection)
            )


async def restore_hashed(
    hashing: Hashing,
    blobs: LocalBlobs,
    working_container: str,
    known: Mapping[str, Stored],
    state: ScanState | None,
) -> dict[str, CandidateGroup]:
    """The files an earlier scan indexed (the state's records), indexed again without
    pixels: their working copies written back, their hashes stored. Returns their hashed
    groups by image id (a record without the working copy it needs is left out: redone)."""
    if state is None or not known:
        return {}
    groups: dict[str, CandidateGroup] = {}
    targets: dict[str, Path] = {}
    for image_id, stored in known.items():
        group = CandidateGroup()
        group.CopyFrom(stored.hashed)
        if group.image.status == ImageStatus.IMAGE_STATUS_OK:
            if not stored.has_working_copy:
                continue
            targets[image_id] = blobs.path(working_container, working_copy_name(image_id))
            group.image.working_copy_url = targets[image_id].as_uri()
        groups[image_id] = group
    written = await asyncio.to_thread(state.write_working_copies, targets)
    for image_id in targets.keys() - written:  # gone meanwhile: indexed again
        del groups[image_id]
    for group in groups.values():
        await hashing.restore(group.image)
    return groups


def working_copy_bytes(blobs: LocalBlobs, group: CandidateGroup) -> bytes | None:
    where = blobs.locate(group.image.working_copy_url) if group.image.working_copy_url else None
    if where is None:
        return None
    try:
        return blobs.path(*where).read_bytes()
    except OSError:
        return None


async def hash_all(
    hashing: Hashing,
    files: Sequence[LocalFile],
    options: ScanOptions,
    failures: dict[str, str],
    state: ScanState | None = None,
    blobs: LocalBlobs | None = None,
) -> dict[str, CandidateGroup]:
    """Decode every file once: its hashes and working copy are stored (and kept in the
    state, if any), so that judging meets the whole folder. Returns the hashed group of
    every file the hasher could handle, by image id (those it could not are in `failures`)."""
    hashed: dict[str, CandidateGroup] = {}

    async def one(f: LocalFile) -> None:
        try:
            group = slim(only_group(await call(hashing.hasher, f.event)))
        except Exception as error:
            log.warning("hasher failed on %s: %s", shown(f.name), shown(str(error)))
            failures[f.image_id] = f"hasher failed: {type(error).__name__}: {error}"
            return
        hashed[f.image_id] = group
        if state is not None and blobs is not None and group.image.status in STORABLE:
            ok = group.image.status == ImageStatus.IMAGE_STATUS_OK
            copy = await asyncio.to_thread(working_copy_bytes, blobs, group) if ok else None
            if copy is not None or not ok:
                state.put_hashed(f.name, group, copy)

    await each_file("indexing", files, one, options)
    return hashed


async def embed_all(
    stages: Stages,
    files: Sequence[LocalFile],
    hashed: Mapping[str, CandidateGroup],
    known: Mapping[str, Stored],
    options: ScanOptions,
    state: ScanState | None = None,
) -> None:
    """Every hashed image's embedding stored, from its working copy (only its own: the
    turned queries its candidates need, and the search, come when judging); one the state
    holds is stored again as it was (no pixels, no model), one made now is kept there."""
    todo = []
    for f in files:
        group, stored = hashed.get(f.image_id), known.get(f.image_id)
        if group is not None and stored is not None and stored.embedding is not None:
            try:
                await stages.restore_embedding(group.image, stored.embedding)
                continue
            except Exception as error:  # another dimension: embedded again
                log.warning("stored embedding of %s unusable (%s): embedded again",
                            shown(f.name), shown(str(error)))  # fmt: skip
        todo.append(f)

    async def one(f: LocalFile) -> None:
        group = hashed.get(f.image_id)
        if group is not None and group.image.status == ImageStatus.IMAGE_STATUS_OK:
            with contextlib.suppress(Exception):  # judging embeds it again, or says why
                await call(stages.store_embedding, group)
                vector = await stages.stored_embedding(group.image) if state else None
                if state is not None and vector is not None:
                    state.put_embedding(f.image_id, vector)

    await each_file("embedding", todo, one, options)


def matcher_salt(settings: MatcherSettings) -> bytes:
    """What the matcher's output depends on besides its input group: its code and the
    settings that decide (not those of its transport, caches or limits)."""
    others = (
        RuntimeSettings.model_fields.keys() | BlobSettings.model_fields.keys() | MATCHER_UNDECIDING
    )
    decides = settings.model_dump(mode="json", exclude=set(others))
    code = code_digest((REPO / "services" / "matcher").glob("*.py"))
    return json.dumps([decides, code], sort_keys=True).encode()


def matcher_input(group: CandidateGroup, salt: bytes) -> str:
    """The digest of what the matcher is given: the group without its working copies'
    URLs (a scan's scratch folder is its own), the embedding similarities to 4 places
    (Triton's batches may move the last bits)."""
    g = CandidateGroup()
    g.CopyFrom(group)
    g.image.working_copy_url = ""
    for c in g.candidates:
        c.working_copy_url = ""
        if c.scores.HasField("embedding_similarity"):
            c.scores.embedding_similarity = round(c.scores.embedding_similarity, 4)
    return hashlib.sha256(salt + g.SerializeToString(deterministic=True)).hexdigest()


@dataclass
class MatcherMemo:
    """The matcher's outputs of earlier scans (the state's), reused for an input that is
    unchanged; the outputs made now are kept there."""

    state: ScanState
    salt: bytes
    reused: int = 0

    def get(self, group: CandidateGroup, digest: str) -> CandidateGroup | None:
        """The output stored for this input, its working copies' URLs this scan's."""
        found = self.state.judged(group.image_id, digest)
        if found is None:
            return None
        out = CandidateGroup()
        out.CopyFrom(found)
        out.image.working_copy_url = group.image.working_copy_url
        given = {c.image_id: c for c in group.candidates}
        for c in out.candidates:
            now = given.get(c.image_id)
            c.working_copy_url = now.working_copy_url if now is not None else ""
            if now is not None and now.scores.HasField("embedding_similarity"):
                c.scores.embedding_similarity = now.scores.embedding_similarity  # this scan's
        self.reused += 1
        return out

    def put(self, digest: str, matched: CandidateGroup) -> None:
        self.state.put_judged(matched.image_id, digest, matched)


async def matched(
    stages: Stages, group: CandidateGroup, memo: MatcherMemo | None
) -> CandidateGroup:
    """The matcher's output for the group: remembered, or made (and remembered)."""
    if memo is None:
        return only_group(await call(stages.matcher, group))
    digest = matcher_input(group, memo.salt)
    known = memo.get(group, digest)
    if known is not None:
        return known
    out = only_group(await call(stages.matcher, group))
    memo.put(digest, out)
    return out


async def judge_all(
    stages: Stages,
    files: Sequence[LocalFile],
    hashed: dict[str, CandidateGroup],
    options: ScanOptions,
    partial: dict[str, str],
    memo: MatcherMemo | None = None,
) -> None:
    """Each indexed image through the stages, against the whole folder (its hashed group
    leaves `hashed` once judged); the matcher's work is remembered in `memo`, if given."""

    async def one(f: LocalFile) -> None:
        group = hashed.pop(f.image_id, None)
        if group is None:
            return  # the hasher failed on it: a failure already
        for stage in (
            stages.hashing.research,
            stages.verifier,
            stages.embedder,
            stages.matcher,
        ):
            try:
                if stage is stages.matcher:
                    group = await matched(stages, group, memo)
                else:
                    group = only_group(await call(stage, group))
            except Exception as error:
                # The image still gets a decision, from what the earlier stages and
                # the other images' groups proved.
                log.warning("%s failed on %s: %s", stage.name, shown(f.name), shown(str(error)))
                partial[f.image_id] = f"{stage.name} failed: {error}"
                break
        await call(stages.ranker, group)

    await each_file("matching", files, one, options)


def final_rows(
    files: Sequence[LocalFile],
    ranker: Ranker,
    failures: dict[str, str],
    partial: dict[str, str],
) -> list[Row]:
    rows = []
    for f in files:
        decision = ranker.decision(f.image_id)
        if f.image_id in failures or decision is None:
            rows.append(error_row(f, failures.get(f.image_id, "no decision was made")))
            continue
        r = dataclasses.replace(model.row(decision), container="", path=f.name)
        if f.image_id in partial:
            r = dataclasses.replace(
                r, reason="; ".join(x for x in (r.reason, partial[f.image_id]) if x)
            )
        rows.append(r)
    return rows


async def working_copy_thumbnails(rows: Sequence[Row], blobs: LocalBlobs) -> dict[str, str]:
    """image id -> data URI, for the images the gallery shows."""

    def make() -> dict[str, str]:
        thumbs = {}
        for r in gallery.shown_images(rows):
            where = blobs.locate(r.working_copy_url) if r.working_copy_url else None
            if where is None:
                continue
            with contextlib.suppress(OSError):
                uri = gallery.thumbnail_data_uri(blobs.path(*where).read_bytes())
                if uri:
                    thumbs[r.image_id] = uri
        return thumbs

    return await asyncio.to_thread(make)
