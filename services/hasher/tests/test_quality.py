from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from dedup import synthetic
from services.hasher.decode import decode
from services.hasher.features import extract
from services.hasher.quality import (
    WEIGHTS,
    Blocks,
    blockiness,
    estimate_jpeg_quality,
    is_palette,
)
from services.hasher.tests import synth


@pytest.mark.parametrize("quality", [10, 30, 50, 75, 85, 90, 95])
def test_jpeg_quality_is_read_back_from_the_tables(quality: int) -> None:
    tables = decode(synth.jpeg(synth.photo(0, 64, 64), quality)).quantization
    assert tables is not None
    assert abs(estimate_jpeg_quality(tables[0]) - quality) <= 1


def test_jpeg_quality_refuses_bad_tables() -> None:
    with pytest.raises(ValueError):
        estimate_jpeg_quality([1] * 63)
    with pytest.raises(ValueError):
        estimate_jpeg_quality([0] * 64)


def test_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_original_outscores_its_lesser_copies(seed: int) -> None:
    picture = synth.photo(seed, 1600, 1200)
    original = extract(synth.jpeg(picture, 95)).quality
    copies = {
        "downscaled 0.5": synth.jpeg(synth.resized(picture, 0.5), 95),
        "downscaled 0.75": synth.jpeg(synth.resized(picture, 0.75), 95),
        "thumbnail": synth.jpeg(synth.resized(picture, 0.15), 95),
        "re-compressed q85": synth.jpeg(picture, 85),
        "re-compressed q60": synth.jpeg(picture, 60),
        "blurred r1": synth.jpeg(picture.filter(ImageFilter.GaussianBlur(1)), 95),
        "blurred r2": synth.jpeg(picture.filter(ImageFilter.GaussianBlur(2)), 95),
        "cropped 0.9": synth.jpeg(synth.cropped(picture, 0.9), 95),
        "cropped 0.7": synth.jpeg(synth.cropped(picture, 0.7), 95),
        "noisy": synth.jpeg(synth.noisy(picture, 12), 95),
        "brightened": synth.jpeg(ImageEnhance.Brightness(picture).enhance(1.4), 95),
        "letterboxed": synth.jpeg(synth.letterboxed(picture), 95),
    }
    for name, data in copies.items():
        copy = extract(data).quality
        assert 0.0 <= copy.score < original.score, name


def test_a_lossless_original_outscores_its_jpeg_copy() -> None:
    picture = synth.photo(2, 1200, 900)
    original = extract(synth.png(picture)).quality
    copy = extract(synth.jpeg(picture, 90)).quality
    assert original.jpeg_quality == 1.0 and copy.jpeg_q == 90
    assert original.score > copy.score


def test_parts_are_in_range_and_reported() -> None:
    q = extract(synth.jpeg(synth.photo(3, 1000, 800), 80)).quality
    for part in (q.resolution, q.sharpness, q.noise, q.jpeg_quality, q.exposure, q.score):
        assert 0.0 <= part <= 1.0
    assert q.megapixels == pytest.approx(0.8)
    assert q.jpeg_q == 80
    assert q.score == pytest.approx(sum(WEIGHTS[k] * getattr(q, k) for k in WEIGHTS), abs=1e-9)


def test_flat_and_tiny_images_score_without_errors() -> None:
    flat = extract(synth.png(Image.new("RGB", (300, 200), (255, 255, 255)))).quality
    assert flat.sharpness == 0.0 and flat.exposure == 0.0
    tiny = extract(synth.png(Image.new("RGB", (2, 1), (10, 20, 30)))).quality
    assert 0.0 <= tiny.score <= 1.0


