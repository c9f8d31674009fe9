"""Which copy of a duplicate pair derives from the other, and the copy a cluster keeps.

A pair's evidence is its proof (the matcher's scores: what each copy shows of the other,
a crop, a frame, an overlay) and what each image's own file and pixels say (colour,
palette, size, noise, detail, JPEG quality). The first rule below that applies names
the derived copy and how; none applying leaves the pair's direction unknown:

1. the pixels: a crop or a framed copy (the matcher);
2. a greyscale copy of a colour one;
3. a palette copy (at most 256 colours, dithered or not) of a full-colour one; then the
   pixels again: a copy with a caption or a logo (the matcher; dithering can pass for
   one, colour and palette cannot);
4. a downscale: clearly fewer pixels of the content the two share;
5. a noisier copy (noise added), then a blurred one (far less detail; a re-encode's
   blocks add some). Noise passes for detail, so it is asked first; a blur that also
   removed much noise can pass for the original (a known limit);
6. a re-save: of the same size, a file claiming a high JPEG quality (or lossless) whose
   pixels show JPEG blocks as strong as the other's lower-quality JPEG (a hue or colour
   edit, a PNG re-saved from the JPEG);
7. a re-encode: a JPEG of lower quality than the other JPEG.

The kept copy is the one the fewest copies of its cluster are proved to be derived from
(usually none: the original), then the one most copies derive from, then the highest
quality (``rank_key``). Rules compare the two copies only, so the choice does not
depend on the order images arrived in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from dedup.v1.decisions_pb2 import Decision
from dedup.v1.features_pb2 import ImageStatus
from dedup.v1.groups_pb2 import Derivation, Scores

# A copy is a downscale when the other has this many times its pixels of shared content.
DOWNSCALE: Final = 1.2
# Noise sigma (grey levels at 512 px): the noisier copy's exceeds NOISIER x the other's
# plus NOISE_FLOOR.
NOISIER: Final = 1.5
NOISE_FLOOR: Final = 1.5
# Detail (Laplacian variance less noise, at 512 px): the other has BLURRIER x as much.
BLURRIER: Final = 3.0
# JPEG quality steps (IJG scale) that make one JPEG a re-encode of the other.
REENCODE_STEPS: Final = 1
# A re-save: a file claiming at least RESAVE_QUALITY (lossless: LOSSLESS_QUALITY) whose
# blockiness is at least RESAVE_BLOCKS of a lower-quality JPEG's that has MIN_BLOCKS.
# A first JPEG at quality 90 shows about half the blockiness of one at 70.
RESAVE_QUALITY: Final = 85
LOSSLESS_QUALITY: Final = 101
RESAVE_BLOCKS: Final = 0.75
MIN_BLOCKS: Final = 0.05

PIXEL_WORDS: Final = {
    Derivation.DERIVATION_CROP: "a crop",
    Derivation.DERIVATION_FRAME: "a framed copy",
    Derivation.DERIVATION_OVERLAY: "a copy with a caption or a logo",
}


def _noise_sigma(d: Decision) -> float:
    """Inverts the quality part N = 1 / (1 + (sigma / 5)^2)."""
    n = d.quality_parts.noise
    return 5.0 * math.sqrt(1.0 / n - 1.0) if 0.0 < n <= 1.0 else 0.0


def _detail(d: Decision) -> float:
    """Inverts the quality part S = v / (v + 150)."""
    s = d.quality_parts.sharpness
    return 150.0 * s / (1.0 - s) if 0.0 <= s < 1.0 else math.inf


def _jpeg_quality(d: Decision) -> int | None:
    return round(d.quality_parts.jpeg_quality * 100) if d.format in ("JPEG", "MPO") else None


def _lossless(d: Decision) -> bool:
    return d.format not in ("JPEG", "MPO", "WEBP", "") and d.quality_parts.jpeg_quality >= 1.0


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
    return blocks_y >= MIN_BLOCKS and blocks_x >= RESAVE_BLOCKS * blocks_y


def _shared_pixels(d: Decision, share: float | None) -> float:
    return d.width * d.height * (1.0 if share is None else share)


def derives(a: Decision, b: Decision, scores: Scores) -> tuple[str | None, str | None]:
    """(how ``a`` derives from ``b``, how ``b`` derives from ``a``), at most one of them
    set; ``scores``: the pair's proof with ``a`` as its image and ``b`` as its candidate."""
    pixels = (scores.image_derivation, scores.candidate_derivation)
    overlay = Derivation.DERIVATION_OVERLAY in pixels
    if pixels[0] != pixels[1] and not overlay:
        return PIXEL_WORDS.get(pixels[0]), PIXEL_WORDS.get(pixels[1])
    described = _described(a) and _described(b)
    # A logo in colour on a greyscale picture makes the copy colour: the overlay tells.
    coloured_by_overlay = (
        overlay and pixels[0 if b.greyscale else 1] == Derivation.DERIVATION_OVERLAY
    )
    if described and a.greyscale != b.greyscale and not coloured_by_overlay:
        return ("a greyscale copy", None) if a.greyscale else (None, "a greyscale copy")
    if described and a.marks.palette != b.marks.palette:
        return ("a palette copy", None) if a.marks.palette else (None, "a palette copy")
    if pixels[0] != pixels[1]:
        return PIXEL_WORDS.get(pixels[0]), PIXEL_WORDS.get(pixels[1])
    if not described:
        return None, None  # one is known only as a candidate: no features to compare
    share_a = scores.shared_image if scores.HasField("shared_image") else None
    share_b = scores.shared_candidate if scores.HasField("shared_candidate") else None
    pixels_a, pixels_b = _shared_pixels(a, share_a), _shared_pixels(b, share_b)
    if pixels_a > 0 and pixels_b > 0:
        if pixels_b >= DOWNSCALE * pixels_a:
            return "a downscale", None
        if pixels_a >= DOWNSCALE * pixels_b:
            return None, "a downscale"
    noise_a, noise_b = _noise_sigma(a), _noise_sigma(b)
    detail_a, detail_b = _detail(a), _detail(b)
    if noise_a > NOISIER * noise_b + NOISE_FLOOR:
        return "a noisier copy", None
    if noise_b > NOISIER * noise_a + NOISE_FLOOR:
        return None, "a noisier copy"
    if min(detail_a, detail_b) > 0:
        if detail_b >= BLURRIER * detail_a:
            return "a blurred copy", None
        if detail_a >= BLURRIER * detail_b:
            return None, "a blurred copy"
    same = a.width * a.height == b.width * b.height  # else blocks were resampled away
    if same and _resaved(a, b):
        return "a re-save of a more compressed JPEG", None
    if same and _resaved(b, a):
        return None, "a re-save of a more compressed JPEG"
    # JPEG against JPEG only: a noisy lossless copy claims more than its JPEG original.
    q_a, q_b = _jpeg_quality(a), _jpeg_quality(b)
    if q_a is not None and q_b is not None:
        if q_a <= q_b - REENCODE_STEPS:
            return f"a re-encode (JPEG quality {q_a} < {q_b})", None
        if q_b <= q_a - REENCODE_STEPS:
            return None, f"a re-encode (JPEG quality {q_b} < {q_a})"
    return None, None


