"""Everything the hasher computes from one image's bytes, decoded once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dedup.budget import ByteBudget
from dedup.colour import SAMPLE, ColourSignature, colour_marks
from dedup.imaging import content_box, luminance
from dedup.resample import area_resize
from services.hasher.decode import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, Decoded, decode
from services.hasher.hashes import PdqHash, pdq_hash, wavelet_hash
from services.hasher.quality import (
    Blocks,
    Quality,
    blockiness,
    is_framed,
    is_palette,
    native_noise,
    pixels_checksum,
    quality,
)
from services.hasher.thumbnail import WORKING_SIDE, fit, working_copy


# eq=False: it holds numpy arrays, whose == is element-wise.
@dataclass(frozen=True, slots=True, eq=False)
class Features:
    decoded: Decoded
    wavelet_hash: bytes  # 32 bytes
    pdq: PdqHash  # 32 bytes, plus 8 dihedral variants and a quality 0..100
    colour: ColourSignature
    quality: Quality
    working_copy: bytes  # JPEG, longer side <= WORKING_SIDE
    # (top, bottom, left, right) of the hashed region in the working copy's pixels: the
    # hashes and the colour signature skip black or white bars; see hashes.content_box.
    content_box: tuple[int, int, int, int]
    palette: bool  # at most 256 colours (quality.is_palette)
    blockiness: Blocks | None  # JPEG's block edges in the pixels (quality.blockiness)
    framed: bool  # a flat band of one colour along every side (quality.is_framed)
    coloured_patch: bool  # colour in a small part only (dedup.colour.coloured_patch)
    pixels: bytes  # a checksum of the decoded pixels (quality.pixels_checksum)
    native_noise: float  # noise at the decoded pixels' scale (quality.native_noise)


def compute(decoded: Decoded, *, working_side: int = WORKING_SIDE) -> Features:
    """All features of an already decoded image.

    Everything works from one copy at most ``working_side`` pixels long: the hashes need
    only 64x64, the colour signature 64x64, the quality measures fix their own scale.
    """
    small = fit(decoded.rgb, working_side)
    grey = luminance(small)
    box = content_box(grey)
    top, bottom, left, right = box
    inner_grey = grey[top:bottom, left:right]
    # One 64x64 area average serves the colour signature and the wavelet hash (area
    # averaging commutes with the linear luma, so its luma is the grey's 64x64).
    rgb64 = area_resize(np.ascontiguousarray(small[top:bottom, left:right]), SAMPLE, SAMPLE)
    colour, patch = colour_marks(rgb64)
    # The decoded pixels' own luma: the block marks and the noise at their scale (the
    # working grey itself when the decode is no larger than the working copy).
    luma = grey if small is decoded.rgb else luminance(decoded.rgb)
    palette, blocks = is_palette(decoded), blockiness(decoded, luma)
    ratio = None if blocks is None else blocks.ratio
    # A grey picture with colour in a patch only (a logo) is grey content.
    coloured = not (colour.is_greyscale or patch)
    return Features(
        decoded=decoded,
        wavelet_hash=wavelet_hash(luminance(rgb64)),
        pdq=pdq_hash(inner_grey),
        colour=colour,
        # The whole image: bars make a copy worse.
        quality=quality(decoded, grey, palette=palette, blocks=ratio, colour=coloured),
        working_copy=working_copy(small, working_side),
        content_box=box,
        palette=palette,
        blockiness=blocks,
        framed=is_framed(decoded),
        coloured_patch=patch,
        pixels=pixels_checksum(decoded),
        native_noise=native_noise(luma),
    )


def extract(
    data: bytes,
    *,
    working_side: int = WORKING_SIDE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    budget: ByteBudget | None = None,
) -> Features:
    """Decode ``data`` (raises ``DecodeError``; the decode holds its peak of ``budget``)
    and compute all its features."""
    decoded = decode(
        data, max_side=working_side, max_pixels=max_pixels, max_bytes=max_bytes, budget=budget
    )
    return compute(decoded, working_side=working_side)
