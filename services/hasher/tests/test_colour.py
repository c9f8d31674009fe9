from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from dedup.colour import (
    SIGNATURE_BYTES,
    ColourSignature,
    colour_distance,
    colour_signature,
)
from dedup.imaging import apply_dihedral
from services.hasher.features import extract
from services.hasher.tests import synth


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return synth.photo(4, 640, 480)


@pytest.fixture(scope="module")
def original(picture: Image.Image) -> ColourSignature:
    return extract(synth.jpeg(picture, 95)).colour


def test_round_trip_through_bytes(original: ColourSignature) -> None:
    data = original.to_bytes()
    assert len(data) == SIGNATURE_BYTES <= 512
    back = ColourSignature.from_bytes(data)
    assert back.is_greyscale == original.is_greyscale
    assert back.mean_lightness == pytest.approx(original.mean_lightness, rel=1e-6)
    assert colour_distance(original, back) < 0.005
    assert back.to_bytes() == data


def test_from_bytes_refuses_other_data() -> None:
    with pytest.raises(ValueError):
        ColourSignature.from_bytes(b"xx")
    with pytest.raises(ValueError):
        ColourSignature.from_bytes(b"\x00" * SIGNATURE_BYTES)


def test_re_encoded_and_resized_copies_are_close(
    picture: Image.Image, original: ColourSignature
) -> None:
    for data in (synth.jpeg(picture, 60), synth.png(synth.resized(picture, 0.4))):
        assert colour_distance(original, extract(data).colour) < 0.03


def test_greyscale_copy_is_flagged_and_still_matches(
    picture: Image.Image, original: ColourSignature
) -> None:
    grey = extract(synth.jpeg(picture.convert("L"), 90)).colour
    grey_as_rgb = extract(synth.jpeg(picture.convert("L").convert("RGB"), 90)).colour
    assert not original.is_greyscale
    assert grey.is_greyscale and grey_as_rgb.is_greyscale
    assert grey.colourfulness < 2.0 < original.colourfulness
    assert colour_distance(original, grey) < 0.05
    assert colour_distance(grey, original) == colour_distance(original, grey)
    assert colour_distance(original, grey_as_rgb) < 0.05


def test_brightened_copy_is_nearer_than_a_recoloured_design(
    picture: Image.Image, original: ColourSignature
) -> None:
    brighter = extract(synth.jpeg(ImageEnhance.Brightness(picture).enhance(1.2), 90)).colour
    assert colour_distance(original, brighter) < 0.2


def test_dark_and_light_versions_of_a_wallpaper_are_far() -> None:
    light = extract(synth.png(synth.wallpaper(light=True))).colour
    dark = extract(synth.png(synth.wallpaper(light=False))).colour
    assert colour_distance(light, dark) > 0.3
    assert light.mean_lightness > 80 > 20 > dark.mean_lightness


def test_a_sepia_copy_is_not_greyscale(picture: Image.Image) -> None:
    grey = np.asarray(picture.convert("L"), dtype=np.float32)[..., None]
    sepia = np.clip(grey * np.array([1.07, 0.74, 0.43]), 0, 255).astype(np.uint8)
    assert not colour_signature(sepia).is_greyscale


@pytest.mark.parametrize("index", [1, 4, 7])
def test_rotated_copies_match_in_their_orientation(picture: Image.Image, index: int) -> None:
    rgb = np.asarray(picture)
    a = colour_signature(rgb)
    b = colour_signature(np.ascontiguousarray(apply_dihedral(rgb, index)))
    assert colour_distance(a, b) < 0.03  # best of the 8
    # The grid of b, turned back into a's orientation: the inverse transform of `index`.
    inverse = {1: 3, 4: 4, 7: 7}[index]
    assert colour_distance(a, b, transform=inverse) < 0.03
    assert colour_distance(a, b, transform=0) > colour_distance(a, b, transform=inverse)


def test_different_photos_are_not_close() -> None:
    a = colour_signature(np.asarray(synth.photo(1, 320, 240)))
    b = colour_signature(np.asarray(synth.photo(2, 320, 240)))
    assert colour_distance(a, b) > 0.1


def _grey(seed: int) -> Image.Image:
    return synth.photo(seed, 640, 480).convert("L").convert("RGB")


def test_colour_in_a_patch_of_a_grey_picture_is_told_from_a_colour_photo() -> None:
    from PIL import ImageDraw

    logo = _grey(5)
    ImageDraw.Draw(logo).ellipse((520, 360, 610, 450), fill=(200, 30, 60))
    found = extract(synth.png(logo))
    assert not found.colour.is_greyscale and found.coloured_patch
    assert not extract(synth.png(_grey(5))).coloured_patch  # grey all over
    # A photo with little colour keeps some in its greys: no patch.
    faded = ImageEnhance.Color(synth.photo(5, 640, 480)).enhance(0.15)
    faded_found = extract(synth.jpeg(faded, 90))
    assert not faded_found.colour.is_greyscale and not faded_found.coloured_patch
