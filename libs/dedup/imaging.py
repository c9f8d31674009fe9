"""Image helpers shared by the stages: the 8 rotations/flips, luminance, bar trimming.

The hasher hashes each image in all 8 turns; the verifier and the embedder turn a
candidate back the way the hashes matched it, so they must agree on the same transforms.
"""

from __future__ import annotations

from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

Grey = npt.NDArray[np.uint8] | npt.NDArray[np.float32] | npt.NDArray[np.float64]

# The 8 dihedral transforms, in the order of ``PdqHash.dihedral`` (index 0 = identity).
# ``rot90`` turns the image a quarter counter-clockwise (numpy.rot90's sense);
# ``transpose`` mirrors about the main diagonal, ``transverse`` about the other one.
DIHEDRAL: Final = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "flip_lr",
    "flip_ud",
    "transpose",
    "transverse",
)

# INVERSE[i]: the index (into DIHEDRAL) of the transform that undoes transform i.
# Quarter turns undo each other; a half turn, the flips and the two diagonal mirrors undo
# themselves.
INVERSE: Final = (0, 3, 2, 1, 4, 5, 6, 7)


# The float copy that luma is computed from is made this much at a time: a whole decoded
# image's would be a block of several MiB, mmapped (dedup.memory) and faulted in afresh
# on every call, which costs more than the conversion.
LUMA_STRIP_BYTES: Final = 1 << 20


def luminance(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Rec.601 luma (the coefficients PDQ uses) as float32, 0..255.

    Not rounded to uint8: on near-black images (PDQ quality ~0) whole-level rounding
    alone flips a third of the bits against the reference.
    """
    h, w = rgb.shape[:2]
    rows = max(1, LUMA_STRIP_BYTES // (12 * max(1, w)))  # 3 float32 channels a pixel
    if h <= rows:
        rgb_f = np.asarray(rgb, dtype=np.float32)
        return np.asarray(cv2.cvtColor(rgb_f, cv2.COLOR_RGB2GRAY), dtype=np.float32)
    out = np.empty((h, w), dtype=np.float32)
    strip = np.empty((rows, w, 3), dtype=np.float32)
    for top in range(0, h, rows):
        n = min(rows, h - top)
        np.copyto(strip[:n], rgb[top : top + n], casting="unsafe")
        cv2.cvtColor(strip[:n], cv2.COLOR_RGB2GRAY, dst=out[top : top + n])
    return out


def apply_dihedral(array: npt.NDArray[Any], index: int) -> npt.NDArray[Any]:
    """Turn an image-like array (rows, cols, ...) by ``DIHEDRAL[index]``."""
    match DIHEDRAL[index]:
        case "identity":
            return array
        case "rot90":
            return np.rot90(array, 1)
        case "rot180":
            return np.rot90(array, 2)
        case "rot270":
            return np.rot90(array, 3)
        case "flip_lr":
            return array[:, ::-1]
        case "flip_ud":
            return array[::-1]
        case "transpose":
            return np.swapaxes(array, 0, 1)
        case _:  # transverse
            return np.swapaxes(array[::-1, ::-1], 0, 1)


# ---- borders ------------------------------------------------------------------------------

BORDER_DARK: Final = 16.0  # a line whose brightest pixel is at most this is a black bar
BORDER_LIGHT: Final = 240.0  # ... whose darkest pixel is at least this, a white bar
BORDER_MIN_BAND: Final = 0.02  # bands thinner than 2 % of the side are left alone
BORDER_MIN_KEEP: Final = 0.25  # never trim to less than a quarter of the area


def content_box(grey: Grey) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) slice bounds of ``grey`` without black or white bars.

    Letterboxed, pillarboxed and framed copies are duplicates, but bars move every
    hash bit (PDQ is ~120 bits off for a letterboxed photo). Only near-pure black or
    white lines count: a dark sky or a grey wall is content, and brightness edits leave
    pure bars pure. Thin bands (< 2 %) and trims leaving < 25 % of the area are ignored.
    """
    g = np.asarray(grey)
    h, w = g.shape
    edges = (g[0], g[-1], g[:, 0], g[:, -1])
    if not any(e.max() <= BORDER_DARK or e.min() >= BORDER_LIGHT for e in edges):
        return 0, h, 0, w  # the common case, decided from the four edge lines alone
    row_max, row_min = g.max(axis=1), g.min(axis=1)
    col_max, col_min = g.max(axis=0), g.min(axis=0)
    top = _band(row_max, row_min, h)
    bottom = h - _band(row_max[::-1], row_min[::-1], h)
    left = _band(col_max, col_min, w)
    right = w - _band(col_max[::-1], col_min[::-1], w)
    if bottom <= top or right <= left or (bottom - top) * (right - left) < BORDER_MIN_KEEP * h * w:
        return 0, h, 0, w
    return top, bottom, left, right


def _band(maxs: npt.NDArray[Any], mins: npt.NDArray[Any], n: int) -> int:
    """Number of leading bar lines (all of one kind: black or white)."""
    if maxs[0] <= BORDER_DARK:
        bar = maxs <= BORDER_DARK
    elif mins[0] >= BORDER_LIGHT:
        bar = mins >= BORDER_LIGHT
    else:
        return 0
    run = n if bar.all() else int(np.argmin(bar))
    return run if run >= BORDER_MIN_BAND * n else 0
