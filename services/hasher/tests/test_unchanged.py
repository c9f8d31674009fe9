"""The hasher's faster code gives what the code before it gave, on generated images.

Each ``_old_*`` is the earlier implementation, kept here as the oracle: exact where the
new code is exact, within float noise where only the order of a sum changed.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageOps

from dedup.colour import _HEADER, GRID, SAMPLE, _srgb_to_l, colour_signature
from dedup.imaging import luminance
from services.hasher.decode import Decoded, decode
from services.hasher.hashes import _haar_approximation, _median
from services.hasher.quality import (
    BLOCK_CLIP,
    BLOCK_REDUCTIONS,
    BLOCK_STRIDE,
    FRAME_LEVELS,
    FRAME_SHARE,
    JPEG_BLOCK,
    PIXEL_BANDS,
    PIXELS_STRIDE,
    _spread,
    blockiness,
    is_framed,
    pixels_checksum,
)
from services.hasher.tests import synth


def _old_flat_band(lines: npt.NDArray[np.uint8], need: int) -> npt.NDArray[np.int16] | None:
    band = lines[:need].reshape(-1, 3)
    if int((band.max(axis=0).astype(np.int16) - band.min(axis=0)).max()) > 2 * FRAME_LEVELS:
        return None
    wide = band.astype(np.int16)
    median = np.median(wide, axis=0).astype(np.int16)
    return median if int(np.abs(wide - median).max()) <= FRAME_LEVELS else None


def _old_is_framed(decoded: Decoded) -> bool:
    rgb = decoded.rgb
    h, w = rgb.shape[:2]
    need = max(2, round(FRAME_SHARE * min(h, w)))
    if min(h, w) < 8 * need:
        return False
    sides = (rgb, rgb[::-1], rgb.transpose(1, 0, 2), rgb.transpose(1, 0, 2)[::-1])
    colours = []
    for side in sides:
        colour = _old_flat_band(side, need)
        if colour is None:
            return False
        colours.append(colour)
    stacked = np.stack(colours)
    return int((stacked.max(axis=0) - stacked.min(axis=0)).max()) <= FRAME_LEVELS


def _framed_variants(seed: int) -> list[Image.Image]:
    """A photo, framed in flat, noisy (within, at and past the tolerance) and uneven
    bands, on odd and even sizes (the median of an even count is a mean of two)."""
    rng = np.random.default_rng(seed)
    img = synth.photo(seed, 401 + 2 * seed, 300 + seed)
    out = [img]
    for border, spread in ((12, 0), (9, 10), (15, 16), (10, 17), (11, 30)):
        colour = tuple(int(v) for v in rng.integers(40, 216, 3))
        framed = np.asarray(ImageOps.expand(img, border=border, fill=colour)).astype(np.int16)
        noise = rng.integers(-spread, spread + 1, framed.shape)
        mask = np.ones(framed.shape[:2], bool)
        mask[border:-border, border:-border] = False
        framed[mask] += noise[mask]
        out.append(Image.fromarray(np.clip(framed, 0, 255).astype(np.uint8)))
    # One side of another colour, and a letterbox (two sides only).
    uneven = np.asarray(ImageOps.expand(img, border=14, fill=(200, 30, 30))).copy()
    uneven[:, :14] = (180, 40, 40)
    out.append(Image.fromarray(uneven))
    out.append(ImageOps.expand(img, border=(0, 20, 0, 20), fill=(0, 0, 0)))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_is_framed_decides_as_before(seed: int) -> None:
    for img in _framed_variants(seed):
        for data in (synth.png(img), synth.jpeg(img, 80)):
            decoded = decode(data)
            assert is_framed(decoded) == _old_is_framed(decoded)


def test_the_framed_cases_include_both_answers() -> None:
    answers = {_old_is_framed(decode(synth.png(img))) for img in _framed_variants(0)}
    assert answers == {True, False}


def _greys() -> list[npt.NDArray[np.float32]]:
    """64x64 luma of photos, of noise, and of flat posterised copies (ties at the median)."""
    rng = np.random.default_rng(5)
    photos = [np.asarray(synth.photo(s, 64, 64).convert("L"), np.float32) for s in range(20)]
    noise = [rng.uniform(0, 255, (64, 64)).astype(np.float32) for _ in range(20)]
    flat = [(np.round(g / 48) * 48).astype(np.float32) for g in photos + noise]
    return photos + noise + flat


def test_the_haar_approximation_is_pywavelets_bit_for_bit() -> None:
    import pywt

    for grey in _greys():
        old = pywt.wavedec2(grey, "haar", level=2)[0]
        assert np.array_equal(_haar_approximation(grey, 2), old)


def _old_cell_mean(a: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    k = SAMPLE // GRID
    shape = (GRID, k, GRID, k, *a.shape[2:])
    return np.asarray(a.reshape(shape).mean(axis=(1, 3)), dtype=np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_the_colour_grids_are_as_before(seed: int) -> None:
    # The cell means differ from numpy's in the last bits only: their stored bytes agree,
    # and so do the scalars (mean_lightness, the mean of the means, in its last bits).
    for img in (synth.photo(seed, 64, 64), synth.photo(seed, 64, 64).convert("L")):
        rgb = np.asarray(img.convert("RGB"))
        signature = colour_signature(rgb)
        small_f = rgb.astype(np.float32) * np.float32(1.0 / 255.0)  # as colour_signature
        lab = cv2.cvtColor(small_f, cv2.COLOR_RGB2Lab)
        luma = np.asarray(cv2.cvtColor(small_f, cv2.COLOR_RGB2GRAY), np.float32)
        old = replace(signature, lab=_old_cell_mean(lab), grey_l=_old_cell_mean(_srgb_to_l(luma)))
        assert signature.to_bytes()[_HEADER.size :] == old.to_bytes()[_HEADER.size :]
        assert np.allclose(signature.lab, old.lab, rtol=0, atol=1e-4)
        assert signature.mean_lightness == pytest.approx(float(old.lab[..., 0].mean()), rel=1e-6)


def _old_blockiness(decoded: Decoded) -> float | None:
    reduction = round(decoded.scale)
    if reduction not in BLOCK_REDUCTIONS or abs(decoded.scale - reduction) > 0.02:
        return None
    period = JPEG_BLOCK // reduction
    rgb = decoded.rgb
    if min(rgb.shape[:2]) < 4 * period:
        return None

    def phase_excess(profile: npt.NDArray[np.float32]) -> float:
        phases = np.array([profile[p::period].mean() for p in range(period)])
        mean = float(phases.mean())
        return float(phases.max()) / mean - 1.0 if mean > 0 else 0.0

    def excess(luma: npt.NDArray[np.float32], axis: int) -> float:
        steps = np.abs(np.diff(luma, axis=axis))
        plain = phase_excess(steps.mean(axis=1 - axis))
        np.minimum(steps, BLOCK_CLIP, out=steps)
        return max(plain, phase_excess(steps.mean(axis=1 - axis)))

    luma = luminance(rgb)
    return min(excess(luma[::BLOCK_STRIDE], 1), excess(luma[:, ::BLOCK_STRIDE], 0))


# Sizes decoded at reductions 1, 2 and 4 (and one past them), odd and even sides; JPEGs
# at several qualities, a PNG (no blocks) and a JPEG re-saved as PNG.
@pytest.mark.parametrize("size", [(333, 250), (900, 601), (1500, 1001), (2200, 1650), (4100, 60)])
def test_blockiness_is_as_before_bit_for_bit(size: tuple[int, int]) -> None:
    img = synth.photo(sum(size), *size)
    for data in (synth.jpeg(img, 50), synth.jpeg(img, 90), synth.png(img)):
        decoded = decode(data)
        blocks = blockiness(decoded)
        assert (blocks and blocks.ratio) == _old_blockiness(decoded)


def test_the_hashes_median_is_numpys_bit_for_bit() -> None:
    # The threshold of both hashes: a median off in its last bit moves the bits of the
    # cells that tie with it (flat areas).
    rng = np.random.default_rng(7)
    for grey in _greys():
        for values in (grey.ravel(), grey[:63].ravel(), grey.reshape(16, -1)):
            assert np.array_equal(_median(values), np.median(values, axis=-1, keepdims=True))
    wide = rng.normal(0.0, 1e4, (8, 256)).astype(np.float32)
    assert np.array_equal(_median(wide), np.median(wide, axis=1, keepdims=True))


def _old_pixels_checksum(decoded: Decoded) -> bytes:
    rgb = decoded.rgb
    seed = zlib.crc32(struct.pack("<3I", *rgb.shape))
    whole, bands = seed, []
    for band in np.array_split(rgb[::PIXELS_STRIDE], PIXEL_BANDS):
        data = band.tobytes()
        whole = zlib.crc32(data, whole)
        textured = band.size > 0 and _spread(band) > FRAME_LEVELS
        bands.append(zlib.crc32(data, seed) if textured else 0)
    return struct.pack(f"<{1 + len(bands)}I", whole, *bands)


# Heights whose sampled rows split into bands unevenly, evenly, and into fewer rows than
# bands (empty ones); flat and textured bands.
@pytest.mark.parametrize("size", [(640, 480), (513, 1000), (300, 128), (200, 97), (90, 40)])
def test_the_pixels_checksum_is_as_before(size: tuple[int, int]) -> None:
    img = np.asarray(synth.photo(sum(size), *size)).copy()
    img[: size[1] // 3] = 128  # flat bands: written as 0
    decoded = decode(synth.png(Image.fromarray(img)))
    assert pixels_checksum(decoded) == _old_pixels_checksum(decoded)
