"""The verifier's colour policy: which hash candidates are a re-coloured design, not a copy.

Inputs are the hasher's colour signatures (``libs/dedup/colour.py``): an 8x8 grid of
CIELAB colours, the same grid's lightness after a plain greyscale conversion, and a
greyscale flag. Two numbers decide:

- ``colour_distance`` (the hasher's, 0..1; recorded on every candidate): mean ΔE per
  grid cell / 100, with the candidate in the rotation/flip nearest in colour. When
  either side is greyscale only lightness is compared, so a greyscale copy of a colour
  photo stays close (< 0.05).
- ``lightness correlation`` (-1..1): Pearson correlation of the two lightness grids
  (the greyscale lightness when either side is greyscale), with the candidate turned as
  the hasher found it (``pdq_transform``) or as nearest in colour, whichever correlates
  better. Every copy edit keeps the
  order of light and dark: brightness, contrast, gamma, white balance, hue shift,
  saturation, greyscale, sepia (dev sets: >= 0.45 on all duplicate pairs, >= 0.93 on
  all with a distance over 0.2). A "dark" rendition of a light design turns it around:
  the light background becomes dark, the dark lines light (strongly negative).

The policy: a candidate is REJECTED ("a re-coloured design") when its lightness layout
is inverted or unrelated (correlation < ``min_lightness_correlation``, default 0) AND
its colours are far apart (distance > ``max_colour_distance``, default 0.25). Both are
needed: a brightened or darkened copy can be far in colour (the forest brightness edits
are 0.26 from their original and 0.44 from each other) but keeps its layout, and a
logo whose strokes changed from black to white on the same background has an inverted
layout but a small distance (0.10 to 0.19: most of it is background). When one side is
flat (no layout to correlate), distance alone decides. Everything else passes on as it
was: the verifier never proves a duplicate, only the matcher does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from dedup.colour import ColourSignature, colour_distance
from dedup.imaging import DIHEDRAL, apply_dihedral

# Below this spread of cell lightness (L* units) an image has no layout to correlate.
MIN_LIGHTNESS_SPREAD: Final = 2.0


@dataclass(frozen=True, slots=True)
class ColourPolicy:
    min_lightness_correlation: float = 0.0
    max_colour_distance: float = 0.25


@dataclass(frozen=True, slots=True)
class ColourCheck:
    colour_distance: float
    # None: one side is flat, there is no layout to compare.
    lightness_correlation: float | None
    rejected: bool
    reason: str


def lightness_correlation(
    new: ColourSignature, candidate: ColourSignature, transform: int
) -> float | None:
    """Pearson correlation of the lightness grids, the candidate turned by ``transform``."""
    greyscale = new.is_greyscale or candidate.is_greyscale
    a = new.grey_l if greyscale else new.lab[..., 0]
    b = apply_dihedral(candidate.grey_l if greyscale else candidate.lab[..., 0], transform)
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    if x.std() < MIN_LIGHTNESS_SPREAD or y.std() < MIN_LIGHTNESS_SPREAD:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def best_transform(new: ColourSignature, candidate: ColourSignature) -> int:
    """The rotation/flip of the candidate nearest in colour (when the hasher named none)."""
    distances = [colour_distance(new, candidate, t) for t in range(len(DIHEDRAL))]
    return int(np.argmin(distances))


def check(
    new: ColourSignature,
    candidate: ColourSignature,
    policy: ColourPolicy,
    transform: int | None = None,
) -> ColourCheck:
    """Apply the colour policy to one candidate (see the module docstring).

    ``transform``: how the hasher found the candidate turned (``Scores.pdq_transform``).
    The turn nearest in colour is tried too and the better correlation counts: a PDQ
    match of a heavily edited copy can name the wrong turn, and a wrong turn must not
    make a copy look re-coloured.
    """
    nearest = best_transform(new, candidate)
    turns = [nearest] if transform is None or transform == nearest else [transform, nearest]
    distance = colour_distance(new, candidate, nearest)  # the smallest of the 8
    correlations = [c for t in turns if (c := lightness_correlation(new, candidate, t)) is not None]
    correlation = max(correlations) if correlations else None
    far = distance > policy.max_colour_distance
    if correlation is None:
        rejected = far
        reason = (
            f"flat image, colour distance {distance:.3f} > {policy.max_colour_distance:.3f}"
            if far
            else ""
        )
    else:
        rejected = far and correlation < policy.min_lightness_correlation
        reason = (
            f"re-coloured design, not a copy: lightness correlation {correlation:+.2f} < "
            f"{policy.min_lightness_correlation:+.2f} and colour distance {distance:.3f} > "
            f"{policy.max_colour_distance:.3f}"
            if rejected
            else ""
        )
    return ColourCheck(distance, correlation, rejected, reason)
