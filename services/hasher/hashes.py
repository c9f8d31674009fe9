"""Perceptual hashes as bit strings (``bytes``) for Milvus BINARY_VECTOR fields.

Two hashes that fail differently:

- **Wavelet hash** (256 bits): the greyscale image area-resized to 64x64, a 2-level Haar
  decomposition (pywavelets' arithmetic, done here on the approximation band alone), its
  16x16 approximation band thresholded at the median
  (16x16 rather than the common 8x8: on the dev sets it finds the same extra pairs that
  PDQ misses, e.g. a caption overlay, with fewer false pairs). The Haar approximation
  band is a block mean, so this hash describes the coarse layout of light and dark; it
  shrugs off noise, blur, re-encoding and small overlays. (imagehash's ``whash`` also
  removes the lowest-frequency coefficient before the final decomposition; that
  subtracts a constant from every coefficient, which a median threshold ignores.)
- **PDQ** (256 bits), written from the published algorithm (Meta, "The TMK+PDQF
  video-hashing algorithm and the PDQ image similarity algorithm"): luminance, a
  Jarosz filter (two box passes = a tent) with window ceil(n/128) per axis, decimated
  to 64x64; a 2-D DCT keeping the 16x16 lowest frequencies after the DC term; bit =
  coefficient > median. The bit order (and so ``bytes.hex()``) is the reference's:
  coefficient (row, col) is bit ``16*row + col`` of the hash read as one big-endian
  256-bit number, counted from its least significant bit.
  PDQ's quality metric (0..100, gradient energy of the 64x64 image) says when a hash
  is too flat to trust (PDQ suggests ignoring hashes of quality < 50).

The 8 rotations/flips of a PDQ hash come from the DCT, not from re-hashing the turned
image: mirroring an axis multiplies the coefficient of frequency k along it by (-1)^k,
and transposing the image transposes the coefficient grid. Because the reference's
sampling grid is a few pixels off-centre, the mirrored variants are taken from a second
sampling with the mirrored filter taps, which makes each variant equal the hash of the
really turned image (measured: 0 bits off the reference's hashes of the turned files)
rather than 16-18 bits off it.

Both hashes are meant to be computed on ``content_box``: black or white bars trimmed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from dedup.imaging import Grey
from dedup.resample import area_resize

# float32 at run time; numpy's stubs widen some products to float64, hence the loose type.
Floats = npt.NDArray[np.floating[Any]]

WAVELET_HASH_SIZE: Final = 16  # 16x16 = 256 bits
WAVELET_LEVELS: Final = 2  # 64x64 -> 16x16
PDQ_BITS: Final = 256
PDQ_GOOD_QUALITY: Final = 50


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two equally long hashes."""
    if len(a) != len(b):
        raise ValueError(f"hash lengths differ: {len(a)} and {len(b)} bytes")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


# ---- wavelet hash ------------------------------------------------------------------------


def wavelet_hash(
    grey: Grey, *, hash_size: int = WAVELET_HASH_SIZE, levels: int = WAVELET_LEVELS
) -> bytes:
    """Haar wavelet hash of a greyscale image: ``hash_size**2`` bits, row-major, MSB first."""
    side = hash_size << levels
    small = area_resize(np.asarray(grey, dtype=np.float32), side, side)
    return _threshold_bits(_haar_approximation(small, levels).ravel())


# pywavelets' Haar low-pass tap as float32, as it filters float32 data.
_HAAR: Final = np.float32(np.sqrt(0.5))


def _haar_approximation(x: npt.NDArray[np.float32], levels: int) -> npt.NDArray[np.float32]:
    """``pywt.wavedec2(x, "haar", level=levels)[0]`` for even sides, bit for bit: the same
    float32 operations in the same order (columns then rows; tap times odd sample plus tap
    times even sample), without the detail bands nobody reads. A median threshold on
    ties (flat cells) sees any other rounding."""
    for _ in range(levels):
        x = _HAAR * x[1::2] + _HAAR * x[0::2]
        x = _HAAR * x[:, 1::2] + _HAAR * x[:, 0::2]
    return x


def _median(values: Floats) -> Floats:
    """np.median along the last axis (kept), the same floats at a third of its time: the
    two middle values by a partition, their float32 sum halved (exact), as np.median's
    mean of them makes it. For the hashes' finite values (np.median also looks for NaN)."""
    n = values.shape[-1]
    low, high = (n - 1) // 2, n // 2
    ranked = np.partition(values, (low, high), axis=-1)
    middle: Floats = (ranked[..., low : low + 1] + ranked[..., high : high + 1]) * np.float32(0.5)
    return middle


