"""Which copy of a duplicate pair derives from the other, and the copy a cluster keeps.

A pair's evidence is what each image's own file and pixels say (colour, palette, size,
noise, detail, JPEG quality and blockiness) and, for a pair the matcher proved, what
the alignment shows (a crop, a frame, an overlay). The first rule below that applies
names the derived copy and how; none applying leaves the pair's direction unknown:

1. the pixels, proved pairs only: a crop or a framed copy (the matcher); then the very
   same pixels (the images' checksums): a lossless file is a re-save of the JPEG (which
   never gives its input back), a 16-bit file of 8-bit samples a copy of the 8-bit one;
   most of the JPEG's very pixels, band by band: a lossless file saved from it with an
   edit over the rest (a logo, a caption; its blocks may be too faint to tell);
   a framed copy (the image's own mark: a flat band of one colour along all four sides);
2. a greyscale copy of a colour one; unless the colour is in a patch only, the rest as
   grey as a greyscale file: then colour (a logo, a mark) was added to the grey one;
3. a palette copy (at most 256 colours, dithered or not) of a full-colour one; then the
   pixels again: a copy with a caption or a logo (the matcher; dithering can pass for
   one, colour and palette cannot);
4. a downscale: clearly fewer pixels at the same aspect ratio;
5. a re-save: of the same size, a file claiming a high JPEG quality (or lossless) whose
   pixels show JPEG blocks as strong as the other's lower-quality JPEG (a hue or colour
   edit, a caption, a PNG re-saved from the JPEG: text passes for detail, so first);
6. of the same size: a noisier copy (noise added; not a JPEG's better-quality original,
   nor a blur's original, nor a lossless file without the JPEG's block energy, which an
   added noise keeps), then a blurred one (far less detail, and less noise: text over a
   smooth picture adds as much detail, and some noise);
7. a JPEG copy: of the same size, a JPEG showing its blocks beside a lossless file that
   shows none (nor holds their energy, which noise added over them keeps), or under
   RESAVE_BLOCKS of them at much the same noise (that file was not saved from this JPEG:
   it would keep its blocks, and neither noise nor a blur hid them);
8. a re-encode: of the same size, a JPEG of lower quality than the other JPEG.

The kept copy is the best by quality (``rank_key``) of the copies that derive from no
other copy of the cluster (usually one: the original); of all of them if every one
does. Copies as good by quality (within ``QUALITY_TIE``: a re-save at the JPEG's own
quality, a flip, the very same pixels) are told apart by when they were written: the
first written is kept, since a copy is made after its original.

Every pair of the cluster is compared, proved or not, by the images' own features and,
of a proved pair's pixels, the crop only (``choosing``): the choice depends on the
cluster's members, not on the order they arrived in nor on which of their pairs the
pipeline happened to prove. The rest of the pixels' evidence (an overlay, a frame)
names how a copy derives, in the reasons.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from dedup.formats import LOSSLESS_FORMATS
from dedup.v1.decisions_pb2 import Decision
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Derivation, Scores

# A copy is a downscale when the other has this many times its pixels, at an aspect ratio
# within ASPECT (log ratio) of its own.
DOWNSCALE: Final = 1.2
ASPECT: Final = 0.02
# Noise sigma (grey levels at 512 px): the noisier copy's exceeds NOISIER x the other's
# plus NOISE_FLOOR.
NOISIER: Final = 1.5
NOISE_FLOOR: Final = 0.5
# Detail (the Laplacian's energy over the picture's tiles less noise, at 512 px: the
# hasher's quality.laplacian_energy): the other has BLURRIER x as much (a blur removes
# 8-100 times; a caption's text or a re-encode's blocks add a few times).
BLURRIER: Final = 8.0
# A copy noisier than the other with this many times its detail is its original, and the
# other a blurred copy (a blur removes 8-100 times the detail, added noise adds little).
BLUR_NOT_NOISE: Final = BLURRIER
# JPEG quality steps (IJG scale) that make one JPEG a re-encode of the other.
REENCODE_STEPS: Final = 1
# A re-save: a file claiming at least RESAVE_QUALITY (lossless: LOSSLESS_QUALITY) whose
# blockiness is at least RESAVE_BLOCKS of a lower-quality JPEG's that has MIN_BLOCKS, and
# at least FRESH_MARGIN times what a first JPEG at its quality would show: about the
# ratio of the two qualities' quantiser scales, while a re-save keeps nearly all the
# blocks (text over it dilutes them; bench/README.md, "The kept copy", has the figures).
# Qualities too close to tell apart leave it to the re-encode rule.
RESAVE_QUALITY: Final = 85
LOSSLESS_QUALITY: Final = 101
RESAVE_BLOCKS: Final = 0.6
FRESH_MARGIN: Final = 1.5
MIN_BLOCKS: Final = 0.05
# Noise added over a JPEG keeps its block edges' energy (the hasher's block_energy: the
# noise adds to every phase alike), where it dilutes blockiness: a lossless file holding
# under KEPT_ENERGY of a same-size JPEG's, which shows at least MIN_ENERGY, was not made
# from that JPEG; the JPEG was made from it (and took its grain away).
KEPT_ENERGY: Final = 0.4
MIN_ENERGY: Final = 5.0
# Quality scores this close are equal: a re-save at the JPEG's own quality, or a flip,
# differs from its original's by rounding alone.
QUALITY_TIE: Final = 0.003

COLOURED: Final = "a copy with a logo or a mark in colour"
LOSSLESS_RESAVE: Final = "a lossless re-save of the JPEG (its very pixels)"
EDITED_RESAVE: Final = "a lossless re-save of the JPEG edited in part (most of its very pixels)"
# The share of the pixels' bands (services/hasher/quality.py pixels_checksum) that must
# hold the very same textured pixels: most of the picture.
SAME_BANDS: Final = 0.5
WIDENED: Final = "a 16-bit copy of the 8-bit file (its very pixels)"

PIXEL_WORDS: Final = {
    Derivation.DERIVATION_CROP: "a crop",
    Derivation.DERIVATION_FRAME: "a framed copy",
    Derivation.DERIVATION_OVERLAY: "a copy with a caption or a logo",
}


def _noise_sigma(d: Decision) -> float:
    """Inverts the quality part N = 1 / (1 + (sigma / 5)^2)."""
    n = d.quality_parts.noise
    return 5.0 * math.sqrt(1.0 / n - 1.0) if 0.0 < n <= 1.0 else 0.0


def _added_noise_sigma(d: Decision) -> float:
    """The noise that tells one added: at the decoded pixels' own scale (the hasher's
    native_noise), since the quality's resample to its canonical side averages much of it
    away; without it, the quality's."""
    return d.marks.native_noise if d.marks.HasField("native_noise") else _noise_sigma(d)


