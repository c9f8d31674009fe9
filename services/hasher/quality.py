"""Quality score in [0, 1]: the ranker keeps the highest-scoring copy of a cluster.

Copies of one image are compared with each other, so every part is measured the same way
on every copy: sharpness, noise and exposure on the greyscale image resized to a longer
side of exactly ``CANONICAL_SIDE`` (512) pixels, so a 4000-px original and its 1000-px
copy are judged at the same scale relative to their content; smaller copies are
upscaled to it and so look (correctly) soft. The statistics below run over a regular
subsample (every 2nd or 4th row) of that image: plenty for a score, for less time.

    Q = 0.25 R + 0.30 S + 0.15 J + 0.10 N + 0.15 E + 0.05 C

- R, resolution: m / (m + 2), m = megapixels of the original (after orientation);
  0.5 at 2 MP, 0.86 at 12 MP, strictly increasing, so a downscale or a crop always loses.
- S, sharpness: v / (v + 150), v = the Laplacian's energy less the part that noise
  explains (20 sigma^2: the 4-neighbour kernel's squared weights sum to 20). The energy
  is the 75th percentile over 8 x 8 tiles of the mean squared Laplacian, so a caption or
  a logo in a few tiles does not pass for detail; sigma for this is the larger of N's and
  the one measured before an upscale to 512 px (which smooths noise out of the estimate,
  not out of the energy), so added noise does not either; a palette image is smoothed
  (Gaussian, 1 px) first, so its dither does not. v is scaled by (50 / d)^2, d = the
  grey levels' standard deviation: a gain in contrast (a brightening) is no detail.
- N, noise: 1 / (1 + (sigma / 5)^2), sigma = Immerkaer's noise estimate (the 3x3
  kernel [1 -2 1; -2 4 -2; 1 -2 1]) made robust to edges by using the median absolute
  response: sigma = median|K*I| / (6 * 0.6745); in grey levels, at 512 px.
- J, compression: JPEG: q / 100, q = the IJG quality (1..100) whose scaled standard
  luminance table is nearest (in log ratio) to the file's; a palette image (GIF, a
  quantised PNG: ``is_palette``) and a lossless file whose pixels show a JPEG's blocks
  (``blockiness`` >= 0.05: saved from a JPEG of unknown quality): 0.60; other lossless
  formats: 1.0; lossy WebP (quality not recorded): 0.80; unknown: 0.85.
- E, exposure: 1 - min(1, 2 c), c = the fraction of pixels clipped (<= 2 or >= 253).
- C, colour: 1 for colour content, 0 for a grey picture (``is_greyscale`` of the colour
  signature, or colour in a patch only): a greyscale copy loses to its colour original.

Known limits: a copy re-saved at a *higher* JPEG quality than its original gains J (a
caption, a crop or a hue edit saved at 90 from a JPEG at 70 outscores it; the ranker's
re-save rule orders those); a re-encode's blocks and a sharpening's overshoot still count
as detail; a lossless original whose pixels show blocks (it went through a JPEG once)
gets J 0.60; blur that is invisible at 512 px is not measured.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from dedup.imaging import luminance
from services.hasher.decode import Decoded

CANONICAL_SIDE: Final = 512
WEIGHTS: Final = {
    "resolution": 0.25,
    "sharpness": 0.30,
    "jpeg_quality": 0.15,
    "noise": 0.10,
    "exposure": 0.15,
    "colour": 0.05,
}
# Tiles a side over which the Laplacian's energy is a median (laplacian_energy).
DETAIL_TILES: Final = 8
DETAIL_QUANTILE: Final = 0.75
# Detail is measured as if the grey levels' deviation were this (_contrast_gain).
DETAIL_CONTRAST: Final = 50.0
# J of a palette image (GIF, quantised PNG), and of a lossless file whose pixels show a
# JPEG's blocks (at least MIN_BLOCKS of them: blockiness): as an ordinary JPEG at 60.
PALETTE_J: Final = 0.60
RESAVED_J: Final = 0.60
MIN_BLOCKS: Final = 0.05

# The IJG (libjpeg) standard luminance quantisation table, natural order (Annex K).
_IJG_LUMA: Final = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
).ravel()


def _ijg_tables() -> npt.NDArray[np.float64]:
    q = np.arange(1, 101, dtype=np.float64)[:, None]
    scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    return np.clip(np.floor((_IJG_LUMA[None, :] * scale + 50.0) / 100.0), 1, 255)


_LOG_TABLES: Final = np.log(_ijg_tables())  # 100 x 64, row q-1
_IMMERKAER: Final = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class Quality:
    score: float
    resolution: float
    sharpness: float
    noise: float
    jpeg_quality: float
    exposure: float
    colour: float
    # Raw measurements, for logs and tuning.
    megapixels: float
    laplacian_energy: float  # laplacian_energy(): its tiles' median
    noise_sigma: float
    jpeg_q: int | None  # the estimated IJG quality, JPEG only


def estimate_jpeg_quality(luma_table: tuple[int, ...] | list[int]) -> int:
    """The IJG quality 1..100 whose luminance table best matches ``luma_table``.

    ``luma_table`` holds 64 values in natural (row-major) order, as Pillow's
    ``img.quantization[0]``. Tables that are not IJG (cameras, Photoshop) get the nearest
    IJG quality by overall step size, which is what matters for the score.
    """
    table = np.asarray(luma_table, dtype=np.float64)
    if table.shape != (64,) or np.any(table <= 0):
        raise ValueError("expected 64 positive quantisation steps")
    errors = np.abs(_LOG_TABLES - np.log(table)[None, :]).sum(axis=1)
    return int(np.argmin(errors)) + 1


def canonical_grey(
    grey: npt.NDArray[np.float32], side: int = CANONICAL_SIDE
) -> npt.NDArray[np.float32]:
    """``grey`` resized so that its longer side is exactly ``side`` pixels."""
    h, w = grey.shape
    longer = max(h, w)
    if longer == side:
        return grey
    size = (max(1, round(w * side / longer)), max(1, round(h * side / longer)))
    interpolation = cv2.INTER_AREA if longer > side else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(grey, size, interpolation=interpolation), dtype=np.float32)


def _compression(decoded: Decoded, palette: bool, blocks: float | None) -> tuple[float, int | None]:
    if decoded.format in ("JPEG", "MPO") and decoded.quantization:
        luma = decoded.quantization.get(0) or next(iter(decoded.quantization.values()))
        if len(luma) == 64:
            q = estimate_jpeg_quality(luma)
            return q / 100.0, q
    if palette:  # a GIF or a quantised PNG: at most 256 colours, however it is stored
        return PALETTE_J, None
    if decoded.lossless:
        # Stored losslessly, but its pixels went through a JPEG of unknown quality.
        return (RESAVED_J if blocks is not None and blocks >= MIN_BLOCKS else 1.0), None
    if decoded.format == "WEBP":
        return 0.80, None
    return 0.85, None


# Palette modes of Pillow; a lossless image with at most this many colours is one too.
PALETTE_MODES: Final = frozenset({"P", "PA", "1"})
PALETTE_COLOURS: Final = 256
# ... and a grey one with at most this many levels (a grey photo has far more).
PALETTE_GREY_LEVELS: Final = 128
# Pixels sampled to count colours (a regular grid: enough to tell 256 from thousands).
PALETTE_SAMPLE: Final = 1 << 14


def is_palette(decoded: Decoded) -> bool:
    """At most 256 colours (a grey picture: 128 levels): a GIF, a quantised PNG (dithered
    or not). Counted on a grid of the decoded pixels when the file is lossless (a reduced
    decode blends colours, so a large quantised RGB file can pass for a photo; its mode
    still tells when it is P)."""
    if decoded.mode in PALETTE_MODES:
        return True
    if not decoded.lossless:
        return False
    pixels = decoded.rgb.reshape(-1, 3)
    step = max(1, len(pixels) // PALETTE_SAMPLE)
    sample = pixels[::step].astype(np.uint32)
    packed = (sample[:, 0] << 16) | (sample[:, 1] << 8) | sample[:, 2]
    grey = bool((sample[:, 0] == sample[:, 1]).all() and (sample[:, 1] == sample[:, 2]).all())
    # A grey picture has at most 256 levels by nature: only far fewer make it a palette.
    limit = PALETTE_GREY_LEVELS if grey else PALETTE_COLOURS
    return len(np.unique(packed)) <= limit


# A frame: a band along every side at least FRAME_SHARE of the side, every pixel within
# FRAME_LEVELS of the band's median colour, the four medians within FRAME_LEVELS too.
FRAME_SHARE: Final = 0.015
FRAME_LEVELS: Final = 16


def _flat_band(band: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16] | None:
    """The median colour of ``band`` (pixels x 3) if every pixel is within FRAME_LEVELS of it."""
    # Each channel's extremes in one pass of OpenCV's minMaxLoc: a seventh of the time of
    # its two column reductions (themselves several times faster than numpy's).
    extremes = [cv2.minMaxLoc(channel)[:2] for channel in cv2.split(band.reshape(1, -1, 3))]
    bottom, top = (np.array(values, np.int16) for values in zip(*extremes, strict=True))
    # Wider than twice the tolerance: no colour is within it of every pixel (the usual
    # case, a picture's edge, decided without the median).
    if int((top - bottom).max()) > 2 * FRAME_LEVELS:
        return None
    # np.median's value, truncated as astype(int16) truncates it: of an even count, the
    # floor of the mean of the two middle values.
    n = len(band)
    middle = np.partition(band.T, sorted({(n - 1) // 2, n // 2}), axis=1)
    median = (middle[:, (n - 1) // 2].astype(np.int16) + middle[:, n // 2]) // 2
    # Every pixel within the tolerance of the median: its extremes are.
    return (
        median if int(max((top - median).max(), (median - bottom).max())) <= FRAME_LEVELS else None
    )


def is_framed(decoded: Decoded) -> bool:
    """A flat band of one colour along all four sides (a frame, a mat, letterbox bars all
    round): added to a picture, which has no such edges of its own."""
    rgb = decoded.rgb
    h, w = rgb.shape[:2]
    need = max(2, round(FRAME_SHARE * min(h, w)))
    if min(h, w) < 8 * need:
        return False
    # Top, bottom, left, right; a band's pixels in any order (only extremes and medians).
    sides = (rgb[:need], rgb[h - need :], rgb[:, :need], rgb[:, w - need :])
    colours = []
    for side in sides:  # most pictures fail on the first side: look no further
        colour = _flat_band(side.reshape(-1, 3))
        if colour is None:
            return False
        colours.append(colour)
    stacked = np.stack(colours)
    return int((stacked.max(axis=0) - stacked.min(axis=0)).max()) <= FRAME_LEVELS


# JPEG's block side, and the decode reductions that keep its blocks at least 2 px wide
# (JPEG's DCT scaling and the box reductions reduce by powers of two).
JPEG_BLOCK: Final = 8
BLOCK_REDUCTIONS: Final = (1, 2, 4)
BLOCK_STRIDE: Final = 3  # every 3rd row (column) is enough for a profile
# Steps between neighbours count up to this many grey levels: a block edge is a small
# step, while a caption's or a logo's strokes (steps of a hundred levels at every
# phase) would otherwise dilute the profile, and a re-save would read as a first JPEG.
# An added noise's steps (of up to ~20 levels' deviation) mostly stay whole.
BLOCK_CLIP: Final = 32.0


@dataclass(frozen=True, slots=True)
class Blocks:
    """JPEG's 8x8 grid in the pixels (``blockiness``)."""

    ratio: float  # the block edges' steps over the mean step, less 1
    energy: float  # their squared steps' excess over the other phases' (grey levels^2)


