"""The ranker's provenance rules: which copy of a pair derives from the other."""

from __future__ import annotations

import pytest

from dedup.v1.decisions_pb2 import Decision
from dedup.v1.features_pb2 import ImageStatus, Marks, QualityParts
from dedup.v1.groups_pb2 import Derivation, Scores
from services.ranker.handler import rank_key
from services.ranker.provenance import choosing, contenders, derives, keeper, kept_reason

OK = ImageStatus.IMAGE_STATUS_OK


def copy(
    name: str,
    *,
    size: tuple[int, int] = (400, 300),
    fmt: str = "JPEG",
    jpeg: float = 0.9,
    noise: float = 0.9,
    sharpness: float = 0.5,
    greyscale: bool = False,
    palette: bool = False,
    blockiness: float | None = None,
    quality: float = 0.5,
) -> Decision:
    marks = Marks(palette=palette)
    if blockiness is not None:
        marks.blockiness = blockiness
    return Decision(
        image_id=name,
        status=OK,
        width=size[0],
        height=size[1],
        format=fmt,
        greyscale=greyscale,
        quality=quality,
        quality_parts=QualityParts(jpeg_quality=jpeg, noise=noise, sharpness=sharpness),
        marks=marks,
    )


ORIGINAL = copy("o")
SHARED = Scores(shared_image=1.0, shared_candidate=1.0)


@pytest.mark.parametrize(
    ("edited", "scores", "how"),
    [
        (copy("c"), Scores(candidate_derivation=Derivation.DERIVATION_CROP), "a crop"),
        (copy("c", greyscale=True), Scores(), "a greyscale copy"),
        (copy("c", fmt="PNG", jpeg=1.0, palette=True), Scores(), "a palette copy"),
        (copy("c", size=(200, 150)), SHARED, "a downscale"),
        (
            copy("c", noise=0.2, sharpness=0.7),
            Scores(),
            "a noisier copy",
        ),  # noise passes for detail
        (copy("c", sharpness=0.05, noise=0.999), Scores(), "a blurred copy"),
        (copy("c", jpeg=0.6), Scores(), "a re-encode (JPEG quality 60 < 90)"),
    ],
)
def test_each_rule_names_the_derived_copy(edited: Decision, scores: Scores, how: str) -> None:
    assert derives(ORIGINAL, edited, scores) == (None, how)
    flipped = Scores(
        image_derivation=scores.candidate_derivation,
        candidate_derivation=scores.image_derivation,
    )
    if scores.HasField("shared_image"):
        flipped.shared_image, flipped.shared_candidate = (
            scores.shared_candidate,
            scores.shared_image,
        )
    assert derives(edited, ORIGINAL, flipped) == (how, None)


def test_a_crop_is_named_a_crop_where_its_pixels_were_proved() -> None:
    crop = copy("c", size=(283, 212))  # half the area, the same aspect ratio
    assert derives(ORIGINAL, crop, Scores()) == (None, "a downscale")
    proved = Scores(candidate_derivation=Derivation.DERIVATION_CROP)
    assert derives(ORIGINAL, crop, proved) == (None, "a crop")


def test_a_framed_copy_is_known_by_its_own_mark() -> None:
    framed = copy("c", size=(440, 340))
    framed.marks.framed = True
    assert derives(ORIGINAL, framed, Scores()) == (None, "a framed copy")


def test_the_choice_uses_a_proved_crop_but_not_an_overlay() -> None:
    overlay = Scores(image_derivation=Derivation.DERIVATION_OVERLAY)
    assert choosing(overlay) == Scores()
    crop = Scores(candidate_derivation=Derivation.DERIVATION_CROP, inliers=40)
    assert choosing(crop) == Scores(candidate_derivation=Derivation.DERIVATION_CROP)


def test_a_high_quality_file_as_blocky_as_a_lower_quality_jpeg_is_a_resave() -> None:
    original = copy("o", jpeg=0.7, blockiness=0.3)
    hue_edit = copy("h", jpeg=0.9, blockiness=0.28)
    png = copy("p", fmt="PNG", jpeg=1.0, blockiness=0.3)
    how = "a re-save of a more compressed JPEG"
    assert derives(original, hue_edit, Scores()) == (None, how)
    assert derives(original, png, Scores()) == (None, how)
    first_generation = copy("f", jpeg=0.9, blockiness=0.1)  # about a third: its own blocks
    assert derives(original, first_generation, Scores()) == (
        "a re-encode (JPEG quality 70 < 90)",
        None,
    )


