"""The Triton client: embeddings by model name over gRPC, concurrent images in one request.

One `InferenceServerClient` (one gRPC channel) per process. Each handler asks for one
image's embedding; a `MicroBatcher` merges what concurrent handlers ask into one request
of up to `batch_size` images (and Triton's dynamic batching merges requests again on the
server). Every call is timed (dedup_triton_request_seconds) and counted when it fails
(dedup_triton_errors_total); "the server is not there" becomes TransientError, so the
runtime waits it out and never drops the group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from dedup import metrics
from dedup.batching import MicroBatcher
from dedup.errors import TransientError

T = TypeVar("T")
Image = npt.NDArray[np.uint8]
Vector = npt.NDArray[np.float32]

# gRPC statuses that mean "not now" rather than "never": the server is down, restarting,
# overloaded or slow, or the model is (re)loading.
TRANSIENT_STATUSES = frozenset(
    {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "CANCELLED"}
)
TRANSIENT_MESSAGES = ("not ready", "unavailable", "unknown model", "not found", "failed to connect")


class ModelMismatchError(ValueError):
    """The model's inputs or outputs are not what the embedder can use."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    input_name: str
    output_name: str
    side: int  # the input is UINT8 [batch, side, side, 3]
    dim: int  # the output is FP32 [batch, dim]
    max_batch: int = 0  # the model's max_batch_size (0: not known, no limit applied)


def model_info(metadata: dict[str, Any]) -> ModelInfo:
    """What the embedder needs to know of a model, from Triton's model metadata (JSON)."""
    name = str(metadata.get("name", "?"))
    inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelMismatchError(f"model {name}: expected one input and one output")
    image, embedding = inputs[0], outputs[0]
    in_shape = [int(d) for d in image.get("shape", [])]
    out_shape = [int(d) for d in embedding.get("shape", [])]
    if (
        image.get("datatype") != "UINT8"
        or len(in_shape) != 4
        or in_shape[3] != 3
        or in_shape[1] != in_shape[2]
        or in_shape[1] < 1
    ):
        raise ModelMismatchError(f"model {name}: input must be UINT8 [-1, S, S, 3], got {image}")
    if embedding.get("datatype") != "FP32" or len(out_shape) != 2 or out_shape[1] < 1:
        raise ModelMismatchError(f"model {name}: output must be FP32 [-1, D], got {embedding}")
    return ModelInfo(name, str(image["name"]), str(embedding["name"]), in_shape[1], out_shape[1])


def is_unavailable(error: BaseException) -> bool:
    """True when Triton could not be reached, timed out, or the model is not (yet) there."""
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, grpc.RpcError):
        code = getattr(error, "code", lambda: None)()
        return code is not None and code.name in TRANSIENT_STATUSES
    if isinstance(error, InferenceServerException):
        status = str(error.status() or "").removeprefix("StatusCode.")
        text = str(error.message() or "").lower()
        return status in TRANSIENT_STATUSES or any(m in text for m in TRANSIENT_MESSAGES)
    return False


class TritonEmbedder:
    def __init__(
        self,
        client: InferenceServerClient,
        model: str,
        *,
        service: str,
        timeout_seconds: float,
        batch_size: int = 32,
        batch_delay_seconds: float = 0.005,
    ) -> None:
        self._client = client
        self._model = model
        self._service = service
        self._timeout = timeout_seconds
        self._info: ModelInfo | None = None
        self._batcher: MicroBatcher[Image, Vector] = MicroBatcher(
            self.embed_batch, max_size=batch_size, max_delay_seconds=batch_delay_seconds
        )

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            raise RuntimeError("call describe() first")
        return self._info

    async def describe(self) -> ModelInfo:
        """Read (and keep) the model's input size, embedding dimension and batch limit."""
        metadata = await self._call(
            self._client.get_model_metadata(self._model, as_json=True, client_timeout=self._timeout)
        )
        config = await self._call(
            self._client.get_model_config(self._model, as_json=True, client_timeout=self._timeout)
        )
        max_batch = int(config.get("config", {}).get("max_batch_size", 0))
        self._info = replace(model_info(metadata), max_batch=max_batch)
        return self._info

    async def embed(self, image: Image) -> Vector:
        """One image's embedding, sent in a batch with whatever else is asked meanwhile."""
        return await self._batcher.submit(image)

    async def embed_batch(self, images: Sequence[Image]) -> list[Vector]:
        """Embeddings of `images` (each side x side x 3 uint8): one Triton request, or
        several at once when there are more than the model's max_batch_size."""
        limit = self.info.max_batch or len(images)
        if len(images) > limit:
            parts = await asyncio.gather(
                *(self._infer(images[i : i + limit]) for i in range(0, len(images), limit))
            )
            return [v for part in parts for v in part]
        return await self._infer(images)

    async def _infer(self, images: Sequence[Image]) -> list[Vector]:
        info = self.info
        batch = np.ascontiguousarray(np.stack(images), dtype=np.uint8)
        request = InferInput(info.input_name, list(batch.shape), "UINT8")
        request.set_data_from_numpy(batch)
        result = await self._call(
            self._client.infer(
                self._model,
                [request],
                outputs=[InferRequestedOutput(info.output_name)],
                client_timeout=self._timeout,
            )
        )
        vectors = np.asarray(result.as_numpy(info.output_name), dtype=np.float32)
        if vectors.shape != (len(images), info.dim):
            raise ModelMismatchError(
                f"model {self._model}: {vectors.shape} embeddings for {len(images)} images"
            )
        return list(vectors)

    async def aclose(self) -> None:
        await self._batcher.aclose()

    async def _call(self, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        except Exception as error:
            metrics.TRITON_ERRORS.labels(self._service).inc()
            if is_unavailable(error):
                raise TransientError(
                    f"triton {self._model}: {error}", dependency="triton"
                ) from error
            raise
        finally:
            metrics.TRITON_SECONDS.labels(self._service, self._model).observe(
                time.perf_counter() - started
            )