def _threshold_bits(values: npt.NDArray[np.float32]) -> bytes:
    median = _median(values)
    bits = values > median
    # A flat background (a logo, a scan) can fill over half the cells with one value,
    # the median itself: "> median" then sets no bit for it and the hash goes blank.
    # Counting ties as set instead is the split nearer to half, so take whichever is.
    with_ties = values >= median
    half = values.size / 2
    if abs(int(with_ties.sum()) - half) < abs(int(bits.sum()) - half):
        bits = with_ties
    return np.packbits(bits).tobytes()


# ---- PDQ ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PdqHash:
    """A PDQ hash, its quality (0..100) and its 8 dihedral variants (see ``DIHEDRAL``)."""

    hash: bytes
    quality: int
    dihedral: tuple[bytes, ...]

    def hex(self) -> str:
        return self.hash.hex()


@dataclass(frozen=True, slots=True)
class _Taps:
    """Two stacked 64 x n sampling matrices, stored sparsely (K taps per row).

    Rows 0..63 sample the image; rows 64..127 are the same matrix reversed in both axes,
    i.e. they sample the mirrored image's points (see ``pdq_hash``). Output row r is
    sum_k weights[r, k] * x[index[r, k]].
    """

    index: npt.NDArray[np.intp]  # 128 x K
    weights: Floats  # 128 x K

    def rows(self, x: Floats) -> Floats:
        """``matrix @ x`` for a 2-D x (n rows): 128 rows out."""
        out: Floats = np.einsum("rk,rkc->rc", self.weights, x[self.index])
        return out

    def cols(self, x: Floats) -> Floats:
        """``x @ matrix.T`` for a 2-D x (n columns): 128 columns out."""
        # Gathering whole rows of the transpose is faster than gathering columns.
        out: Floats = self.rows(np.ascontiguousarray(x.T)).T
        return out


@functools.lru_cache(maxsize=1024)
def _tent_taps(n: int) -> _Taps:
    """PDQ's Jarosz filter along an axis of n samples, decimated to 64 points.

    Two passes of a box of width w = ceil(n/128) over the window [i - (w-1)//2, i + w//2]
    (clipped at the ends and renormalised), then the samples at int((r + 0.5) * n / 64).
    The composition is a tent with 2w - 1 taps; it is built here as a dense 64 x n
    matrix (a difference array over the first-pass windows) and kept as its taps, so a
    512-px image costs 64 x 7 multiply-adds per column rather than a dense product.
    """
    width = (n + 127) // 128
    lo, hi = (width - 1) // 2, width // 2
    centres = ((np.arange(64) + 0.5) * n / 64).astype(np.intp)
    ks = centres[:, None] + np.arange(-lo, hi + 1)[None, :]  # first-pass samples used
    valid = (ks >= 0) & (ks < n)
    count_r = valid.sum(axis=1, keepdims=True)
    starts = np.clip(ks - lo, 0, n)
    ends = np.clip(ks + hi + 1, 0, n)
    weights = np.where(valid, 1.0 / (count_r * np.maximum(ends - starts, 1)), 0.0)
    diff = np.zeros((64, n + 1), dtype=np.float64)
    rows = np.broadcast_to(np.arange(64)[:, None], ks.shape)
    np.add.at(diff, (rows, starts), weights)
    np.add.at(diff, (rows, ends), -weights)
    dense = np.cumsum(diff[:, :n], axis=1)
    taps = centres[:, None] + np.arange(-2 * lo, 2 * hi + 1)[None, :]
    inside = (taps >= 0) & (taps < n)
    index = np.clip(taps, 0, n - 1)
    tap_weights = np.where(inside, np.take_along_axis(dense, index, axis=1), 0.0)
    mirrored_index = n - 1 - index[::-1, ::-1]
    return _Taps(
        np.concatenate((index, mirrored_index)),
        np.concatenate((tap_weights, tap_weights[::-1, ::-1])).astype(np.float32),
    )


def _dct_matrix() -> Floats:
    k = np.arange(1, 17, dtype=np.float64)[:, None]  # frequencies 1..16: the DC is skipped
    j = np.arange(64, dtype=np.float64)[None, :]
    return np.asarray(np.sqrt(2.0 / 64.0) * np.cos(np.pi / 128.0 * k * (2.0 * j + 1.0)), np.float32)