def _jpeg(img: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _block_marks(data: bytes) -> Blocks:
    found = blockiness(decode(data))
    assert found is not None
    return found


def _blocks(data: bytes) -> float:
    return _block_marks(data).ratio


def test_a_resave_keeps_its_first_jpegs_blocks_even_under_a_caption() -> None:
    picture = synthetic.photo(31, (900, 600))
    first = _jpeg(picture, 70)
    reopened = Image.open(io.BytesIO(first)).convert("RGB")
    blocks = _blocks(first)
    assert blocks > 0.05
    # A first JPEG at 90 has its own, weaker blocks; a re-save at 90 keeps those of the 70.
    assert _blocks(_jpeg(picture, 90)) < 0.6 * blocks
    assert _blocks(_jpeg(reopened, 90)) > 0.9 * blocks
    # A caption's strokes jump at every phase of the grid: left out, they do not dilute.
    captioned = synthetic.EDITS["caption"](reopened)
    assert _blocks(_jpeg(captioned, 90)) > 0.75 * blocks


def test_noise_added_over_a_jpeg_keeps_its_block_energy_a_grainy_original_has_none() -> None:
    picture = synthetic.photo(31, (900, 600))
    rng = np.random.default_rng(1)
    first = _jpeg(picture, 70)
    decoded = np.asarray(Image.open(io.BytesIO(first)).convert("RGB"), np.float64)
    noisy = decoded + rng.normal(0, 10, decoded.shape)
    jpeg, over = _block_marks(first), _block_marks(_png(_pixels(noisy)))
    # The noise dilutes the ratio of the steps to a tenth, not the excess of their squares.
    assert over.ratio < 0.2 * jpeg.ratio and over.energy > 0.8 * jpeg.energy
    grainy = np.asarray(picture, np.float64) + rng.normal(0, 4, decoded.shape)
    assert _block_marks(_png(_pixels(grainy))).energy < 0.2 * jpeg.energy


def _pixels(values: npt.NDArray[np.float64]) -> Image.Image:
    return Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8))


def _png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def test_a_grey_photo_is_no_palette_but_its_quantised_copy_is() -> None:
    grey = ImageOps.autocontrast(synthetic.photo(32, (600, 400)).convert("L"))
    assert len(np.unique(np.asarray(grey))) > 128  # a photo's grey levels
    assert not is_palette(decode(_png(grey)))
    dithered = grey.convert("RGB").quantize(32, dither=Image.Dither.FLOYDSTEINBERG)
    assert is_palette(decode(_png(dithered.convert("RGB"))))  # saved as RGB: counted
    assert is_palette(decode(_png(synthetic.photo(33, (600, 400)).quantize(200))))


