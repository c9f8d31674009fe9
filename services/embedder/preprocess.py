"""What the embedder does to a working copy before Triton sees it (client side).

Decode the JPEG working copy, trim black or white bars (the hasher's content box: a
letterboxed or framed copy is a duplicate), turn it if asked (a candidate the hashes matched
rotated or flipped), and resize to the model's square input. Sending SIDE x SIDE x 3 bytes
(150 KB at 224) keeps requests small; the model does the rest (grey, network, pooling).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from dedup.imaging import apply_dihedral, content_box, luminance

RGB = npt.NDArray[np.uint8]


class UnreadableWorkingCopyError(ValueError):
    """The working copy does not decode (it is a JPEG we wrote: should not happen)."""


def decode_rgb(data: bytes) -> RGB:
    """An upright RGB array from encoded bytes (the working copy is already upright)."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise UnreadableWorkingCopyError(f"working copy of {len(data)} bytes does not decode")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)


def trimmed(rgb: RGB) -> RGB:
    """`rgb` without black or white bars (as the hasher hashes it)."""
    top, bottom, left, right = content_box(luminance(rgb))
    return rgb[top:bottom, left:right]


def model_input(rgb: RGB, side: int, transform: int = 0) -> RGB:
    """The model's input: bars trimmed, turned by DIHEDRAL[transform], side x side RGB."""
    image = apply_dihedral(trimmed(rgb), transform)
    h, w = image.shape[:2]
    # Area averaging when shrinking (no aliasing); bilinear when a small image grows.
    interpolation = cv2.INTER_AREA if h >= side and w >= side else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(image), (side, side), interpolation=interpolation)
    return np.ascontiguousarray(resized, dtype=np.uint8)
