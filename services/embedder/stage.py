"""The embedder's stage: its handler with the clients and metrics it needs.

Candidate groups in, groups with embedding evidence out. `python -m services.embedder` runs
it with the Kafka runner (__main__.py); `dedup scan` opens it in its own process, with no
Kafka.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from tritonclient.grpc.aio import InferenceServerClient

from dedup.blob import Blobs, blob_store
from dedup.runtime.contract import Stage
from dedup.v1.groups_pb2 import CandidateGroup
from services.embedder.handler import STAGE, Embedder, EmbedderConfig, Thresholds
from services.embedder.index import EmbeddingIndex, MemoryEmbeddingIndex, index_config
from services.embedder.inference import TritonEmbedder
from services.embedder.settings import EmbedderSettings

if TYPE_CHECKING:
    from pymilvus import AsyncMilvusClient


@asynccontextmanager
async def open_stage(
    settings: EmbedderSettings, blobs: Blobs | None = None, *, in_memory: bool = False
) -> AsyncIterator[Stage[CandidateGroup]]:
    """`blobs`: the storage to use instead of the account in `settings`; `in_memory`: the
    index in this process instead of Milvus (both for `dedup scan`)."""
    async with open_embedder(settings, blobs, in_memory=in_memory) as embedder:
        yield Stage(STAGE, CandidateGroup, embedder.handle)


@asynccontextmanager
async def open_embedder(
    settings: EmbedderSettings, blobs: Blobs | None = None, *, in_memory: bool = False
) -> AsyncIterator[Embedder]:
    """The handler with its clients (Triton, the index, blob storage); as `open_stage`."""
    triton = InferenceServerClient(settings.triton_url)
    try:
        async with blob_store(settings, STAGE, blobs) as store:
            model = TritonEmbedder(
                triton,
                settings.triton_model,
                service=STAGE,
                timeout_seconds=settings.triton_timeout_seconds,
                batch_size=settings.triton_batch_size,
                batch_delay_seconds=settings.triton_batch_delay_seconds,
            )
            # The input size and the embedding dimension come from the model itself; a
            # Triton that is not up yet is waited for (TransientError) by the runtime.
            info = await model.describe()
            async with embedding_index(settings, info.dim, in_memory=in_memory) as index:
                embedder = Embedder(
                    store,
                    model.embed,
                    index,
                    EmbedderConfig(
                        side=info.side,
                        neighbours=settings.neighbours,
                        thresholds=Thresholds(
                            settings.add_threshold,
                            settings.drop_threshold,
                            settings.keep_pdq_distance,
                        ),
                        max_download_bytes=settings.working_copy_max_bytes,
                    ),
                )
                try:
                    yield embedder
                finally:
                    await model.aclose()
    finally:
        await triton.close()


@asynccontextmanager
async def embedding_index(
    settings: EmbedderSettings, dim: int, *, in_memory: bool
) -> AsyncIterator[EmbeddingIndex]:
    """The index in this process's memory, or on Milvus (the collection made if missing)."""
    if in_memory:
        yield MemoryEmbeddingIndex(dim)
        return
    # Imported here: pymilvus (with pandas) is ~60 MB that an index in memory never needs.
    from dedup.vectors import FlushPolicy, opened_index
    from services.embedder.milvus_index import MilvusEmbeddingIndex

    def make(milvus: "AsyncMilvusClient") -> MilvusEmbeddingIndex:
        return MilvusEmbeddingIndex(
            milvus,
            settings.collection,
            dim,
            index_config(
                settings.index_type,
                nlist=settings.ivf_nlist,
                nprobe=settings.ivf_nprobe,
                m=settings.hnsw_m,
                ef_construction=settings.hnsw_ef_construction,
                ef=settings.hnsw_ef,
            ),
            service=STAGE,
            batch_size=settings.milvus_batch_size,
            batch_delay_seconds=settings.milvus_batch_delay_seconds,
            flush=FlushPolicy(settings.milvus_flush_rows, settings.milvus_flush_seconds),
        )

    async with opened_index(settings, make) as index:
        yield index