def test_two_lines_of_caption_do_not_hide_a_resaves_blocks() -> None:
    from PIL import ImageFont

    first = _jpeg(synthetic.photo(31, (900, 600)), 70)
    captioned = Image.open(io.BytesIO(first)).convert("RGB")
    draw, size = ImageDraw.Draw(captioned), captioned.height // 12
    for line in range(2):
        draw.text((size // 2, size // 2 + line * 4 * size // 3), "summer 2026 family trip",
                  fill="white", font=ImageFont.load_default(size=size), stroke_width=2,
                  stroke_fill="black")  # fmt: skip
    # The strokes' steps of a hundred levels, counted in full, left 0.54 of the blocks:
    # under the ranker's 0.6, the re-save read as a first JPEG.
    assert _blocks(_jpeg(captioned, 90)) > 0.65 * _blocks(first)


def test_the_pixels_checksum_tells_a_lossless_re_save_from_a_re_encode() -> None:
    jpeg = _jpeg(synth.photo(5, 600, 400), 95)
    resaved = _png(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    assert extract(resaved).pixels == extract(jpeg).pixels
    re_encoded = _jpeg(Image.open(io.BytesIO(resaved)).convert("RGB"), 98)
    assert extract(re_encoded).pixels != extract(jpeg).pixels


def _bands(checksums: bytes) -> list[int]:
    """The band checksums after the whole's (4 bytes each)."""
    return [int.from_bytes(checksums[i : i + 4], "little") for i in range(4, len(checksums), 4)]


def test_a_lossless_copy_edited_in_part_keeps_the_jpeg_s_pixels_elsewhere() -> None:
    jpeg = _jpeg(synth.photo(5, 600, 400), 92)
    edited = Image.open(io.BytesIO(jpeg)).convert("RGB")
    edited.paste((200, 30, 60), (480, 300, 560, 380))  # a logo in a corner
    png = _png(edited)
    ours, theirs = extract(png).pixels, extract(jpeg).pixels
    assert ours[:4] != theirs[:4]  # not the very same pixels
    same = [a == b != 0 for a, b in zip(_bands(ours), _bands(theirs), strict=True)]
    assert len(same) == 16 and sum(same) >= 12, same  # all but the logo's bands
    re_encoded = _jpeg(edited, 98)  # a lossy encoder changes every band
    assert not set(_bands(extract(re_encoded).pixels)) & set(_bands(theirs)) - {0}
    # ... at 100 without chroma subsampling too, of a lossless grey original: not one band
    # of it comes back, so the original is never read as saved from its JPEG.
    grey = ImageOps.grayscale(synth.photo(6, 600, 400))
    best = io.BytesIO()
    grey.save(best, "JPEG", quality=100, subsampling=0)
    lossless = set(_bands(extract(_png(grey)).pixels)) - {0}
    assert lossless and not set(_bands(extract(best.getvalue()).pixels)) & lossless


def test_a_flat_band_is_no_evidence() -> None:
    flat = _png(Image.new("RGB", (300, 200), (250, 250, 250)))
    assert set(_bands(extract(flat).pixels)) == {0}


def test_a_16_bit_file_of_8_bit_samples_is_widened() -> None:
    grey = np.asarray(synth.photo(6, 300, 200).convert("L"), np.uint16)
    widened = decode(_png(Image.fromarray(grey * 257)))
    assert widened.widened and widened.mode.startswith("I;16")
    deep = decode(_png(Image.fromarray(grey * 257 + 3)))  # 16 bits of its own
    assert not deep.widened
    assert not decode(_png(Image.fromarray(grey.astype(np.uint8)))).widened


def _palette(img: Image.Image) -> Image.Image:
    return img.quantize(64, dither=Image.Dither.FLOYDSTEINBERG)


def _captioned(img: Image.Image) -> Image.Image:
    return synthetic.EDITS["caption"](img)


def _logo(img: Image.Image) -> Image.Image:
    out = img.copy()
    ImageDraw.Draw(out).ellipse((300, 200, 380, 280), fill=(200, 30, 60), outline="white", width=2)
    return out


def _grey16(img: Image.Image) -> Image.Image:
    return Image.fromarray(np.asarray(ImageOps.grayscale(img), np.uint16) * 257)


# Copies that must not pass for better than their original, a JPEG at 90: each made from
# the decoded JPEG (what a user edits), saved as a user would. The old score put each above.
FOOLING: dict[str, tuple[Callable[[Image.Image], Image.Image], str]] = {
    "dithered to a 64-colour palette": (_palette, "PNG"),
    "noise added": (lambda img: synth.noisy(img, 10), "PNG"),
    "a caption": (_captioned, "JPEG"),
    "a logo": (_logo, "PNG"),
    "greyscale, 16-bit": (_grey16, "PNG"),
    "re-saved as PNG": (lambda img: img, "PNG"),
}


@pytest.mark.parametrize("name", sorted(FOOLING))
@pytest.mark.parametrize("seed", [40, 41])
def test_dither_noise_overlays_greyscale_and_resaves_are_no_better(name: str, seed: int) -> None:
    first = _jpeg(synthetic.photo(seed, (400, 300)), 90)
    edit, fmt = FOOLING[name]
    copy = edit(Image.open(io.BytesIO(first)).convert("RGB"))
    data = _png(copy) if fmt == "PNG" else _jpeg(copy, 90)
    assert extract(data).quality.score < extract(first).quality.score, name


def test_a_palette_png_is_as_lossy_as_a_gif() -> None:
    picture = synthetic.photo(42, (400, 300)).quantize(128)
    gif = io.BytesIO()
    picture.save(gif, "GIF")
    png, as_gif = extract(_png(picture)).quality, extract(gif.getvalue()).quality
    assert png.jpeg_quality == as_gif.jpeg_quality < 1.0


def test_a_grey_copy_loses_the_colour_part() -> None:
    picture = synthetic.photo(43, (400, 300))
    colour, grey = (extract(_png(p)).quality for p in (picture, ImageOps.grayscale(picture)))
    assert colour.colour == 1.0 and grey.colour == 0.0
