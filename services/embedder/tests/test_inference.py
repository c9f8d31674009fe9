"""The Triton client wrapper: model metadata, error mapping, and a server that is not there."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from pydantic import ValidationError
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from dedup import metrics
from dedup.errors import TransientError
from services.embedder.inference import (
    ModelInfo,
    ModelMismatchError,
    TritonEmbedder,
    is_unavailable,
    model_info,
)
from services.embedder.settings import EmbedderSettings

METADATA = {
    "name": "m",
    "inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": ["-1", "224", "224", "3"]}],
    "outputs": [{"name": "EMBEDDING", "datatype": "FP32", "shape": ["-1", "1280"]}],
}


def test_model_info_reads_the_side_and_the_dimension() -> None:
    assert model_info(METADATA) == ModelInfo("m", "IMAGE", "EMBEDDING", 224, 1280)


@pytest.mark.parametrize(
    ("part", "entry"),
    [
        ("inputs", {"name": "IMAGE", "datatype": "FP32", "shape": ["-1", "224", "224", "3"]}),
        ("inputs", {"name": "IMAGE", "datatype": "UINT8", "shape": ["-1", "224", "200", "3"]}),
        ("inputs", {"name": "IMAGE", "datatype": "UINT8", "shape": ["-1", "3", "224", "224"]}),
        ("outputs", {"name": "EMBEDDING", "datatype": "FP16", "shape": ["-1", "1280"]}),
        ("outputs", {"name": "EMBEDDING", "datatype": "FP32", "shape": ["-1", "4", "320"]}),
    ],
)
def test_a_model_the_embedder_cannot_feed_is_refused(part: str, entry: dict[str, object]) -> None:
    with pytest.raises(ModelMismatchError):
        model_info(METADATA | {part: [entry]})


@pytest.mark.parametrize(
    ("status", "message", "transient"),
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", True),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", True),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'm' is not found", True),
        ("StatusCode.UNAVAILABLE", "Request for unknown model: 'm' is not ready", True),
        ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'IMAGE'", False),
        ("StatusCode.INTERNAL", "embedding failed: bad image", False),
    ],
)
def test_unavailable_means_not_now(status: str, message: str, transient: bool) -> None:
    assert is_unavailable(InferenceServerException(msg=message, status=status)) is transient


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_triton_that_is_not_there_is_a_transient_error() -> None:
    client = InferenceServerClient(f"127.0.0.1:{closed_port()}")
    model = TritonEmbedder(client, "m", service="embedder-test", timeout_seconds=5)
    errors = metrics.TRITON_ERRORS.labels("embedder-test")
    before = errors._value.get()
    try:
        with pytest.raises(TransientError):
            await model.describe()
        model._info = model_info(METADATA)  # as if it had answered before going away
        with pytest.raises(TransientError):
            await model.embed(np.zeros((224, 224, 3), np.uint8))
    finally:
        await model.aclose()
        await client.close()
    assert errors._value.get() == before + 2


def test_the_drop_threshold_cannot_be_above_the_add_threshold() -> None:
    with pytest.raises(ValidationError):
        EmbedderSettings(add_threshold=0.5, drop_threshold=0.6)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEDUP_EMBEDDER_TRITON_URL", "triton:8001")
    monkeypatch.setenv("DEDUP_EMBEDDER_INDEX_TYPE", "HNSW")
    s = EmbedderSettings()
    assert (s.triton_url, s.index_type, s.http_port) == ("triton:8001", "HNSW", 9103)


class FakeTriton:
    """Answers like Triton for a model that embeds an image as its mean pixel, repeated."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self.batches: list[int] = []

    async def get_model_metadata(self, model: str, **_: object) -> dict[str, object]:
        output = {"name": "EMBEDDING", "datatype": "FP32", "shape": ["-1", "4"]}
        return {**METADATA, "outputs": [output]}

    async def get_model_config(self, model: str, **_: object) -> dict[str, object]:
        return {"config": {"name": model, "max_batch_size": self.max_batch}}

    async def infer(self, model: str, inputs: list[InferInput], **_: object) -> FakeResult:
        (request,) = inputs
        shape = request.shape()
        assert shape[0] <= self.max_batch, "over the model's max_batch_size"
        self.batches.append(shape[0])
        images = np.frombuffer(request._get_content(), np.uint8).reshape(shape)
        return FakeResult(np.repeat(images.mean(axis=(1, 2, 3))[:, None], 4, axis=1))


class FakeResult:
    def __init__(self, out: np.ndarray) -> None:
        self.out = out.astype(np.float32)

    def as_numpy(self, name: str) -> np.ndarray:
        return self.out


async def test_a_batch_over_the_models_limit_is_sent_in_parts() -> None:
    fake = FakeTriton(max_batch=4)
    model = TritonEmbedder(fake, "m", service="embedder-test", timeout_seconds=5)
    info = await model.describe()
    assert (info.side, info.dim, info.max_batch) == (224, 4, 4)
    images = [np.full((224, 224, 3), i, np.uint8) for i in range(10)]
    vectors = await model.embed_batch(images)
    assert [float(v[0]) for v in vectors] == list(range(10))
    assert sorted(fake.batches) == [2, 4, 4]
