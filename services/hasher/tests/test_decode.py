from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from dedup.imaging import luminance
from services.hasher.decode import BACKGROUND, DEFAULT_MAX_PIXELS, DecodeError, decode
from services.hasher.features import extract
from services.hasher.hashes import hamming, pdq_hash
from services.hasher.tests import synth


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return synth.photo(7, 640, 480)


# ---- sizes and downscale-on-decode -------------------------------------------------------


def test_large_jpeg_decodes_small_but_reports_the_original() -> None:
    data = synth.jpeg(synth.photo(1, 3000, 2000), 90)
    d = decode(data)
    assert (d.width, d.height) == (3000, 2000)
    h, w, _ = d.rgb.shape
    assert 512 <= max(h, w) < 1024  # DCT scaling to 1/4: 750x500
    assert (w, h) == (750, 500)
    assert d.rgb.dtype == np.uint8 and d.rgb.flags["C_CONTIGUOUS"]
    assert d.format == "JPEG" and d.lossless is False and d.file_size == len(data)
    assert d.quantization is not None and len(d.quantization[0]) == 64
    assert d.scale == pytest.approx(4.0)


def test_large_png_is_box_reduced_to_the_same_bound() -> None:
    d = decode(synth.png(synth.photo(2, 2100, 1400)))
    assert (d.width, d.height) == (2100, 1400)
    assert 512 <= max(d.rgb.shape[:2]) < 1024
    assert d.lossless is True and d.quantization is None


def test_small_images_are_not_enlarged() -> None:
    d = decode(synth.png(synth.photo(3, 120, 90)))
    assert d.rgb.shape == (90, 120, 3)


def test_max_side_is_honoured() -> None:
    d = decode(synth.jpeg(synth.photo(4, 2400, 1200)), max_side=256)
    assert 256 <= max(d.rgb.shape[:2]) < 512


# ---- EXIF orientation --------------------------------------------------------------------


def _with_orientation(upright: Image.Image, orientation: int) -> bytes:
    # Store the pixels so that applying `orientation` shows `upright`: invert the
    # transpose that exif_transpose will do.
    inverse = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    stored = upright.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return synth.jpeg(stored, 92, exif=exif.tobytes())


def test_exif_orientation_6_hashes_like_the_upright_image(picture: Image.Image) -> None:
    upright = extract(synth.jpeg(picture, 92))
    rotated = extract(_with_orientation(picture, 6))
    assert rotated.decoded.orientation == 6
    assert (rotated.decoded.width, rotated.decoded.height) == picture.size
    assert rotated.decoded.rgb.shape == upright.decoded.rgb.shape
    assert hamming(upright.pdq.hash, rotated.pdq.hash) <= 8
    assert hamming(upright.wavelet_hash, rotated.wavelet_hash) <= 8


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7, 8])
def test_every_exif_orientation_matches_pillow(picture: Image.Image, orientation: int) -> None:
    data = _with_orientation(picture, orientation)
    ours = decode(data).rgb
    pillow = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert ours.shape == pillow.shape
    assert np.abs(ours.astype(int) - pillow.astype(int)).mean() < 1.0


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_malformed_exif_is_ignored(picture: Image.Image) -> None:
    data = synth.jpeg(picture, 90, exif=b"Exif\x00\x00MM\x00*garbage")
    assert decode(data).orientation == 1


# ---- modes and formats -------------------------------------------------------------------


def _pdq_distance_to(reference: Image.Image, data: bytes) -> int:
    ref = pdq_hash(luminance(np.asarray(reference.convert("RGB"))))
    return hamming(ref.hash, extract(data).pdq.hash)


def test_cmyk_jpeg(picture: Image.Image) -> None:
    d = decode(synth.jpeg(picture.convert("CMYK"), 95))
    assert d.mode == "CMYK" and d.rgb.shape == (480, 640, 3)
    assert _pdq_distance_to(picture, synth.jpeg(picture.convert("CMYK"), 95)) <= 16