def _detail(d: Decision) -> float:
    """Inverts the quality part S = v / (v + 150)."""
    s = d.quality_parts.sharpness
    return 150.0 * s / (1.0 - s) if 0.0 <= s < 1.0 else math.inf


def _jpeg_quality(d: Decision) -> int | None:
    return round(d.quality_parts.jpeg_quality * 100) if d.format in ("JPEG", "MPO") else None


def _lossless(d: Decision) -> bool:
    """Stored losslessly: by its format (its J is less when its pixels show a JPEG's blocks,
    or a palette's), or a lossless WebP (J 1)."""
    if d.format in LOSSLESS_FORMATS:
        return True
    return d.format == "WEBP" and d.quality_parts.jpeg_quality >= 1.0


def _described(d: Decision) -> bool:
    return d.status == ImageStatus.IMAGE_STATUS_OK


def _stored_quality(d: Decision) -> int | None:
    """The JPEG quality a file claims; lossless files claim more than any JPEG."""
    q = _jpeg_quality(d)
    return LOSSLESS_QUALITY if q is None and _lossless(d) else q


def _resaved(x: Decision, y: Decision) -> bool:
    """``x`` (the same size as ``y``) claims a high quality, higher than ``y``'s, yet
    shows JPEG blocks as strong as ``y``'s: its pixels went through such a JPEG first."""
    q_x, q_y = _stored_quality(x), _stored_quality(y)
    if q_x is None or q_y is None or q_x < RESAVE_QUALITY or q_x <= q_y:
        return False
    if not (x.marks.HasField("blockiness") and y.marks.HasField("blockiness")):
        return False
    blocks_x, blocks_y = x.marks.blockiness, y.marks.blockiness
    scale_y = _quantiser_scale(q_y)
    fresh = _quantiser_scale(q_x) / scale_y if scale_y > 0 else 0.0
    need = max(RESAVE_BLOCKS, FRESH_MARGIN * fresh)
    return blocks_y >= MIN_BLOCKS and blocks_x >= need * blocks_y


