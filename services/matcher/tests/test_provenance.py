"""Provenance from the alignment: which copy of a proven pair derives from the other."""

from __future__ import annotations

import pytest

from services.matcher.decide import decide
from services.matcher.geometry import MatchParams, MatchPolicy, view_of_bytes
from services.matcher.provenance import CROP, FRAME, NONE, OVERLAY, Provenance
from services.matcher.tests.images import working_copy

PARAMS, POLICY = MatchParams(), MatchPolicy()


def provenance_of(edit: str) -> Provenance:
    """The original as the new image, its edited copy as the candidate."""
    original = view_of_bytes(working_copy("photo"), PARAMS)
    copy = view_of_bytes(working_copy("photo", edit), PARAMS)
    found = decide(original, copy, PARAMS, POLICY).provenance
    assert found is not None, f"{edit}: not proved a duplicate"
    return found


@pytest.mark.parametrize(
    ("edit", "how"),
    [("crop", CROP), ("border", FRAME), ("grey-frame", FRAME), ("caption", OVERLAY)],
)
def test_the_edited_copy_is_the_one_that_derives(edit: str, how: int) -> None:
    found = provenance_of(edit)
    assert (found.new, found.candidate) == (NONE, how)


def test_a_blurred_copy_never_makes_its_original_the_derived_one() -> None:
    # A known limit: the blur of this picture passes for an overlay on the copy; the
    # direction is right, the words are not.
    assert provenance_of("blur").new == NONE


@pytest.mark.parametrize("edit", ["re-encode", "resize", "brightness", "mirror"])
def test_an_edit_that_adds_or_removes_nothing_gives_no_pixel_evidence(edit: str) -> None:
    found = provenance_of(edit)
    assert (found.new, found.candidate) == (NONE, NONE)
    assert found.shared_new == pytest.approx(1.0, abs=0.04)
    assert found.shared_candidate == pytest.approx(1.0, abs=0.04)


def test_a_crop_shows_part_of_its_original_and_all_of_itself() -> None:
    found = provenance_of("crop")
    assert found.shared_new < 0.8 and found.shared_candidate > 0.96


def test_reversed_swaps_the_roles() -> None:
    found = Provenance(0.5, 1.0, NONE, CROP)
    assert found.reversed() == Provenance(1.0, 0.5, CROP, NONE)