def test_a_first_jpeg_a_step_above_its_re_encode_is_no_resave() -> None:
    # A first JPEG at 90 shows about 0.67 of the blocks of its re-encode at 85: as blocky
    # as the re-encode's would be a re-save, not this.
    original = copy("o", jpeg=0.9, blockiness=0.072)
    caption = copy("c", jpeg=0.85, blockiness=0.086)
    assert derives(original, caption, Scores()) == (None, "a re-encode (JPEG quality 85 < 90)")
    resaved = copy("r", jpeg=0.9, blockiness=0.09)
    assert derives(resaved, caption, Scores()) == ("a re-save of a more compressed JPEG", None)


def test_a_jpeg_beside_a_lossless_file_without_blocks_is_the_copy() -> None:
    png = copy("p", fmt="PNG", jpeg=1.0, blockiness=0.01)
    caption = copy("c", jpeg=0.9, blockiness=0.12, quality=0.8)  # text passes for detail
    how = "a JPEG copy of the lossless file"
    assert derives(png, caption, Scores()) == (None, how)
    assert derives(caption, png, Scores()) == (how, None)
    # A PNG showing the JPEG's blocks was saved from it: the re-save rule says so.
    resaved = copy("r", fmt="PNG", jpeg=1.0, blockiness=0.12)
    assert derives(resaved, caption, Scores()) == ("a re-save of a more compressed JPEG", None)
    # Noise added to a JPEG hides its blocks: the noise rule comes first.
    noisy = copy("n", fmt="PNG", jpeg=1.0, blockiness=0.01, noise=0.2)
    assert derives(noisy, caption, Scores()) == ("a noisier copy", None)


def test_a_jpeg_with_more_blocks_than_a_lossless_file_as_noisy_is_the_copy() -> None:
    # A grey texture's captioned JPEG at 90: its blocks under MIN_BLOCKS, but more than
    # twice the PNG's; a PNG saved from it would keep them (RESAVE_BLOCKS).
    png = copy("p", fmt="PNG", jpeg=1.0, blockiness=0.011, noise=0.59)  # sigma 4.2
    caption = copy("c", jpeg=0.9, blockiness=0.026, noise=0.68, quality=0.8)  # sigma 3.5
    how = "a JPEG copy of the lossless file"
    assert derives(png, caption, Scores()) == (None, how)
    assert derives(caption, png, Scores()) == (how, None)
    # Noise added to the JPEG (over NOISIER times its sigma, if under the noise rule's
    # margin) hid its blocks: unknown.
    noisy = copy("n", fmt="PNG", jpeg=1.0, blockiness=0.006, noise=0.46)  # sigma 5.4
    assert derives(noisy, caption, Scores()) == (None, None)
    # So did a blur, which takes the noise too (under NOISIER times less).
    soft = copy("s", fmt="PNG", jpeg=1.0, blockiness=0.006, noise=0.85)  # sigma 2.1
    assert derives(soft, caption, Scores()) == (None, None)


def test_text_over_a_copy_is_no_blur_of_its_original() -> None:
    # A caption on a smooth picture: 8 times the detail and a little more noise. The
    # original keeps its noise, so it is no blurred copy of the captioned one.
    original = copy("o", sharpness=0.33, noise=0.79, jpeg=0.92)  # detail 74, sigma 2.5
    caption = copy("c", sharpness=0.87, noise=0.72, jpeg=0.9)  # detail 1000, sigma 3.1
    assert derives(original, caption, Scores()) == (None, "a re-encode (JPEG quality 90 < 92)")
    assert derives(caption, original, Scores()) == ("a re-encode (JPEG quality 90 < 92)", None)


def test_no_evidence_leaves_the_direction_unknown() -> None:
    assert derives(ORIGINAL, copy("c"), Scores()) == (None, None)
    # More pixels at another aspect ratio: a frame, a squeeze, not a downscale.
    assert derives(ORIGINAL, copy("c", size=(600, 300)), Scores()) == (None, None)


def test_a_copy_known_only_as_a_candidate_is_judged_by_the_pixels_alone() -> None:
    unseen = Decision(image_id="u", status=ImageStatus.IMAGE_STATUS_UNSPECIFIED)
    assert derives(ORIGINAL, unseen, Scores()) == (None, None)
    crop = Scores(candidate_derivation=Derivation.DERIVATION_CROP)
    assert derives(ORIGINAL, unseen, crop) == (None, "a crop")


