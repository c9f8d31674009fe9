"""The verifier's colour policy and pass-through rules, on generated images."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from dedup import synthetic
from dedup.colour import ColourSignature
from dedup.v1.features_pb2 import ImageFeatures, ImageStatus
from dedup.v1.groups_pb2 import Candidate, CandidateGroup, Scores, Verdict
from services.hasher.features import extract
from services.verifier.colour_check import ColourPolicy, check
from services.verifier.handler import STAGE, Verifier, verify

POLICY = ColourPolicy()
PENDING, REJECTED = Verdict.VERDICT_PENDING, Verdict.VERDICT_REJECTED


@functools.cache
def signature_of(name: str) -> bytes:
    """The stored colour signature of one of the test pictures, by name."""
    return extract(synthetic.encode(PICTURES[name](), quality=90)).colour.to_bytes()


def _flat(colour: tuple[int, int, int]) -> Image.Image:
    img = Image.new("RGB", (320, 240), colour)
    ImageDraw.Draw(img).rectangle((150, 110, 152, 112), fill=(128, 128, 128))
    return img


PICTURES = {
    "photo": lambda: synthetic.photo(11),
    "grey": lambda: ImageOps.grayscale(synthetic.photo(11)).convert("RGB"),
    "darker": lambda: ImageEnhance.Brightness(synthetic.photo(11)).enhance(0.6),
    "rotated": lambda: synthetic.photo(11).transpose(Image.Transpose.ROTATE_90),
    "other": lambda: synthetic.photo(12),
    "light": lambda: synthetic.wallpaper(3),
    "dark": lambda: synthetic.wallpaper(3, dark=True),
    "light-darker": lambda: ImageEnhance.Brightness(synthetic.wallpaper(3)).enhance(0.7),
    "plain-light": lambda: _flat((235, 235, 225)),
    "plain-dark": lambda: _flat((25, 25, 35)),
}


def candidate(name: str, transform: int | None = 0, **fields: object) -> Candidate:
    scores = Scores() if transform is None else Scores(pdq_transform=transform)
    c = Candidate(
        image_id=f"id-{name}",
        verdict=PENDING,
        colour_signature=signature_of(name),
        scores=scores,
    )
    for key, value in fields.items():
        setattr(c, key, value)
    return c


def group(
    new: str, *candidates: Candidate, status: ImageStatus.ValueType = ImageStatus.IMAGE_STATUS_OK
) -> CandidateGroup:
    return CandidateGroup(
        image_id=f"id-{new}",
        image=ImageFeatures(
            image_id=f"id-{new}",
            status=status,
            colour_signature=signature_of(new) if status == ImageStatus.IMAGE_STATUS_OK else b"",
        ),
        candidates=candidates,
        stages=["hasher"],
    )


def judged(new: str, name: str, transform: int | None = 0) -> Candidate:
    out = verify(group(new, candidate(name, transform)), POLICY)
    assert list(out.stages) == ["hasher", STAGE]
    return out.candidates[0]


def test_a_greyscale_copy_of_a_colour_photo_is_still_a_candidate() -> None:
    for new, old in (("grey", "photo"), ("photo", "grey")):
        c = judged(new, old)
        assert c.verdict == PENDING and not c.decided_by
        assert c.scores.colour_distance < 0.05


def test_a_brightness_edit_keeps_its_layout_and_stays_a_candidate() -> None:
    c = judged("darker", "photo")
    assert c.verdict == PENDING
    assert c.scores.HasField("colour_distance")


def test_a_rotated_copy_is_compared_in_the_hashers_orientation() -> None:
    # rot270 (index 3) undoes the quarter turn of "rotated".
    c = judged("photo", "rotated", transform=3)
    assert c.verdict == PENDING and c.scores.colour_distance < 0.05


def test_a_wrong_transform_from_the_hasher_does_not_reject_a_copy() -> None:
    c = judged("darker", "photo", transform=6)
    assert c.verdict == PENDING
    # Not one of the 8 turns at all: as if none was named.
    c = judged("dark", "light", transform=11)
    assert c.verdict == REJECTED


def test_the_dark_version_of_a_light_wallpaper_is_rejected_with_the_numbers() -> None:
    for new, old in (("dark", "light"), ("light", "dark")):
        c = judged(new, old)
        assert c.verdict == REJECTED and c.decided_by == STAGE and c.test == "colour"
        assert "re-coloured design" in c.reason and "correlation -" in c.reason
        assert c.scores.colour_distance > POLICY.max_colour_distance
        assert f"{c.scores.colour_distance:.3f}" in c.reason


def test_a_darkened_copy_of_the_light_wallpaper_is_not_rejected() -> None:
    assert judged("light-darker", "light").verdict == PENDING


def test_flat_images_are_judged_by_colour_distance_alone() -> None:
    new = ColourSignature.from_bytes(signature_of("plain-dark"))
    old = ColourSignature.from_bytes(signature_of("plain-light"))
    result = check(new, old, POLICY, 0)
    assert result.lightness_correlation is None and result.rejected
    assert "flat image" in result.reason
    assert not check(old, old, POLICY, 0).rejected


def test_the_policy_is_tunable() -> None:
    lenient = ColourPolicy(min_lightness_correlation=-1.0, max_colour_distance=1.0)
    out = verify(group("dark", candidate("light")), lenient)
    assert out.candidates[0].verdict == PENDING


def test_an_already_rejected_candidate_keeps_its_verdict_but_gets_the_distance() -> None:
    c = candidate("light", verdict=REJECTED, decided_by="hasher", reason="too far")
    out = verify(group("dark", c), POLICY).candidates[0]
    assert (out.verdict, out.decided_by, out.reason) == (REJECTED, "hasher", "too far")
    assert out.scores.HasField("colour_distance")


def test_a_candidate_without_a_readable_signature_passes_untouched() -> None:
    for data in (b"", b"not a signature"):
        c = candidate("other", colour_signature=data)
        out = verify(group("photo", c), POLICY).candidates[0]
        assert out == c


@pytest.mark.parametrize(
    "status", [ImageStatus.IMAGE_STATUS_CORRUPT, ImageStatus.IMAGE_STATUS_DELETED]
)
def test_groups_of_unreadable_or_deleted_images_pass_through(status: ImageStatus.ValueType) -> None:
    g = group("photo", status=status)
    out = verify(g, POLICY)
    assert list(out.stages) == ["hasher", STAGE]
    out.stages.pop()
    assert out == g


def test_the_input_group_is_not_changed_and_every_candidate_is_kept() -> None:
    g = group("dark", candidate("light"), candidate("other"), candidate("light-darker"))
    before = g.SerializeToString()
    out = verify(g, POLICY)
    assert g.SerializeToString() == before
    assert [c.image_id for c in out.candidates] == [c.image_id for c in g.candidates]
    assert all(c.scores.HasField("colour_distance") for c in out.candidates)


async def test_the_handler_publishes_one_group_keyed_by_image_id() -> None:
    g = group("grey", candidate("photo"))
    outputs = await Verifier(POLICY).handle(g)
    assert len(outputs) == 1 and outputs[0].key == g.image_id and outputs[0].topic is None
    assert outputs[0].message == verify(g, POLICY)


def test_verification_is_deterministic() -> None:
    g = group("dark", candidate("light"), candidate("photo", transform=None))
    assert verify(g, POLICY) == verify(g, POLICY)
    assert np.isfinite(verify(g, POLICY).candidates[1].scores.colour_distance)