def test_palette_png_with_transparency(picture: Image.Image) -> None:
    p = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    p.info["transparency"] = 0
    d = decode(synth.png(p, transparency=0))
    assert d.mode == "P" and d.has_alpha
    transparent = np.asarray(p) == 0
    assert transparent.any()
    assert (d.rgb[transparent] == BACKGROUND).all()


def test_palette_png_without_transparency(picture: Image.Image) -> None:
    p = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    d = decode(synth.png(p))
    assert not d.has_alpha
    assert _pdq_distance_to(picture, synth.png(p)) <= 16


def test_16_bit_greyscale_is_scaled_not_clipped() -> None:
    ramp = (np.linspace(0, 65535, 256 * 256).reshape(256, 256)).astype(np.uint16)
    img = Image.fromarray(ramp)
    assert img.mode == "I;16"
    d = decode(synth.png(img))
    assert d.mode.startswith("I")
    grey = d.rgb[..., 0].astype(int)
    assert grey.min() <= 1 and grey.max() >= 254
    expected = (ramp.astype(np.float64) / 257.0).round()
    assert np.abs(grey - expected).max() <= 1
    assert (d.rgb[..., 0] == d.rgb[..., 1]).all()


def test_32_bit_integer_greyscale(picture: Image.Image) -> None:
    arr = np.asarray(picture.convert("L"), dtype=np.int32) * 257
    d = decode(synth.encode(Image.fromarray(arr, mode="I"), "TIFF"))
    assert abs(int(d.rgb.max()) - int(np.asarray(picture.convert("L")).max())) <= 1


def test_float_greyscale_tiff(picture: Image.Image) -> None:
    d = decode(synth.encode(picture.convert("F"), "TIFF"))
    assert d.mode == "F" and d.rgb.max() > 200


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel(picture: Image.Image, mode: str) -> None:
    d = decode(synth.png(picture.convert(mode)))
    assert d.mode == mode and (d.rgb[..., 0] == d.rgb[..., 2]).all()


def test_greyscale_with_alpha(picture: Image.Image) -> None:
    la = picture.convert("LA")
    alpha = np.zeros((480, 640), np.uint8)
    alpha[:, 320:] = 255
    la.putalpha(Image.fromarray(alpha))
    d = decode(synth.png(la))
    assert d.has_alpha
    assert (d.rgb[:, :300] == BACKGROUND).all()


@pytest.mark.parametrize("lossless", [False, True])
def test_webp(picture: Image.Image, lossless: bool) -> None:
    data = synth.encode(picture, "WEBP", quality=85, lossless=lossless)
    d = decode(data)
    assert d.format == "WEBP" and d.lossless is lossless
    assert _pdq_distance_to(picture, data) <= 16


def test_webp_with_alpha(picture: Image.Image) -> None:
    rgba = picture.copy()
    rgba.putalpha(Image.fromarray(synth.logo_alpha(1, 640)[:480]))
    d = decode(synth.encode(rgba, "WEBP", lossless=True))
    assert d.has_alpha and d.lossless is True


def test_animated_gif_takes_the_first_frame() -> None:
    frames = [synth.photo(s, 200, 150).convert("P") for s in (10, 11, 12)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    d = decode(out.getvalue())
    assert d.animated and d.format == "GIF"
    first = pdq_hash(luminance(np.asarray(frames[0].convert("RGB")))).hash
    second = pdq_hash(luminance(np.asarray(frames[1].convert("RGB")))).hash
    got = pdq_hash(luminance(d.rgb)).hash
    assert hamming(got, first) <= 8 < hamming(got, second)


def test_animated_webp_takes_the_first_frame() -> None:
    frames = [synth.photo(s, 200, 150) for s in (20, 21)]
    data = synth.encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    d = decode(data)
    assert d.animated
    first = pdq_hash(luminance(np.asarray(frames[0]))).hash
    assert hamming(pdq_hash(luminance(d.rgb)).hash, first) <= 8


# ---- alpha -------------------------------------------------------------------------------


def test_alpha_is_flattened_onto_the_fixed_background() -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:, 32:, 3] = 255
    rgba[:, 16:32, 3] = 128
    d = decode(synth.png(Image.fromarray(rgba, "RGBA")))
    assert d.has_alpha
    assert (d.rgb[:, :16] == BACKGROUND).all()
    assert (d.rgb[:, 32:] == (200, 10, 10)).all()
    half = d.rgb[0, 20].astype(int)
    assert np.abs(half - (np.array((200, 10, 10)) + BACKGROUND) / 2).max() <= 2