def _quantiser_scale(quality: int) -> float:
    """The IJG scale of the standard quantisation tables at a JPEG quality (libjpeg's
    ``jpeg_quality_scaling``); 0 for a lossless file."""
    if quality >= LOSSLESS_QUALITY:
        return 0.0
    q = min(100, max(1, quality))
    return 5000.0 / q if q < 50 else 200.0 - 2.0 * q


def _lossy_copy(x: Decision, y: Decision) -> bool:
    """``x`` is a JPEG showing its blocks, ``y`` (the same size) a lossless file without
    any, or with under RESAVE_BLOCKS of them and a noise within NOISIER times ``x``'s
    either way (noise added, or a blur, would have hidden them): ``y`` was not saved from
    ``x`` (it would carry its blocks), so ``x`` is the copy. Faint blocks count too: a
    JPEG at 90 of a grainy texture shows under MIN_BLOCKS. Not when ``y`` holds ``x``'s
    block energy (noise added over them)."""
    if _jpeg_quality(x) is None or not _lossless(y) or _holds_blocks_of(y, x):
        return False
    if not (x.marks.HasField("blockiness") and y.marks.HasField("blockiness")):
        return False
    blocks_x, blocks_y = x.marks.blockiness, y.marks.blockiness
    if blocks_x >= MIN_BLOCKS > blocks_y:
        return True
    noise_x, noise_y = _noise_sigma(x), _noise_sigma(y)
    return blocks_y < RESAVE_BLOCKS * blocks_x and noise_x / NOISIER <= noise_y <= NOISIER * noise_x


def _holds_blocks_of(x: Decision, y: Decision) -> bool | None:
    """Whether lossless ``x`` holds the block energy of JPEG ``y`` (the same size): it was
    saved from ``y``, noise added or not. None: not measured, or ``y``'s too faint."""
    if not _lossless(x) or _jpeg_quality(y) is None:
        return None
    if not (x.marks.HasField("block_energy") and y.marks.HasField("block_energy")):
        return None
    if y.marks.block_energy < MIN_ENERGY:
        return None
    return x.marks.block_energy >= KEPT_ENERGY * y.marks.block_energy


def _same_pixels(a: Decision, b: Decision) -> tuple[str | None, str | None]:
    """Files of the very same pixels: a lossless one was saved from the lossy one (which
    could not have given its input back), a 16-bit one widened from the 8-bit one."""
    if not a.marks.pixels or a.marks.pixels != b.marks.pixels:
        return None, None
    if _lossless(a) and _jpeg_quality(b) is not None:
        return LOSSLESS_RESAVE, None
    if _lossless(b) and _jpeg_quality(a) is not None:
        return None, LOSSLESS_RESAVE
    if a.marks.widened != b.marks.widened:
        return (WIDENED, None) if a.marks.widened else (None, WIDENED)
    return None, None


def _bands(d: Decision) -> tuple[int, ...]:
    """The checksums of the pixels' bands (0: a flat band), after the whole's."""
    data = d.marks.pixels
    if len(data) < 8 or len(data) % 4:
        return ()
    return struct.unpack(f"<{len(data) // 4 - 1}I", data[4:])


def _partly_resaved(x: Decision, y: Decision) -> bool:
    """``x`` is lossless, ``y`` a JPEG, and most of ``x``'s bands hold ``y``'s very
    pixels (textured ones: a JPEG can give a flat area back): ``x`` was saved from ``y``
    with an edit over the rest (a logo, a caption), since ``y``'s encoder would have
    changed every band of ``x``."""
    if not _lossless(x) or _jpeg_quality(y) is None:
        return False
    bands_x, bands_y = _bands(x), _bands(y)
    if not bands_x or len(bands_x) != len(bands_y):
        return False
    same = sum(1 for p, q in zip(bands_x, bands_y, strict=True) if p and p == q)
    return same >= SAME_BANDS * len(bands_x)


