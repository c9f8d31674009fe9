"""The embedder's settings: environment variables DEDUP_EMBEDDER_*."""

from typing import Literal

from pydantic import Field, model_validator

from dedup import topics
from dedup.blob import BlobSettings
from dedup.settings import (
    KafkaTopic,
    MilvusCollection,
    MilvusSettings,
    RuntimeSettings,
    service_config,
)

IndexType = Literal["FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX"]


class EmbedderSettings(RuntimeSettings, BlobSettings, MilvusSettings):
    model_config = service_config("embedder")

    input_topic: KafkaTopic = topics.VERIFIED
    output_topic: KafkaTopic = topics.EMBEDDED
    http_port: int = 9103
    # Handlers in flight at once: what the micro-batchers can merge into one Triton call
    # and one Milvus call, so at least triton_batch_size.
    concurrency: int = Field(32, ge=1, le=1024)

    # Triton's gRPC endpoint and the model (any model with one UINT8 [side, side, 3] input
    # and one FP32 [dim] output; both are read from the model's metadata at start-up).
    triton_url: str = "127.0.0.1:8001"
    # The default: SSCD distilled, a copy-detection model (services/embedder/models/README.md).
    triton_model: str = "sscd_distilled"
    triton_timeout_seconds: float = Field(30.0, gt=0)
    # Concurrent images are sent together: up to this many per request, waiting at most
    # triton_batch_delay_seconds for the batch to fill.
    triton_batch_size: int = Field(32, ge=1, le=1024)
    triton_batch_delay_seconds: float = Field(0.005, ge=0, le=1)

    # The Milvus collection of embeddings (one record per readable image). Embeddings of
    # different models do not compare: a new model needs a new collection (and a back-fill).
    collection: MilvusCollection = "dedup_embeddings_sscd_distilled_320"
    # FLAT: exact, and on Milvus Lite the only choice that is (Lite searches its one
    # growing segment with a fixed interim IVF for IVF_FLAT and AUTOINDEX: 0.575 of the
    # candidates a flat search finds, whatever ivf_nprobe says). A Milvus cluster: HNSW
    # (the chart sets it). Measured: bench/README.md, "The growth table". A collection
    # keeps the index it was made with.
    index_type: IndexType = "FLAT"
    ivf_nlist: int = Field(1024, ge=1, le=65536)
    ivf_nprobe: int = Field(32, ge=1, le=65536)
    hnsw_m: int = Field(16, ge=2, le=2048)
    hnsw_ef_construction: int = Field(200, ge=1)
    # 512: 0.997 of a flat search's candidates (>= 0.40) at 100k in faiss's HNSW; 64: 0.83.
    hnsw_ef: int = Field(512, ge=1)
    milvus_batch_size: int = Field(64, ge=1, le=16384)
    milvus_batch_delay_seconds: float = Field(0.005, ge=0, le=1)

    # Nearest neighbours looked at per image.
    neighbours: int = Field(10, ge=1, le=1024)
    # Cosine similarity thresholds of the default model, chosen on data with
    # bench/embedder_eval.py (see services/embedder/README.md). A neighbour at or above
    # add_threshold that the hashes missed becomes a candidate (the matcher proves it or
    # not); a hash candidate below drop_threshold is rejected (kept, with the reason).
    add_threshold: float = Field(0.40, ge=-1, le=1)
    drop_threshold: float = Field(0.30, ge=-1, le=1)
    # A hash candidate within PDQ's published match threshold (distance <= 31 of 256 bits,
    # at the turn the hashes matched) is never dropped on its embedding similarity: it
    # stays open for the matcher's geometric proof. -1 turns this off.
    keep_pdq_distance: int = Field(31, ge=-1, le=256)

    # A working copy is <= 512 px JPEG (~100 KB); refuse anything absurd.
    working_copy_max_bytes: int = Field(8 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _drop_below_add(self) -> "EmbedderSettings":
        if self.drop_threshold > self.add_threshold:
            raise ValueError("drop_threshold must not be above add_threshold")
        return self
