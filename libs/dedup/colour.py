"""A compact colour signature (280 bytes) for the verifier, and its distance.

What it holds, all measured on the image shrunk (anti-aliased) to 64x64 pixels:

- ``lab``: an 8x8 grid of mean CIELAB colours (D65, sRGB), the colour layout;
- ``grey_l``: an 8x8 grid of the lightness the image would have after a plain greyscale
  conversion (L* of its Rec.601 luma, which Pillow, OpenCV and libjpeg use). L* itself
  is not what a greyscale copy keeps: a saturated red has L* 53 but its grey is L* 32;
- scalars: mean lightness, mean and 99th-percentile chroma C*, and colourfulness
  (Hasler and Suesstrunk 2003, on 0..255 sRGB), and ``is_greyscale``.

Distance policy (``colour_distance``, 0..1, 0.01 = one CIELAB unit of mean ΔE76 per
grid cell, minimised over the 8 rotations/flips unless the caller names one):

- re-encoded or resized copies: < 0.03;
- brightness/contrast/white-balance edits of about 20 %: under 0.2 (the dev sets'
  forest brightness edits: 0.17 to 0.28 from the original);
- a greyscale copy of a colour photo: when either side ``is_greyscale`` only lightness
  is compared, the colour side through ``grey_l``, so the copy stays < 0.05: the
  verifier must still treat "one side is greyscale" as weaker evidence;
- the same design re-coloured (a dark and a light version of a wallpaper): > 0.3.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np
import numpy.typing as npt

from dedup.imaging import DIHEDRAL, apply_dihedral
from dedup.resample import area_resize

GRID: Final = 8
SAMPLE: Final = 64
# p99 of chroma below this (CIELAB units) = no visible colour anywhere; a JPEG of a
# greyscale image keeps chroma under ~1, a sepia or faded print is above 10.
GREYSCALE_CHROMA: Final = 4.0

_VERSION: Final = 1
_HEADER: Final = struct.Struct("<2sBB4f")  # magic, version, flags, 4 scalars
_GRID_BYTES: Final = GRID * GRID
SIGNATURE_BYTES: Final = _HEADER.size + 4 * _GRID_BYTES

Grid = npt.NDArray[np.float32]
_P99: Final = int(0.99 * SAMPLE * SAMPLE)


# eq=False: it holds numpy arrays, whose == is element-wise.
@dataclass(frozen=True, slots=True, eq=False)
class ColourSignature:
    lab: Grid  # GRID x GRID x 3: L* 0..100, a* and b* about -128..127
    grey_l: Grid  # GRID x GRID: L* of the image's Rec.601 luma
    mean_lightness: float  # L*, 0..100
    mean_chroma: float  # C*
    p99_chroma: float
    colourfulness: float  # Hasler-Suesstrunk M; < ~15 reads as "not colourful"
    is_greyscale: bool

    def to_bytes(self) -> bytes:
        header = _HEADER.pack(
            b"CS",
            _VERSION,
            1 if self.is_greyscale else 0,
            self.mean_lightness,
            self.mean_chroma,
            self.p99_chroma,
            self.colourfulness,
        )
        l_q = _quantise_l(self.lab[..., 0])
        ab_q = np.clip(np.rint(self.lab[..., 1:]), -128, 127).astype(np.int8)
        return b"".join(
            (
                header,
                l_q.tobytes(),
                ab_q[..., 0].tobytes(),
                ab_q[..., 1].tobytes(),
                _quantise_l(self.grey_l).tobytes(),
            )
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> ColourSignature:
        if len(data) != SIGNATURE_BYTES:
            raise ValueError(f"colour signature must be {SIGNATURE_BYTES} bytes, got {len(data)}")
        magic, version, flags, mean_l, mean_c, p99_c, colourful = _HEADER.unpack_from(data)
        if magic != b"CS" or version != _VERSION:
            raise ValueError(f"not a version-{_VERSION} colour signature")
        o = _HEADER.size
        n = _GRID_BYTES
        shape = (GRID, GRID)
        l_ = np.frombuffer(data, np.uint8, n, o).reshape(shape).astype(np.float32) / 2.55
        a_ = np.frombuffer(data, np.int8, n, o + n).reshape(shape).astype(np.float32)
        b_ = np.frombuffer(data, np.int8, n, o + 2 * n).reshape(shape).astype(np.float32)
        g_ = np.frombuffer(data, np.uint8, n, o + 3 * n).reshape(shape).astype(np.float32) / 2.55
        return cls(
            lab=np.stack([l_, a_, b_], axis=-1),
            grey_l=g_,
            mean_lightness=mean_l,
            mean_chroma=mean_c,
            p99_chroma=p99_c,
            colourfulness=colourful,
            is_greyscale=bool(flags & 1),
        )


def _quantise_l(values: Grid) -> npt.NDArray[np.uint8]:
    return np.asarray(np.clip(np.rint(values * 2.55), 0, 255), dtype=np.uint8)


def _srgb_to_l(v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """CIE L* of an sRGB grey level in 0..1."""
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    f = np.where(linear > (6 / 29) ** 3, np.cbrt(linear), linear / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.asarray(116.0 * f - 16.0, dtype=np.float32)


def _cell_mean(a: npt.NDArray[Any]) -> Grid:
    # OpenCV's area filter at a whole ratio is the mean of each cell, several times faster
    # than numpy's mean over two axes of a reshape.
    return np.asarray(cv2.resize(a, (GRID, GRID), interpolation=cv2.INTER_AREA), np.float32)


def _sampled(rgb: npt.NDArray[np.uint8]) -> tuple[Grid, Grid]:
    """(0..1 sRGB, CIELAB) of ``rgb`` shrunk to SAMPLE x SAMPLE."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise ValueError(f"expected a non-empty H x W x 3 image, got shape {rgb.shape}")
    small = area_resize(rgb, SAMPLE, SAMPLE)
    small_f = small.astype(np.float32) * np.float32(1.0 / 255.0)
    return small_f, np.asarray(cv2.cvtColor(small_f, cv2.COLOR_RGB2Lab), dtype=np.float32)


