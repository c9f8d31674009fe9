"""The hasher's settings: environment variables DEDUP_HASHER_*."""

from typing import Literal

from pydantic import Field

from dedup import topics
from dedup.blob import BlobSettings
from dedup.settings import (
    BlobContainer,
    KafkaTopic,
    MilvusCollection,
    MilvusSettings,
    RuntimeSettings,
    service_config,
)
from services.hasher.decode import DEFAULT_DECODE_MEMORY_BYTES, DEFAULT_MAX_PIXELS
from services.hasher.thumbnail import WORKING_SIDE


class HasherSettings(RuntimeSettings, BlobSettings, MilvusSettings):
    model_config = service_config("hasher")

    input_topic: KafkaTopic = topics.BLOB_EVENTS
    output_topic: KafkaTopic = topics.HASHED
    http_port: int = 9101

    # The derived container that holds one working copy per image (<image_id>.jpg).
    working_container: BlobContainer = "dedup-working"
    working_side: int = Field(WORKING_SIDE, ge=64, le=4096)
    # Milvus collection of the hashes (one record per readable image).
    collection: MilvusCollection = "dedup_hashes"
    # The index of both hash fields. BIN_FLAT is exact (every hash within the radius is
    # found) and the only one Milvus Lite builds; BIN_IVF_FLAT (a Milvus cluster) probes
    # ivf_nprobe of ivf_nlist lists and misses what lies in the others (README.md).
    index_type: Literal["BIN_FLAT", "BIN_IVF_FLAT"] = "BIN_FLAT"
    ivf_nlist: int = Field(1024, ge=1, le=65536)
    ivf_nprobe: int = Field(64, ge=1, le=65536)
    # Threads decoding and hashing at once; 0: one per CPU of the container's quota
    # (dedup.cpus). The work is CPU-bound, so more
    # threads than cores only contend (OpenCV's own threading is turned off).
    worker_threads: int = Field(0, ge=0, le=256)
    # Decompression-bomb limit: a declared pixel count above this is refused unread.
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    # Bytes that all concurrent decodes together may hold at their peak (estimated from
    # each header): decodes wait for room; an image that needs more than all of it is
    # refused as too_large. The default leaves the chart's 2 Gi limit room for the
    # process's baseline and the downloads in flight (measured: bench/README.md).
    decode_memory_bytes: int = Field(DEFAULT_DECODE_MEMORY_BYTES, ge=64 << 20)

    # Hamming radii (of 256 bits) within which a stored image becomes a candidate, chosen
    # on data (`python -m bench.hash_radii`, bench/README.md): PDQ (best of 8 turns) <= 80
    # keeps no false pair among 650k photo pairs and finds 0.93 of edits (31, PDQ's usual
    # match threshold: 0.77); the wavelet hash adds crops and captions but its false rate
    # climbs fast (11 per million stored images at 28 bits, 770 at 40). Later stages
    # reject false candidates; nothing later recovers a missed one (but the embedder).
    pdq_radius: int = Field(80, ge=0, le=256)
    wavelet_radius: int = Field(28, ge=0, le=256)
    # At most this many candidates per search (per PDQ rotation/flip and for the wavelet
    # hash); the union is cut to the same number, nearest first.
    max_candidates: int = Field(32, ge=1, le=1024)