_DCT: Final = _dct_matrix()
# Mirroring an axis multiplies frequency k (1..16) along it by (-1)^k.
_SIGN: Final = np.where(np.arange(1, 17) % 2 == 0, 1.0, -1.0).astype(np.float32)


def _as_grey(grey: Grey) -> Floats:
    g = np.asarray(grey, dtype=np.float32)
    if g.ndim != 2 or g.size == 0:
        raise ValueError(f"expected a non-empty 2-D greyscale image, got shape {g.shape}")
    return g


def pdq_downsample(grey: Grey) -> Floats:
    """The 64x64 Jarosz-filtered image that PDQ's DCT and quality metric start from."""
    g = _as_grey(grey)
    h, w = g.shape
    return _tent_taps(w).cols(_tent_taps(h).rows(g))[:64, :64]


def pdq_quality(buffer64: Floats) -> int:
    """PDQ's quality metric: summed neighbour differences of the 64x64 image, 0..100."""
    scaled = buffer64 * (100.0 / 255.0)
    dv = np.abs(np.diff(scaled, axis=0)).astype(np.int64).sum()
    dh = np.abs(np.diff(scaled, axis=1)).astype(np.int64).sum()
    return int(min(100, (dv + dh) // 90))


def _pack_pdq(coefficients: Floats) -> tuple[bytes, ...]:
    """Hashes of a stack of n x 16 x 16 coefficient grids: bit = coefficient > median."""
    flat = coefficients.reshape(len(coefficients), -1)
    bits = flat > _median(flat)
    # Reference order: coefficient 16*row+col is bit (255 - that) of the big-endian hex.
    packed = np.packbits(bits[:, ::-1], axis=1)
    return tuple(row.tobytes() for row in packed)


def pdq_hash(grey: Grey) -> PdqHash:
    """PDQ hash of a greyscale (luma) image of any size, with its 8 dihedral variants."""
    g = _as_grey(grey)
    h, w = g.shape
    # The reference's sampling is not mirror-symmetric (windows and sample points sit
    # up to a few pixels off centre), so a flipped image is not sampled at the mirrored
    # points. The taps also hold the mirrored sampling, so one pass yields the four
    # buffers {normal, mirrored rows} x {normal, mirrored columns}: those of the image
    # flipped each way, exactly. Transposes are exact for free.
    both = _tent_taps(w).cols(_tent_taps(h).rows(g))  # 128 x 128
    blocks = both.reshape(2, 64, 2, 64)  # [row sampling, i, column sampling, j]
    # The DCT as 2-D einsums over the last axis (numpy's fast path), j then i.
    along_j = np.einsum("nj,vj->nv", blocks.reshape(-1, 64), _DCT).reshape(2, 64, 2, 16)
    along_i = np.ascontiguousarray(along_j.transpose(0, 2, 3, 1)).reshape(-1, 64)
    coefficients = (
        np.einsum("ni,ui->nu", along_i, _DCT).reshape(2, 2, 16, 16).transpose(0, 1, 3, 2)
    )  # [row sampling, column sampling, u, v]
    c_nn, c_nm = coefficients[0, 0], coefficients[0, 1]
    c_mn, c_mm = coefficients[1, 0], coefficients[1, 1]
    buffer64 = blocks[0, :, 0, :]
    rs = _SIGN[:, None]  # mirroring top-bottom flips the sign of odd vertical frequencies
    cs = _SIGN[None, :]  # mirroring left-right: odd horizontal frequencies
    variants = np.stack(
        (
            c_nn,  # identity
            rs * c_nm.T,  # rot90 (counter-clockwise) = flip_ud of the transpose
            rs * cs * c_mm,  # rot180
            cs * c_mn.T,  # rot270 = flip_lr of the transpose
            cs * c_nm,  # flip_lr
            rs * c_mn,  # flip_ud
            c_nn.T,  # transpose
            rs * cs * c_mm.T,  # transverse
        )
    )
    hashes = _pack_pdq(variants)
    return PdqHash(hash=hashes[0], quality=pdq_quality(buffer64), dihedral=hashes)


def best_dihedral(query: PdqHash, stored: bytes) -> tuple[int, int]:
    """(index into ``DIHEDRAL``, distance) of the variant of ``query`` closest to ``stored``."""
    distances = [hamming(v, stored) for v in query.dihedral]
    best = min(range(len(distances)), key=distances.__getitem__)
    return best, distances[best]