def _chroma(lab: Grid) -> Grid:
    return np.asarray(np.hypot(lab[..., 1], lab[..., 2]), dtype=np.float32)


def colour_signature(rgb: npt.NDArray[np.uint8]) -> ColourSignature:
    """The colour signature of an RGB uint8 image (any size; shrunk to 64x64 first)."""
    return colour_marks(rgb)[0]


# A coloured patch: the samples with visible colour (GREYSCALE_CHROMA) are under
# PATCH_SHARE of the picture and the rest is as neutral as a greyscale file's (under
# NEUTRAL_CHROMA, which a JPEG of a grey picture keeps): a photo with little colour
# still has some in its greys (2-4 units), a logo put on a grey picture has none there.
PATCH_SHARE: Final = 0.1
NEUTRAL_CHROMA: Final = 1.0
_PATCH: Final = int((1.0 - PATCH_SHARE) * SAMPLE * SAMPLE)


def coloured_patch(rgb: npt.NDArray[np.uint8]) -> bool:
    """Colour in a small part only, the rest grey (``PATCH_SHARE``): a grey picture with
    colour added to it (a logo, a mark), not a colour original."""
    return colour_marks(rgb)[1]


def colour_marks(rgb: npt.NDArray[np.uint8]) -> tuple[ColourSignature, bool]:
    """``colour_signature`` and ``coloured_patch`` of ``rgb`` from one shrink and one
    CIELAB conversion (the hasher wants both)."""
    small_f, lab = _sampled(rgb)
    luma = np.asarray(cv2.cvtColor(small_f, cv2.COLOR_RGB2GRAY), dtype=np.float32)
    chroma = _chroma(lab)
    ranked = np.partition(chroma.ravel(), (_PATCH, _P99))
    p99 = float(ranked[_P99])

    r, g, b = small_f[..., 0], small_f[..., 1], small_f[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    # On 0..1 values, then scaled: every term is linear in the scale.
    colourfulness = 255.0 * float(
        np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    )
    grid = _cell_mean(lab)
    signature = ColourSignature(
        lab=grid,
        grey_l=_cell_mean(_srgb_to_l(luma)),
        mean_lightness=float(grid[..., 0].mean()),  # equal cells: the mean of the means
        mean_chroma=float(chroma.mean()),
        p99_chroma=p99,
        colourfulness=colourfulness,
        is_greyscale=p99 < GREYSCALE_CHROMA,
    )
    # Not greyscale (as ``is_greyscale``), yet grey but for a tenth.
    patch = float(ranked[_PATCH]) < NEUTRAL_CHROMA and p99 >= GREYSCALE_CHROMA
    return signature, patch


def colour_distance(a: ColourSignature, b: ColourSignature, transform: int | None = None) -> float:
    """0..1: mean per-cell ΔE76 / 100 between ``a`` and ``b`` turned by ``transform``.

    ``transform`` indexes ``dedup.imaging.DIHEDRAL`` (as ``Scores.pdq_transform`` does); None
    takes the best of the 8. If either side is greyscale only lightness counts (see the
    module docstring).
    """
    greyscale = a.is_greyscale or b.is_greyscale
    ga: npt.NDArray[np.float32] = a.grey_l if greyscale else a.lab
    gb: npt.NDArray[np.float32] = b.grey_l if greyscale else b.lab
    indices = range(len(DIHEDRAL)) if transform is None else (transform,)
    best = float("inf")
    for t in indices:
        diff = ga - apply_dihedral(gb, t)
        per_cell = np.abs(diff) if greyscale else np.sqrt((diff * diff).sum(axis=-1))
        best = min(best, float(per_cell.mean()))
    return min(1.0, best / 100.0)
