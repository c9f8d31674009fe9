"""The hasher's settings: environment variables DEDUP_HASHER_*."""

from pydantic import Field

from dedup import topics
from dedup.blob import BlobSettings
from dedup.settings import RuntimeSettings, service_config
from dedup.vectors import MilvusSettings
from services.hasher.decode import DEFAULT_MAX_PIXELS
from services.hasher.thumbnail import WORKING_SIDE


class HasherSettings(RuntimeSettings, BlobSettings, MilvusSettings):
    model_config = service_config("hasher")

    input_topic: str = topics.BLOB_EVENTS
    output_topic: str = topics.HASHED
    http_port: int = 9101

    # The derived container that holds one working copy per image (<image_id>.jpg).
    working_container: str = "dedup-working"
    working_side: int = Field(WORKING_SIDE, ge=64, le=4096)
    # Milvus collection of the hashes (one record per readable image).
    collection: str = "dedup_hashes"
    # Threads decoding and hashing at once; 0: one per CPU. The work is CPU-bound, so more
    # threads than cores only contend (OpenCV's own threading is turned off).
    worker_threads: int = Field(0, ge=0, le=256)
    # Decompression-bomb limit: a declared pixel count above this is refused unread.
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)

    # Hamming radii (of 256 bits) within which a stored image becomes a candidate.
    # Chosen on data (bench/hash_radii.py, see bench/README.md): they lean to recall,
    # because the verifier, embedder and matcher reject false candidates but nothing
    # later recovers a missed one. PDQ's customary match threshold is 31.
    pdq_radius: int = Field(80, ge=0, le=256)
    wavelet_radius: int = Field(28, ge=0, le=256)
    # At most this many candidates per search (per PDQ rotation/flip and for the wavelet
    # hash); the union is cut to the same number, nearest first.
    max_candidates: int = Field(32, ge=1, le=1024)