def _same_aspect(a: Decision, b: Decision) -> bool:
    """The same aspect ratio, either way up (a copy turned by 90 degrees)."""
    ratio_a, ratio_b = a.width / a.height, b.width / b.height
    return min(abs(math.log(ratio_a / ratio_b)), abs(math.log(ratio_a * ratio_b))) <= ASPECT


def _noisier(x: Decision, y: Decision) -> bool:
    """Noise was added to x: more noise than y, unless y has far less detail (y is x
    blurred: a blur removes noise too), x is lossless without the blocks of y, a JPEG
    (y was made from x: a JPEG removes grain), or both are lossy and x the better one or
    either's quality unknown (a lossy WebP: harder compression removes noise)."""
    noise_x, noise_y = _added_noise_sigma(x), _added_noise_sigma(y)
    if noise_x <= NOISIER * noise_y + NOISE_FLOOR:
        return False
    if _detail(x) >= BLUR_NOT_NOISE * _detail(y) or _holds_blocks_of(x, y) is False:
        return False
    if _lossless(x) or _lossless(y):
        return True
    q_x, q_y = _jpeg_quality(x), _jpeg_quality(y)
    return q_x is not None and q_y is not None and q_x <= q_y


def _blurred(x: Decision, y: Decision) -> bool:
    """x is y blurred: far less detail, and far less noise where y has noise to lose (a
    blur removes it too; text over a copy adds detail and, to the noise measure, a little
    noise: the copy's original would read as a blurred copy of it)."""
    detail_x, detail_y = _detail(x), _detail(y)
    if detail_y <= 0 or detail_y < BLURRIER * detail_x:  # x with none left: blurred away
        return False
    return NOISIER * _noise_sigma(x) <= max(_noise_sigma(y), NOISE_FLOOR)


def derives(a: Decision, b: Decision, scores: Scores) -> tuple[str | None, str | None]:
    """(how ``a`` derives from ``b``, how ``b`` derives from ``a``), at most one of them
    set; ``scores``: the pair's proof with ``a`` as its image and ``b`` as its candidate."""
    pixels = (scores.image_derivation, scores.candidate_derivation)
    overlay = Derivation.DERIVATION_OVERLAY in pixels
    if pixels[0] != pixels[1] and not overlay:
        return PIXEL_WORDS.get(pixels[0]), PIXEL_WORDS.get(pixels[1])
    described = _described(a) and _described(b)
    copied = _same_pixels(a, b) if described else (None, None)
    if copied != (None, None):
        return copied
    if described and _partly_resaved(a, b):
        return EDITED_RESAVE, None
    if described and _partly_resaved(b, a):
        return None, EDITED_RESAVE
    if described and a.marks.framed != b.marks.framed:
        return ("a framed copy", None) if a.marks.framed else (None, "a framed copy")
    # A logo in colour on a greyscale picture makes the copy colour: the overlay tells.
    coloured_by_overlay = (
        overlay and pixels[0 if b.greyscale else 1] == Derivation.DERIVATION_OVERLAY
    )
    if described and a.greyscale != b.greyscale:
        # Colour in a patch only, the rest grey: colour added to the grey picture.
        if (b if a.greyscale else a).marks.coloured_patch:
            return (None, COLOURED) if a.greyscale else (COLOURED, None)
        if not coloured_by_overlay:
            return ("a greyscale copy", None) if a.greyscale else (None, "a greyscale copy")
    if described and a.marks.palette != b.marks.palette:
        return ("a palette copy", None) if a.marks.palette else (None, "a palette copy")
    if pixels[0] != pixels[1]:
        return PIXEL_WORDS.get(pixels[0]), PIXEL_WORDS.get(pixels[1])
    if not described:
        return None, None  # one is known only as a candidate: no features to compare
    # Fewer pixels of the same picture, at the same aspect ratio (a frame changes it).
    pixels_a, pixels_b = a.width * a.height, b.width * b.height
    if pixels_a > 0 and pixels_b > 0 and _same_aspect(a, b):
        if pixels_b >= DOWNSCALE * pixels_a:
            return "a downscale", None
        if pixels_a >= DOWNSCALE * pixels_b:
            return None, "a downscale"
    same = a.width * a.height == b.width * b.height
    if same and _resaved(a, b):  # blocks resampled away are not seen
        return "a re-save of a more compressed JPEG", None
    if same and _resaved(b, a):
        return None, "a re-save of a more compressed JPEG"
    # Noise and detail compare only at the same size: a resample changes both.
    if same and _noisier(a, b):
        return "a noisier copy", None
    if same and _noisier(b, a):
        return None, "a noisier copy"
    if same and _blurred(a, b):
        return "a blurred copy", None
    if same and _blurred(b, a):
        return None, "a blurred copy"
    if same and _lossy_copy(a, b):
        return "a JPEG copy of the lossless file", None
    if same and _lossy_copy(b, a):
        return None, "a JPEG copy of the lossless file"
    # JPEG against JPEG of the same size only: a noisy lossless copy claims more than its
    # JPEG original, and a resampled copy's blocks no longer show whether it was re-saved.
    q_a, q_b = _jpeg_quality(a), _jpeg_quality(b)
    if same and q_a is not None and q_b is not None:
        if q_a <= q_b - REENCODE_STEPS:
            return f"a re-encode (JPEG quality {q_a} < {q_b})", None
        if q_b <= q_a - REENCODE_STEPS:
            return None, f"a re-encode (JPEG quality {q_b} < {q_a})"
    return None, None