def blockiness(decoded: Decoded, luma: npt.NDArray[np.float32] | None = None) -> Blocks | None:
    """How much more the grey levels jump across JPEG block edges than elsewhere. Ratio:
    the strongest of the 8 phases of the column (row) profile of |differences| over the
    mean, less 1; energy: the strongest phase of squared differences less the median of
    the others (additive noise raises every phase alike); each the smaller of the two
    directions (blocks show in both), 0 for pixels never JPEG-compressed. Every phase is
    tried: an EXIF turn or a crop moves the grid. None when the decode was reduced so far
    that blocks are under 2 px. ``luma``: the decoded pixels' (``luminance``), if at hand."""
    reduction = round(decoded.scale)
    if reduction not in BLOCK_REDUCTIONS or abs(decoded.scale - reduction) > 0.02:
        return None
    period = JPEG_BLOCK // reduction
    rgb = decoded.rgb
    if min(rgb.shape[:2]) < 4 * period:
        return None

    def phase_excess(profile: npt.NDArray[Any]) -> float:
        # np.mean of each phase without its overhead (a third of the time): the same
        # pairwise sum, over the count in float32 (np.mean's float64 quotient, rounded to
        # float32, is the same float).
        counts = [len(range(p, len(profile), period)) for p in range(period)]
        sums = np.array([np.add.reduce(profile[p::period]) for p in range(period)])
        phases = sums / np.array(counts, np.float32)
        mean = float(phases.mean())
        return float(phases.max()) / mean - 1.0 if mean > 0 else 0.0

    def energy(profile: npt.NDArray[Any]) -> float:
        phases = np.sort([profile[p::period].mean() for p in range(period)])
        return float(phases[-1] - np.median(phases[:-1]))

    def excess(jumps: npt.NDArray[Any], axis: int) -> tuple[float, float]:
        """(ratio, energy) of one direction's steps (clipped and squared in place)."""
        plain = phase_excess(jumps.mean(axis=1 - axis))
        # numpy's minimum with the clip, in a sixth of its time (OpenCV's truncation)
        cv2.threshold(jumps, BLOCK_CLIP, 0.0, cv2.THRESH_TRUNC, dst=jumps)
        ratio = max(plain, phase_excess(jumps.mean(axis=1 - axis)))
        return ratio, energy(np.square(jumps, out=jumps).mean(axis=1 - axis))

    # One conversion of the whole image costs less than two of strided subsets. OpenCV's
    # |a - b| is numpy's abs of the difference in one pass, the same floats in the same
    # layout; it reads rows at a stride but not columns, hence the copy of every 3rd one.
    luma = luminance(rgb) if luma is None else luma
    rows = luma[::BLOCK_STRIDE]
    cols = np.ascontiguousarray(luma[:, ::BLOCK_STRIDE])
    ratio_x, energy_x = excess(cv2.absdiff(rows[:, 1:], rows[:, :-1]), 1)
    ratio_y, energy_y = excess(cv2.absdiff(cols[1:], cols[:-1]), 0)
    return Blocks(ratio=min(ratio_x, ratio_y), energy=max(0.0, min(energy_x, energy_y)))


