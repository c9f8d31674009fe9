"""Milvus: the shared store of per-image vectors (hashes, embeddings) and their search.

One client per process (no per-message connection set-up); every call is timed, and
"the server is not there" is mapped onto TransientError so the runtime waits it out.
The only module of the library that imports pymilvus (its settings: dedup.settings).
"""

import time
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from pymilvus import AsyncMilvusClient
from pymilvus.exceptions import ErrorCode, MilvusException, MilvusUnavailableException

from dedup import metrics
from dedup.errors import TransientError
from dedup.logs import adopt_library_loggers
from dedup.settings import MilvusSettings

adopt_library_loggers()  # pymilvus has just installed a stderr handler of its own

T = TypeVar("T")

UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def open_milvus(settings: MilvusSettings) -> AsyncMilvusClient:
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
    return AsyncMilvusClient(
        uri=settings.milvus_uri, token=token, timeout=settings.milvus_timeout_seconds
    )


def is_unavailable(error: BaseException) -> bool:
    """True when Milvus could not be reached or is overloaded (worth a retry)."""
    if isinstance(error, MilvusUnavailableException | ConnectionError | TimeoutError):
        return True
    if isinstance(error, grpc.RpcError):
        return getattr(error, "code", lambda: None)() in UNAVAILABLE
    if isinstance(error, MilvusException):
        return error.code == ErrorCode.RATE_LIMIT or "connect" in str(error).lower()
    return False


async def timed(service: str, operation: str, call: Awaitable[T]) -> T:
    """Await one Milvus call, recording its latency and errors by operation."""
    started = time.perf_counter()
    try:
        return await call
    except Exception as error:
        metrics.MILVUS_ERRORS.labels(service, operation).inc()
        if is_unavailable(error):
            raise TransientError(f"milvus {operation}: {error}", dependency="milvus") from error
        raise
    finally:
        metrics.MILVUS_SECONDS.labels(service, operation).observe(time.perf_counter() - started)