def choosing(scores: Scores) -> Scores:
    """The part of a pair's proof that the kept copy's choice may use: a crop, which shows
    on every proved pair of a crop with a copy showing more. An overlay shows on some
    pairs and not others (and a blur or a brightness edit can pass for one), so with it
    the choice would depend on which pairs were proved; frames are the images' own
    marks."""
    crop, none = Derivation.DERIVATION_CROP, Derivation.DERIVATION_UNSPECIFIED
    return Scores(
        image_derivation=crop if scores.image_derivation == crop else none,
        candidate_derivation=crop if scores.candidate_derivation == crop else none,
    )


# (child, parent) -> how the child derives from the parent.
Derived = Mapping[tuple[str, str], str]
Rank = Callable[[Decision], tuple[object, ...]]


def contenders(members: Mapping[str, Decision], derived: Derived, rank: Rank) -> list[str]:
    """Of the copies derived from no other (of all, if every one is), the best-ranked one
    and those within QUALITY_TIE of its quality, in rank order."""
    children = {child for child, _ in derived}
    free = [m for m in members if m not in children] or list(members)
    free.sort(key=lambda m: rank(members[m]))
    best = members[free[0]].quality
    if math.isnan(best):
        return free[:1]
    return [m for m in free if members[m].quality >= best - QUALITY_TIE]


def _written(d: Decision) -> tuple[int, int]:
    """Sorts the first written first, and a copy of unknown time after every known one."""
    return (0, d.written_at.ToNanoseconds()) if d.HasField("written_at") else (1, 0)


def keeper(members: Mapping[str, Decision], derived: Derived, rank: Rank) -> str:
    """The first written of the contenders, then the best-ranked."""
    return min(
        contenders(members, derived, rank), key=lambda m: (_written(members[m]), rank(members[m]))
    )


def listed(words: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def kept_reason(hows: Sequence[str], copies: int, by_time: int = 0) -> str:
    """Why the kept copy: ``hows`` says how each copy proved to derive from it does;
    ``by_time``: the number of copies as good by quality it was chosen from as the first
    written (0: quality chose)."""
    first = f"the first written of {by_time} copies as good by quality"
    if not hows:
        if by_time:
            return f"kept: {first} (none proved to derive from another)"
        return f"kept: the best of {copies} copies by quality (none proved to derive from another)"
    unknown = copies - 1 - len(hows)
    verb = "include" if unknown else ("is" if len(hows) == 1 else "are")
    subject = "the other copy" if copies == 2 else "the others"
    text = f"kept: {subject} {verb} {listed(sorted(hows))} of it"
    if by_time:
        text += f"; {first}"
    below = unknown - max(0, by_time - 1)
    if below > 0:
        text += f"; {below} more ranked below it by quality"
    return text