# Every PIXELS_STRIDE-th row is checksummed: pixels equal there were copied, not
# re-encoded (a lossy encoder changes nearly every row), for an eighth of the work.
PIXELS_STRIDE: Final = 8
# ... as a whole and in PIXEL_BANDS bands of those rows: a copy edited in part (a logo, a
# caption) and saved losslessly keeps the other bands' pixels. A band whose samples
# span at most FRAME_LEVELS is flat, and a JPEG can give a flat area back exactly: its
# checksum is written as 0, no evidence.
PIXEL_BANDS: Final = 16


def _spread(band: npt.NDArray[Any]) -> float:
    """The highest sample less the lowest (OpenCV's, several times numpy's speed)."""
    low, high, _, _ = cv2.minMaxLoc(band.reshape(band.shape[0], -1))
    return float(high - low)


def pixels_checksum(decoded: Decoded) -> bytes:
    """Checksums of the decoded pixels and their size, of all of them then of each band
    (``PIXEL_BANDS``, 4 bytes each, little-endian): equal in two files that hold the very
    same pixels (decoded the same way), or the same pixels in those bands."""
    rgb = decoded.rgb
    seed = zlib.crc32(struct.pack("<3I", *rgb.shape))
    whole, bands = seed, []
    # One copy of the sampled rows, cut as np.array_split cuts them (the first bands a row
    # longer) without its overhead: each band is a contiguous view that zlib reads.
    sampled = np.ascontiguousarray(rgb[::PIXELS_STRIDE])
    size, longer = divmod(len(sampled), PIXEL_BANDS)
    for i in range(PIXEL_BANDS):
        start = i * size + min(i, longer)
        band = sampled[start : start + size + (i < longer)]
        whole = zlib.crc32(band.data, whole)  # the bands in a row: the whole's checksum
        textured = band.size > 0 and _spread(band) > FRAME_LEVELS
        bands.append(zlib.crc32(band.data, seed) if textured else 0)
    return struct.pack(f"<{1 + len(bands)}I", whole, *bands)