def test_the_keeper_is_the_best_copy_of_those_that_derive_from_none() -> None:
    members = {
        "o": copy("o", quality=0.2),
        "a": copy("a", quality=0.9),
        "b": copy("b", quality=0.5),
        "c": copy("c", quality=0.3),
    }
    derived = {("a", "o"): "a crop", ("b", "a"): "a downscale"}
    assert keeper(members, derived, rank_key) == "c"  # c and o derive from none
    assert keeper(members, {**derived, ("c", "o"): "a blur"}, rank_key) == "o"
    assert keeper(members, {}, rank_key) == "a"  # no evidence: the best quality
    everyone = {("o", "a"): "x", ("a", "b"): "y", ("b", "c"): "z", ("c", "o"): "w"}
    assert keeper(members, everyone, rank_key) == "a"  # a cycle: the best of all


def written(d: Decision, seconds: int) -> Decision:
    d.written_at.FromSeconds(seconds)
    return d


def test_of_copies_as_good_by_quality_the_first_written_is_kept() -> None:
    # A re-save at the JPEG's own quality scores a hair above its original: a tie.
    original = written(copy("z-original", quality=0.5940), 1_000)
    resave = written(copy("a-resave", quality=0.5946), 2_000)
    members = {"z-original": original, "a-resave": resave}
    assert keeper(members, {}, rank_key) == "z-original"
    assert contenders(members, {}, rank_key) == ["a-resave", "z-original"]
    # A copy of unknown time is not taken for the first written.
    members["a-resave"] = copy("a-resave", quality=0.5946)
    assert keeper(members, {}, rank_key) == "z-original"
    # A clear difference of quality is not overruled by time.
    members["a-resave"] = written(copy("a-resave", quality=0.62), 2_000)
    assert keeper(members, {}, rank_key) == "a-resave"
    # Nor is a derivation: the first written copy derived from another is not kept.
    members["a-resave"] = written(copy("a-resave", quality=0.5946), 500)
    assert keeper(members, {("a-resave", "z-original"): "a crop"}, rank_key) == "z-original"


def test_the_kept_copy_says_what_the_others_are() -> None:
    assert kept_reason(["a crop", "a greyscale copy"], 3) == (
        "kept: the others are a crop and a greyscale copy of it"
    )
    assert kept_reason(["a crop"], 2) == "kept: the other copy is a crop of it"
    assert kept_reason(["a crop"], 4) == (
        "kept: the others include a crop of it; 2 more ranked below it by quality"
    )
    assert kept_reason([], 3).startswith("kept: the best of 3 copies by quality")
    assert kept_reason(["a crop"], 4, by_time=2) == (
        "kept: the others include a crop of it; the first written of 2 copies as good by"
        " quality; 1 more ranked below it by quality"
    )
    assert kept_reason([], 2, by_time=2).startswith(
        "kept: the first written of 2 copies as good by quality"
    )


def test_less_noise_with_as_much_detail_is_harder_compression_not_noise_added() -> None:
    harder = copy("c", jpeg=0.5, noise=0.99)
    noisier_original = copy("o", jpeg=0.9, noise=0.8)
    assert derives(noisier_original, harder, Scores()) == (
        None,
        "a re-encode (JPEG quality 50 < 90)",
    )


def energy(d: Decision, block_energy: float, native_noise: float | None = None) -> Decision:
    d.marks.block_energy = block_energy
    if native_noise is not None:
        d.marks.native_noise = native_noise
    return d


def test_a_jpeg_of_a_grainy_lossless_original_took_its_grain() -> None:
    # skimage's camera.png beside its JPEG at quality 62: the PNG's grain is no noise added
    # to the JPEG, which would have kept the JPEG's block energy.
    grainy = energy(copy("o", fmt="PNG", jpeg=1.0, noise=0.942, blockiness=0.010), 4.95)
    jpeg = energy(copy("c", jpeg=0.62, noise=0.998, blockiness=0.24), 52.6)
    assert derives(grainy, jpeg, Scores()) == (None, "a JPEG copy of the lossless file")
    # Noise added over the JPEG dilutes its blockiness, not its block energy.
    noisy = energy(copy("n", fmt="PNG", jpeg=1.0, noise=0.942, blockiness=0.010), 50.1)
    assert derives(noisy, jpeg, Scores()) == ("a noisier copy", None)


def test_added_noise_is_told_at_the_pixels_own_scale() -> None:
    # A 640-px photo and its noisy copy: the resample to 512 px averages the noise to 1.6
    # against 2.5 grey levels, under NOISIER; at their own scale 2.2 against 5.4.
    original = energy(copy("o", jpeg=0.92, noise=0.912, sharpness=0.5), 1.5, 2.22)
    noisy = energy(copy("n", fmt="PNG", jpeg=1.0, noise=0.795, sharpness=0.5), 2.9, 5.44)
    assert derives(original, noisy, Scores()) == (None, "a noisier copy")
    original.marks.ClearField("native_noise")
    noisy.marks.ClearField("native_noise")
    assert derives(original, noisy, Scores()) != (None, "a noisier copy")


