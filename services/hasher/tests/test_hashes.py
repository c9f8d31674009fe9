from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from dedup.imaging import DIHEDRAL, apply_dihedral, content_box, luminance
from services.hasher.features import Features, extract
from services.hasher.hashes import PDQ_BITS, best_dihedral, hamming, pdq_hash, wavelet_hash
from services.hasher.tests import synth

# Distances we call "the same image" and "a different image", in bits of 256.
SAME = 24
DIFFERENT = 80


@pytest.fixture(scope="module")
def pictures() -> list[Image.Image]:
    return [synth.photo(seed) for seed in range(6)]


@pytest.fixture(scope="module")
def originals(pictures: list[Image.Image]) -> list[Features]:
    return [extract(synth.jpeg(p, 95)) for p in pictures]


def _distances(a: Features, b: Features) -> tuple[int, int]:
    return hamming(a.pdq.hash, b.pdq.hash), hamming(a.wavelet_hash, b.wavelet_hash)


# ---- hamming -------------------------------------------------------------------------------


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_hamming_is_the_popcount_of_the_xor(a: bytes, b: bytes) -> None:
    expected = sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))
    assert hamming(a, b) == hamming(b, a) == expected
    assert hamming(a, a) == 0


def test_hamming_refuses_different_lengths() -> None:
    with pytest.raises(ValueError):
        hamming(b"\x00" * 8, b"\x00" * 32)


def test_hash_sizes(originals: list[Features]) -> None:
    f = originals[0]
    assert len(f.pdq.hash) == PDQ_BITS // 8 == 32
    assert len(f.wavelet_hash) == 32
    assert len(f.pdq.dihedral) == len(DIHEDRAL) == 8
    assert f.pdq.dihedral[0] == f.pdq.hash
    assert f.pdq.hex() == f.pdq.hash.hex()


# ---- stability and distinctness --------------------------------------------------------------


@pytest.mark.parametrize("quality", [50, 65, 80, 95])
def test_stable_under_jpeg_reencoding(
    pictures: list[Image.Image], originals: list[Features], quality: int
) -> None:
    for picture, original in zip(pictures[:3], originals, strict=False):
        pdq, wave = _distances(original, extract(synth.jpeg(picture, quality)))
        assert pdq <= SAME and wave <= SAME, (quality, pdq, wave)


@pytest.mark.parametrize("factor", [0.25, 0.5, 0.75, 1.5, 2.0])
def test_stable_under_resizing(
    pictures: list[Image.Image], originals: list[Features], factor: float
) -> None:
    for picture, original in zip(pictures[:3], originals, strict=False):
        pdq, wave = _distances(original, extract(synth.jpeg(synth.resized(picture, factor), 90)))
        assert pdq <= SAME and wave <= SAME, (factor, pdq, wave)


def test_stable_under_format_change_and_greyscale(
    pictures: list[Image.Image], originals: list[Features]
) -> None:
    for data in (synth.png(pictures[0]), synth.jpeg(pictures[0].convert("L"), 90)):
        pdq, wave = _distances(originals[0], extract(data))
        assert pdq <= SAME and wave <= SAME


def test_letterboxed_copy_hashes_like_the_original(
    pictures: list[Image.Image], originals: list[Features]
) -> None:
    for colour in (0, 255):
        boxed = extract(synth.jpeg(synth.letterboxed(pictures[0], 0.15, colour), 90))
        assert boxed.content_box[0] > 0  # the bars were found
        pdq, wave = _distances(originals[0], boxed)
        assert pdq <= SAME and wave <= SAME


def test_distinct_images_are_far_apart(originals: list[Features]) -> None:
    for i, a in enumerate(originals):
        for b in originals[i + 1 :]:
            pdq, wave = _distances(a, b)
            assert pdq >= DIFFERENT and wave >= DIFFERENT // 2, (pdq, wave)
            # ...also when every rotation/flip of one is tried
            assert best_dihedral(a.pdq, b.pdq.hash)[1] >= DIFFERENT