def noise_sigma(grey: npt.NDArray[np.float32]) -> float:
    """Immerkaer's noise estimate, made robust to edges by the median absolute response
    (of every 4th row and column: as robust, a sixteenth of the sorting); grey levels."""
    if min(grey.shape) < 3:
        return 0.0
    response = np.abs(cv2.filter2D(grey, cv2.CV_32F, _IMMERKAER)[1:-1:4, 1:-1:4])
    return float(np.median(response)) / (6.0 * 0.6745)


# The native noise is measured on a central crop at most this many pixels a side: noise
# is the same all over a picture, and a huge lossless file is not filtered whole.
NATIVE_CROP: Final = 512


def native_noise(luma: npt.NDArray[np.float32]) -> float:
    """``noise_sigma`` at the decoded pixels' own scale (``luma``: theirs, ``luminance``;
    a central crop of it)."""
    h, w = luma.shape
    top, left = max(0, (h - NATIVE_CROP) // 2), max(0, (w - NATIVE_CROP) // 2)
    return noise_sigma(luma[top : top + NATIVE_CROP, left : left + NATIVE_CROP])


def laplacian_energy(g: npt.NDArray[np.float32]) -> float:
    """The DETAIL_QUANTILE over DETAIL_TILES x DETAIL_TILES tiles of the mean squared
    4-neighbour Laplacian (of every other row): an overlay in a few tiles (a caption, a
    logo) leaves it where it was, while a global variance counts its strokes in full."""
    if min(g.shape) < 3:
        return 0.0
    laplacian = cv2.Laplacian(g, cv2.CV_32F, ksize=1)[1:-1:2, 1:-1]
    tiles = min(DETAIL_TILES, *laplacian.shape)
    # Cut to whole tiles: OpenCV's area average then takes its fast, integer-ratio path.
    h, w = (side - side % tiles for side in laplacian.shape)
    squared = cv2.multiply(laplacian[:h, :w], laplacian[:h, :w])
    energy = cv2.resize(squared, (tiles, tiles), interpolation=cv2.INTER_AREA).ravel()
    # np.quantile's linear interpolation, from a partition: a fifth of its time.
    at = DETAIL_QUANTILE * (energy.size - 1)
    low = int(at)
    high = min(low + 1, energy.size - 1)
    ranked = np.partition(energy, (low, high))
    return float(ranked[low] + (at - low) * (ranked[high] - ranked[low]))


def _contrast_gain(g: npt.NDArray[np.float32]) -> float:
    """(DETAIL_CONTRAST / the grey levels' deviation)^2: a gain in contrast (a brightening,
    a curve) scales the Laplacian with it and is no detail. 0 for a flat picture."""
    _, deviation = cv2.meanStdDev(g[::2])
    std = float(deviation[0, 0])
    return (DETAIL_CONTRAST / std) ** 2 if std >= 1.0 else 0.0


def quality(
    decoded: Decoded,
    grey: npt.NDArray[np.float32],
    *,
    palette: bool = False,
    blocks: float | None = None,
    colour: bool = True,
) -> Quality:
    """Score ``decoded``; ``grey`` is its luma (any size, e.g. ``hashes.luminance``).
    ``palette`` (``is_palette``), ``blocks`` (``blockiness``) and ``colour`` (colour
    content, not a grey picture) are the hasher's own marks of the image."""
    g = canonical_grey(grey)
    megapixels = decoded.width * decoded.height / 1e6
    resolution = megapixels / (megapixels + 2.0)

    sigma = noise_sigma(g)
    # Detail is corrected for the noise the pixels hold at their own scale too: an upscale
    # to the canonical side smooths noise out of the estimate (which assumes white noise),
    # not out of the Laplacian's energy.
    own = noise_sigma(grey) if max(grey.shape) < CANONICAL_SIDE else sigma
    # A palette's pixel-level pattern is its dither, not detail: smoothed out first.
    smoothed = np.asarray(cv2.GaussianBlur(g, (0, 0), 1.0), dtype=np.float32) if palette else g
    energy = laplacian_energy(smoothed)
    detail = max(0.0, energy - 20.0 * max(sigma, own) ** 2) * _contrast_gain(g)
    sharpness = detail / (detail + 150.0)
    noise = 1.0 / (1.0 + (sigma / 5.0) ** 2)

    jpeg_quality, jpeg_q = _compression(decoded, palette, blocks)

    rows = g[::2]  # every other row is plenty for a fraction
    clipped = float(np.count_nonzero((rows <= 2.0) | (rows >= 253.0))) / rows.size
    exposure = 1.0 - min(1.0, 2.0 * clipped)

    parts = {
        "resolution": resolution,
        "sharpness": sharpness,
        "jpeg_quality": jpeg_quality,
        "noise": noise,
        "exposure": exposure,
        "colour": 1.0 if colour else 0.0,
    }
    score = sum(WEIGHTS[k] * v for k, v in parts.items())
    return Quality(
        score=float(min(1.0, max(0.0, score))),
        resolution=resolution,
        sharpness=sharpness,
        noise=noise,
        jpeg_quality=jpeg_quality,
        exposure=exposure,
        colour=parts["colour"],
        megapixels=megapixels,
        laplacian_energy=energy,
        noise_sigma=sigma,
        jpeg_q=jpeg_q,
    )
