"""The Triton client wrapper: model metadata, error mapping, and a server that is not there."""

import socket

import numpy as np
import pytest
from pydantic import ValidationError
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