def test_alpha_trap_logos_identical_in_rgb_differ_after_decoding() -> None:
    # Both logos are black pixels everywhere; only the alpha draws the shape. A naive
    # RGBA->RGB conversion makes both all-black and so identical.
    hashes = []
    for seed in (1, 2):
        rgba = np.zeros((256, 256, 4), np.uint8)
        rgba[..., 3] = synth.logo_alpha(seed)
        f = extract(synth.png(Image.fromarray(rgba, "RGBA")))
        hashes.append(f)
    naive = [np.zeros((256, 256, 3), np.uint8)] * 2
    assert hamming(*(pdq_hash(luminance(n)).hash for n in naive)) == 0
    assert hamming(hashes[0].pdq.hash, hashes[1].pdq.hash) >= 64
    assert hamming(hashes[0].wavelet_hash, hashes[1].wavelet_hash) >= 32
    assert hashes[0].pdq.quality >= 50


# ---- refusals ----------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR declares width x height."""
    data = bytearray(synth.png(Image.new("RGB", (1, 1))))
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr : ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13]))
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(synth.jpeg(Image.new("RGB", (16, 16)), 80))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        _png_claiming(12_000, 12_000),  # over our limit, under Pillow's: our check
        _png_claiming(100_000, 100_000),  # over Pillow's hard limit too
        _jpeg_claiming(12_000, 12_000),
        _jpeg_claiming(65_000, 65_000),
    ],
    ids=["png-144M", "png-10G", "jpeg-144M", "jpeg-4G"],
)
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bombs_are_refused_before_decoding(data: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode(data)
    assert e.value.kind == "bomb"
    assert "pixels" in e.value.reason


@pytest.mark.parametrize("chunk", [b"zTXt", b"iCCP"])
def test_a_png_whose_metadata_inflates_without_end_is_a_bomb(
    picture: Image.Image, chunk: bytes
) -> None:
    # 8 MB of zeros in ~8 KB, a compressed comment or ICC profile: Pillow refuses it.
    payload = b"name\x00\x00" + zlib.compress(bytes(8 << 20), 9)
    png = synth.png(picture)
    body = chunk + payload
    extra = struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))
    with pytest.raises(DecodeError) as e:
        decode(png[:33] + extra + png[33:])
    assert e.value.kind == "bomb"


def test_a_png_of_too_many_chunks_is_a_bomb_refused_before_pillow_walks_them(
    picture: Image.Image,
) -> None:
    png = synth.png(picture)
    empty = struct.pack(">I", 0) + b"prVt" + struct.pack(">I", zlib.crc32(b"prVt"))
    assert decode(png[:33] + empty * 1000 + png[33:]).format == "PNG"  # many: fine
    # CPU time, not wall time: a shared machine's load must not fail it. Walking them all
    # takes Pillow's open ~10 s; refusing them early, a small fraction of that.
    started = time.process_time()
    with pytest.raises(DecodeError, match="PNG chunks") as e:
        decode(png[:33] + empty * 2_000_000 + png[33:])  # 24 MB
    assert e.value.kind == "bomb" and time.process_time() - started < 2