# (child, parent) -> how the child derives from the parent.
Derived = Mapping[tuple[str, str], str]


def keeper(
    members: Mapping[str, Decision],
    derived: Derived,
    rank: Callable[[Decision], tuple[object, ...]],
) -> str:
    """The copy to keep: derived from the fewest, the source of the most, then ``rank``."""
    parents: dict[str, int] = dict.fromkeys(members, 0)
    children: dict[str, set[str]] = {m: set() for m in members}
    for child, parent in derived:
        parents[child] += 1
        children[parent].add(child)

    def descendants(root: str) -> int:
        seen, todo = {root}, [root]
        while todo:
            for c in children[todo.pop()] - seen:
                seen.add(c)
                todo.append(c)
        return len(seen) - 1

    return min(members, key=lambda m: (parents[m], -descendants(m), rank(members[m])))


def listed(words: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def kept_reason(hows: Sequence[str], copies: int) -> str:
    """Why the kept copy: ``hows`` says how each copy proved to derive from it does."""
    if not hows:
        return f"kept: the best of {copies} copies by quality (none proved to derive from another)"
    unknown = copies - 1 - len(hows)
    verb = "include" if unknown else ("is" if len(hows) == 1 else "are")
    subject = "the other copy" if copies == 2 else "the others"
    text = f"kept: {subject} {verb} {listed(sorted(hows))} of it"
    if unknown:
        text += f"; {unknown} more ranked below it by quality"
    return text
