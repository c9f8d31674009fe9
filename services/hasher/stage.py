"""The hasher's stage: its handler with the clients and metrics it needs.

Blob events in, candidate groups out. `python -m services.hasher` runs it with the Kafka
runner (__main__.py); `dedup scan` opens it in its own process, with no Kafka.
"""

from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING

import cv2

from dedup import metrics
from dedup.blob import Blobs, blob_store
from dedup.budget import ByteBudget
from dedup.cpus import available_cpus
from dedup.runtime.contract import Output, Stage
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import CandidateGroup
from services.hasher.features import extract
from services.hasher.handler import STAGE, Hasher, HasherConfig
from services.hasher.index import HashIndex, MemoryHashIndex, Radii
from services.hasher.settings import HasherSettings

if TYPE_CHECKING:
    from pymilvus import AsyncMilvusClient


def status_label(status: ImageStatus.ValueType) -> str:
    """IMAGE_STATUS_TOO_LARGE -> too_large (the `status` label of dedup_images_total)."""
    return ImageStatus.Name(status).removeprefix("IMAGE_STATUS_").lower()


def count_images(outputs: Sequence[Output]) -> None:
    for output in outputs:
        if isinstance(output.message, CandidateGroup):
            status = output.message.image.status
            if status != ImageStatus.IMAGE_STATUS_DELETED:
                metrics.IMAGES.labels(STAGE, status_label(status)).inc()


def export_image_counts() -> None:
    """Every status at 0 from the start: rates and the alert's ratio exist at once."""
    for status in ImageStatus.values():
        if status not in (ImageStatus.IMAGE_STATUS_UNSPECIFIED, ImageStatus.IMAGE_STATUS_DELETED):
            metrics.IMAGES.labels(STAGE, status_label(status))


@asynccontextmanager
async def open_stage(
    settings: HasherSettings, blobs: Blobs | None = None
) -> AsyncIterator[Stage[BlobEvent]]:
    """`blobs`: the storage to use instead of the account in `settings` (`dedup scan`)."""
    export_image_counts()
    async with open_hasher(settings, blobs) as hasher:

        async def handle(event: BlobEvent) -> Sequence[Output]:
            outputs = await hasher.handle(event)
            count_images(outputs)
            return outputs

        yield Stage(STAGE, BlobEvent, handle)


@asynccontextmanager
async def open_hasher(
    settings: HasherSettings, blobs: Blobs | None = None, *, in_memory: bool = False
) -> AsyncIterator[Hasher]:
    """The handler with its clients (Milvus, blob storage, the decoding threads).
    `blobs`: the storage to use instead of the account in `settings`; `in_memory`: the
    index in this process instead of Milvus (both for `dedup scan`)."""
    # Parallelism comes from the worker threads, one image each: OpenCV's own thread
    # pool on top of them would only oversubscribe the cores.
    cv2.setNumThreads(1)
    threads = settings.worker_threads or available_cpus()
    executor = ThreadPoolExecutor(threads, thread_name_prefix="hasher")
    try:
        async with (
            blob_store(settings, STAGE, blobs) as store,
            hash_index(settings, in_memory=in_memory) as index,
        ):
            await store.ensure_container(settings.working_container)
            hasher = Hasher(
                store,
                index,
                partial(
                    extract,
                    working_side=settings.working_side,
                    max_pixels=settings.max_pixels,
                    max_bytes=settings.blob_max_download_bytes,
                    budget=ByteBudget(settings.decode_memory_bytes),
                ),
                HasherConfig(
                    working_container=settings.working_container,
                    max_download_bytes=settings.blob_max_download_bytes,
                    pdq_radius=settings.pdq_radius,
                    wavelet_radius=settings.wavelet_radius,
                    max_candidates=settings.max_candidates,
                ),
                executor,
            )
            yield hasher
    finally:
        executor.shutdown(wait=False, cancel_futures=True)


@asynccontextmanager
async def hash_index(settings: HasherSettings, *, in_memory: bool) -> AsyncIterator[HashIndex]:
    """The index in this process's memory, or on Milvus (the collection made if missing)."""
    radii = Radii(settings.pdq_radius, settings.wavelet_radius, settings.max_candidates)
    if in_memory:
        yield MemoryHashIndex(radii)
        return
    # Imported here: pymilvus (with pandas) is ~60 MB that an index in memory never needs.
    from dedup.vectors import FlushPolicy, opened_index
    from services.hasher.milvus_index import MilvusHashIndex, hash_index_config

    def make(milvus: "AsyncMilvusClient") -> MilvusHashIndex:
        return MilvusHashIndex(
            milvus,
            settings.collection,
            radii,
            STAGE,
            index=hash_index_config(
                settings.index_type, nlist=settings.ivf_nlist, nprobe=settings.ivf_nprobe
            ),
            flush=FlushPolicy(settings.milvus_flush_rows, settings.milvus_flush_seconds),
        )

    async with opened_index(settings, make) as index:
        yield index