def test_pdq_quality_flags_flat_images(originals: list[Features]) -> None:
    assert originals[0].pdq.quality >= 50
    assert pdq_hash(np.full((100, 100), 128.0, np.float32)).quality == 0


# ---- dihedral variants -----------------------------------------------------------------------


@pytest.mark.parametrize("index", range(8), ids=list(DIHEDRAL))
def test_dihedral_variant_equals_the_hash_of_the_turned_image(index: int) -> None:
    grey = luminance(np.asarray(synth.photo(11, 512, 384)))
    variants = pdq_hash(grey).dihedral
    turned = pdq_hash(np.ascontiguousarray(apply_dihedral(grey, index))).hash
    # Computed from the DCT, not by re-hashing: equal up to float rounding at the median.
    assert hamming(variants[index], turned) <= 2


@pytest.mark.parametrize("index", range(1, 8), ids=list(DIHEDRAL[1:]))
def test_dihedral_variant_matches_a_turned_and_reencoded_copy(
    pictures: list[Image.Image], originals: list[Features], index: int
) -> None:
    turned = np.ascontiguousarray(apply_dihedral(np.asarray(pictures[1]), index))
    copy = extract(synth.jpeg(Image.fromarray(turned), 85))
    assert hamming(originals[1].pdq.dihedral[index], copy.pdq.hash) <= 16
    assert best_dihedral(originals[1].pdq, copy.pdq.hash)[0] == index
    # the plain hash does not match a turned copy: that is what the variants are for
    assert hamming(originals[1].pdq.hash, copy.pdq.hash) >= DIFFERENT


def test_apply_dihedral_is_a_group_action() -> None:
    a = np.arange(12).reshape(3, 4)
    shapes = [apply_dihedral(a, i).shape for i in range(8)]
    assert shapes == [(3, 4), (4, 3), (3, 4), (4, 3), (3, 4), (3, 4), (4, 3), (4, 3)]
    assert (apply_dihedral(a, 1) == np.rot90(a)).all()
    assert (apply_dihedral(apply_dihedral(a, 1), 3) == a).all()
    assert (apply_dihedral(a, 7) == np.rot90(a, 2).T).all()
    assert (
        len({apply_dihedral(a, i).tobytes() + bytes(apply_dihedral(a, i).shape) for i in range(8)})
        == 8
    )


# ---- wavelet hash details -------------------------------------------------------------------


def test_wavelet_hash_of_a_flat_background_logo_is_not_blank() -> None:
    grey = np.full((256, 256), 128.0, np.float32)
    grey[synth.logo_alpha(3) > 0] = 0.0
    bits = np.unpackbits(np.frombuffer(wavelet_hash(grey), np.uint8))
    assert 0.25 < bits.mean() < 0.75


def test_wavelet_hash_sizes() -> None:
    grey = luminance(np.asarray(synth.photo(1, 300, 200)))
    assert len(wavelet_hash(grey, hash_size=8, levels=3)) == 8
    assert len(wavelet_hash(grey)) == 32


# ---- borders -------------------------------------------------------------------------------


def test_content_box_leaves_ordinary_photos_alone() -> None:
    grey = luminance(np.asarray(synth.photo(2, 512, 384)))
    assert content_box(grey) == (0, 384, 0, 512)


def test_content_box_finds_pillarbox_and_frame() -> None:
    grey = np.full((300, 400), 255.0, np.float32)
    grey[30:270, 60:340] = luminance(np.asarray(synth.photo(3, 280, 240)))
    assert content_box(grey) == (30, 270, 60, 340)


def test_content_box_keeps_uniform_and_mostly_bar_images() -> None:
    assert content_box(np.zeros((100, 100), np.float32)) == (0, 100, 0, 100)
    grey = np.zeros((100, 100), np.float32)
    grey[45:55, 45:55] = 200.0  # 1 % of the area: not a letterbox
    assert content_box(grey) == (0, 100, 0, 100)
