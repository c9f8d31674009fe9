"""Fast anti-aliased shrinking to the small fixed grids the features use."""

from __future__ import annotations

from typing import Any

import cv2
import numpy.typing as npt


def area_resize(image: npt.NDArray[Any], width: int, height: int) -> npt.NDArray[Any]:
    """Shrink ``image`` to ``width`` x ``height`` without aliasing (or enlarge, if smaller).

    OpenCV's area filter is slow for large non-integer ratios (~0.4 ms for 512x341 ->
    64x64, a fifth of the hasher's whole budget). Halving with a Gaussian pyramid while
    both sides stay at least twice the target, then an area filter for the last < 2x,
    costs ~0.15 ms and low-passes just as well.
    """
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    while w >= 2 * width and h >= 2 * height:
        image = cv2.pyrDown(image)
        h, w = image.shape[:2]
    shrink = w >= width and h >= height
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)