def test_a_jpeg_with_hundreds_of_scans_is_a_bomb(picture: Image.Image) -> None:
    # Each scan is one more pass over every coefficient: a CPU bomb in a small file.
    data = synth.jpeg(picture, 90, progressive=True)
    last = data[data.rindex(b"\xff\xda") : -2]
    assert decode(data[:-2] + last * 8 + b"\xff\xd9").format == "JPEG"  # a few: fine
    with pytest.raises(DecodeError, match="JPEG scans") as e:
        decode(data[:-2] + last * 300 + b"\xff\xd9")
    assert e.value.kind == "bomb"


def test_the_pixel_limit_is_a_parameter(picture: Image.Image) -> None:
    with pytest.raises(DecodeError) as e:
        decode(synth.jpeg(picture), max_pixels=640 * 480 - 1)
    assert e.value.kind == "bomb" and "640x480" in e.value.reason
    assert decode(synth.jpeg(picture), max_pixels=640 * 480).width == 640
    assert DEFAULT_MAX_PIXELS >= 108_000_000  # a 108 MP phone photo is not a bomb


def test_too_many_bytes(picture: Image.Image) -> None:
    with pytest.raises(DecodeError) as e:
        decode(synth.jpeg(picture), max_bytes=1000)
    assert e.value.kind == "too_large"


def test_empty() -> None:
    with pytest.raises(DecodeError) as e:
        decode(b"")
    assert e.value.kind == "empty"


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_truncated_jpeg_is_corrupt(picture: Image.Image, fraction: float) -> None:
    data = synth.jpeg(picture, 90)
    with pytest.raises(DecodeError) as e:
        decode(data[: int(len(data) * fraction)])
    assert e.value.kind == "corrupt"


def test_truncated_png_is_corrupt(picture: Image.Image) -> None:
    data = synth.png(picture)
    with pytest.raises(DecodeError) as e:
        decode(data[: len(data) // 2])
    assert e.value.kind == "corrupt"


def test_damaged_png_image_data_is_corrupt(picture: Image.Image) -> None:
    # Pillow decodes damaged IDAT bytes into garbage rows without a word; the CRC says.
    data = bytearray(synth.png(picture))
    data[len(data) // 2] ^= 0x5A
    with pytest.raises(DecodeError, match=r"IDAT.* fails its CRC") as e:
        decode(bytes(data))
    assert e.value.kind == "corrupt"
    assert decode(synth.png(picture)).format == "PNG"  # the undamaged file decodes


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8,
        b"hello, world",
        bytes(1000),
        b"\x89PNG\r\n\x1a\n",
    ],
    ids=["jpeg-garbage", "text", "zeros", "png-signature-only"],
)
def test_garbage_is_corrupt(data: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode(data)
    assert e.value.kind == "corrupt"


@pytest.mark.parametrize(
    "data",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n",
    ],
    ids=["svg", "pdf", "heic", "eps"],
)
def test_known_but_unsupported_formats(data: bytes) -> None:
    with pytest.raises(DecodeError) as e:
        decode(data)
    assert e.value.kind == "unsupported"


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's notes on broken TIFF tags
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_files_never_crash(data: st.DataObject) -> None:
    # Flip, drop and insert bytes in real files: the only outcomes are an image or a
    # DecodeError, never another exception.
    base = data.draw(st.sampled_from(_SMALL_FILES))
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if op == "flip":
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "drop":
            del raw[pos : pos + data.draw(st.integers(1, 64))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        if not raw:
            break
    try:
        d = decode(bytes(raw))
    except DecodeError as e:
        assert e.kind in ("corrupt", "unsupported", "bomb", "empty", "too_large")
    else:
        assert d.rgb.ndim == 3 and d.rgb.shape[2] == 3


_SMALL = synth.photo(5, 96, 64)
_SMALL_FILES = [
    synth.jpeg(_SMALL, 80),
    synth.jpeg(_SMALL, 80, progressive=True),
    synth.png(_SMALL),
    synth.encode(_SMALL.convert("P"), "GIF"),
    synth.encode(_SMALL, "WEBP", quality=80),
    synth.encode(_SMALL, "BMP"),
    synth.encode(_SMALL, "TIFF"),
]