def test_a_lossy_webp_beside_a_jpeg_says_nothing_of_noise() -> None:
    # A lossy WebP's quality is not recorded: its compression may have taken the grain.
    jpeg = energy(copy("o", jpeg=0.92, noise=0.912), 2.3, 2.2)
    webp = energy(copy("w", fmt="WEBP", jpeg=0.8, noise=0.99), 1.0, 0.4)
    assert derives(jpeg, webp, Scores()) == (None, None)


def test_a_blur_removes_noise_too_but_far_more_detail() -> None:
    blurred = copy("c", noise=0.999, sharpness=0.01)
    assert derives(copy("o", noise=0.8, sharpness=0.5), blurred, Scores()) == (
        None,
        "a blurred copy",
    )


def test_the_same_pixels_in_a_lossless_file_are_a_re_save_of_the_jpeg() -> None:
    # A JPEG at 95 shows no blocks, so only the pixels being the very same tell.
    jpeg = copy("j", jpeg=0.95, blockiness=0.01)
    png = copy("p", fmt="PNG", jpeg=1.0, blockiness=0.01, quality=0.9)
    jpeg.marks.pixels = png.marks.pixels = b"\x01\x02\x03\x04"
    how = "a lossless re-save of the JPEG (its very pixels)"
    assert derives(jpeg, png, Scores()) == (None, how)
    assert derives(png, jpeg, Scores()) == (how, None)
    other = copy("q", fmt="PNG", jpeg=1.0, blockiness=0.01)
    other.marks.pixels = b"\x05\x06\x07\x08"  # other pixels: no such evidence
    assert derives(jpeg, other, Scores()) == (None, None)


def _pixels(whole: int, *bands: int) -> bytes:
    return b"".join(n.to_bytes(4, "little") for n in (whole, *bands))


def test_a_lossless_file_with_most_of_a_jpeg_s_very_pixels_was_saved_from_it() -> None:
    # A logo over a JPEG at 92, saved as PNG: its blocks too faint to tell, but 3 of
    # its 4 bands hold the JPEG's very pixels (0: a flat band, no evidence).
    jpeg = copy("j", jpeg=0.92, blockiness=0.02)
    logo = copy("l", fmt="PNG", jpeg=1.0, blockiness=0.02, quality=0.9)
    jpeg.marks.pixels, logo.marks.pixels = _pixels(1, 7, 8, 9, 10), _pixels(2, 7, 8, 9, 11)
    how = "a lossless re-save of the JPEG edited in part (most of its very pixels)"
    assert derives(jpeg, logo, Scores()) == (None, how)
    assert derives(logo, jpeg, Scores()) == (how, None)
    logo.marks.pixels = _pixels(2, 7, 12, 13, 14)  # a quarter of them: unknown
    assert derives(jpeg, logo, Scores()) == (None, None)
    jpeg.marks.pixels, logo.marks.pixels = _pixels(1, 0, 0, 0, 10), _pixels(2, 0, 0, 0, 11)
    assert derives(jpeg, logo, Scores()) == (None, None)  # flat bands tell nothing


def test_a_16_bit_file_widened_from_the_same_8_bit_pixels_is_the_copy() -> None:
    eight = copy("e", fmt="PNG", jpeg=1.0, greyscale=True)
    sixteen = copy("s", fmt="PNG", jpeg=1.0, greyscale=True)
    eight.marks.pixels = sixteen.marks.pixels = b"\x01\x02\x03\x04"
    sixteen.marks.widened = True
    how = "a 16-bit copy of the 8-bit file (its very pixels)"
    assert derives(eight, sixteen, Scores()) == (None, how)
    assert derives(sixteen, eight, Scores()) == (how, None)
    sixteen.marks.pixels = b"\x05\x06\x07\x08"  # widened, but of other pixels: unknown
    assert derives(eight, sixteen, Scores()) == (None, None)


def test_colour_in_a_patch_on_a_grey_picture_was_added_to_it() -> None:
    grey = copy("g", fmt="PNG", jpeg=1.0, greyscale=True)
    logo = copy("l", fmt="PNG", jpeg=1.0, quality=0.9)
    logo.marks.coloured_patch = True
    how = "a copy with a logo or a mark in colour"
    assert derives(grey, logo, Scores()) == (None, how)
    assert derives(logo, grey, Scores()) == (how, None)
    colour = copy("c", fmt="PNG", jpeg=1.0)  # colour all over: the grey one is the copy
    assert derives(grey, colour, Scores()) == ("a greyscale copy", None)
