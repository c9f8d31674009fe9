"""The default model's pure parts: cutting the graphs down, pooling, preprocessing."""

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from services.embedder.model_build import graph_subset, referenced_names, text_graph_until
from services.embedder.preprocess import model_input

BACKBONE = Path(__file__).parents[1] / "models/mobilenet_v2_rmac/1/backbone.py"


def load_backbone() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mobilenet_v2_rmac_backbone", BACKBONE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TEXT = """node {
  name: "image_tensor"
  op: "Placeholder"
}
node {
  name: "conv"
  op: "Conv2D"
  input: "image_tensor"
  input: "conv/weights:0"
}
node {
  name: "relu"
  op: "Relu6"
  input: "conv"
  input: "^init"
}
node {
  name: "head"
  op: "Conv2D"
  input: "relu"
}
"""


def test_the_text_graph_is_cut_after_the_layer() -> None:
    cut = text_graph_until(TEXT, "relu")
    assert 'name: "relu"' in cut
    assert 'name: "head"' not in cut
    assert referenced_names(cut) == {"image_tensor", "conv", "conv/weights", "relu", "init"}
    with pytest.raises(ValueError):
        text_graph_until(TEXT, "nowhere")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def node(name: str, tensor: bytes = b"") -> bytes:
    # NodeDef: name = 1, op = 2, attr = 5 (any length-delimited payload will do here).
    return field(1, field(1, name.encode()) + field(2, b"Const") + field(5, tensor))


def test_the_binary_graph_keeps_only_the_named_nodes_and_the_rest_as_is() -> None:
    versions = varint(4 << 3 | 2) + varint(2) + varint(1 << 3) + varint(27)
    graph = node("keep", b"\x00" * 300) + node("drop", b"\x01" * 300) + versions
    assert graph_subset(graph, {"keep"}) == node("keep", b"\x00" * 300) + versions


def test_rmac_is_a_unit_vector_per_image_and_sees_every_region() -> None:
    backbone = load_backbone()
    maps = np.zeros((2, 4, 7, 7), np.float32)
    maps[0, 1, 0, 0] = 1.0  # a corner: global max and one quadrant
    maps[1, 2, 3, 3] = 1.0  # the centre: in every quadrant
    out = backbone.rmac(maps)
    assert out.shape == (2, 4)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    assert np.argmax(out[0]) == 1 and np.argmax(out[1]) == 2


def test_the_model_sees_grey() -> None:
    backbone = load_backbone()
    images = np.zeros((1, 2, 2, 3), np.uint8)
    images[0, 0, 0] = (255, 0, 0)
    blob = backbone.grey_blob(images)
    assert blob.shape == (1, 3, 2, 2)
    assert np.allclose(blob[0, :, 0, 0], 0.299 * 255, atol=0.01)


def test_model_input_trims_bars_and_resizes() -> None:
    rgb = np.zeros((100, 200, 3), np.uint8)
    rgb[:, 50:150] = 128  # a grey picture pillarboxed by black bars
    rgb[40:60, 90:110] = 250
    out = model_input(rgb, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert out.min() > 100  # the bars are gone
    turned = model_input(rgb, 32, transform=1)
    assert np.array_equal(turned, np.rot90(out))
