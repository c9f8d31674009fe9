"""The strip-wise PNG decode gives the whole-image path's pixels, at a fraction of the memory."""

from __future__ import annotations

import io
import struct
import zlib
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from dedup.budget import ByteBudget
from services.hasher import decode as decode_module
from services.hasher import png_strips
from services.hasher.decode import Decoded, DecodeError, decode, peak_bytes
from services.hasher.tests import synth


def png(img: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", **params)
    return out.getvalue()


def both_ways(
    data: bytes, monkeypatch: pytest.MonkeyPatch, max_side: int = 64
) -> tuple[Decoded, Decoded]:
    with monkeypatch.context() as m:
        m.setattr(decode_module, "STRIP_ABOVE_BYTES", 0)  # small test images in strips too
        stripped = decode(data, max_side=max_side)
    with monkeypatch.context() as m:
        m.setattr(png_strips, "can_strip", lambda img: False)
        whole = decode(data, max_side=max_side)
    return stripped, whole


def photo(mode: str, width: int = 700, height: int = 1111) -> Image.Image:
    rgb = synth.photo(3, width, height)
    if mode == "P":
        return rgb.quantize(64)
    if mode in ("LA", "RGBA"):
        base = rgb.convert(mode[:-1])
        alpha = Image.linear_gradient("L").resize(rgb.size)
        base.putalpha(alpha)
        return base
    return rgb.convert(mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "P"])
def test_strips_equal_the_whole_image(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1111 rows: several strips of 256 and a partial last one; every PNG filter in use.
    data = png(photo(mode), optimize=True)
    assert png_strips.can_strip(Image.open(io.BytesIO(data)))
    stripped, whole = both_ways(data, monkeypatch)
    assert stripped.rgb.shape == whole.rgb.shape == (70, 44, 3)
    assert np.array_equal(stripped.rgb, whole.rgb)
    assert stripped.has_alpha == whole.has_alpha


def test_strips_keep_a_transparent_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    img = photo("P")
    data = png(img, transparency=5)
    stripped, whole = both_ways(data, monkeypatch)
    assert stripped.has_alpha
    assert np.array_equal(stripped.rgb, whole.rgb)


def test_strips_with_many_idat_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow writes one IDAT per 64 KB block of compressed data: a noisy image has many.
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (900, 500, 3), dtype=np.uint8))
    stripped, whole = both_ways(png(img), monkeypatch)
    assert np.array_equal(stripped.rgb, whole.rgb)


def test_orientation_is_applied_after_strips(monkeypatch: pytest.MonkeyPatch) -> None:
    img = photo("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6
    stripped, whole = both_ways(png(img, exif=exif), monkeypatch)
    assert stripped.orientation == 6
    assert np.array_equal(stripped.rgb, whole.rgb)


def test_deep_and_bilevel_pngs_take_the_whole_image_path() -> None:
    def strippable(img: Image.Image, **params: object) -> bool:
        return png_strips.can_strip(Image.open(io.BytesIO(png(img, **params))))

    assert strippable(photo("RGB"))
    assert not strippable(Image.new("I;16", (600, 600)))
    assert not strippable(Image.new("1", (600, 600)))


def test_truncated_strip_data_is_corrupt() -> None:
    data = png(photo("RGB"))
    with pytest.raises(DecodeError) as error:
        decode(data[: len(data) // 2], max_side=64)
    assert error.value.kind == "corrupt"


def test_a_flat_png_at_the_limit_needs_little_memory_stripped() -> None:
    size = (11500, 11500)
    whole = peak_bytes(size, "RGB", has_alpha=False, max_side=512, stripped=False)
    stripped = peak_bytes(size, "RGB", has_alpha=False, max_side=512, stripped=True)
    assert whole > 500 << 20
    assert stripped < 100 << 20


class RecordingBudget(ByteBudget):
    def __init__(self, capacity: int) -> None:
        super().__init__(capacity)
        self.held: list[int] = []

    def hold(self, wanted: int) -> AbstractContextManager[None]:
        self.held.append(wanted)
        return super().hold(wanted)


def test_a_decode_holds_its_estimated_peak_of_the_budget() -> None:
    budget = RecordingBudget(1 << 30)
    img = photo("L")
    decode(png(img), budget=budget)
    expected = peak_bytes(img.size, "L", has_alpha=False, max_side=512, stripped=False)
    assert budget.held == [expected] and budget.in_use == 0  # small: decoded whole


def test_only_a_png_whose_whole_decode_is_large_goes_in_strips(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = png_strips.decode_reduced

    def spy(img: ImageFile.ImageFile, *args: Any) -> Image.Image:
        calls.append(img.size[0])
        return real(img, *args)

    monkeypatch.setattr(png_strips, "decode_reduced", spy)
    decode(png(photo("RGB", 1500, 1000)))  # ~6 MB whole: the faster whole-image path
    decode(png(Image.new("RGB", (6000, 4000))))  # ~100 MB whole: in strips
    assert calls == [6000]


def test_an_image_that_could_never_fit_is_too_large_and_holds_nothing() -> None:
    budget = RecordingBudget(64 << 20)
    with pytest.raises(DecodeError) as error:
        decode(png(Image.new("RGB", (6000, 6000))), budget=budget, max_side=8000)
    assert error.value.kind == "too_large"
    assert "decoding 6000x6000 RGB needs about" in error.value.reason
    assert "more than the decode memory budget of 64 MiB" in error.value.reason
    assert budget.held == [] and budget.in_use == 0


def test_the_estimate_grows_with_what_the_mode_costs() -> None:
    def need(mode: str, alpha: bool = False) -> int:
        return peak_bytes((4000, 4000), mode, has_alpha=alpha, max_side=512, stripped=False)

    # RGB is decoded as it is; L is converted to RGB; alpha is composited; 16-bit rescaled
    # (in integers), float images through float64 arrays.
    assert need("RGB") < need("L") < need("RGBA", alpha=True) <= need("I;16") < need("F")


def with_exif_after_pixels(data: bytes, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    payload = exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + payload))
    end = data.rindex(b"IEND") - 4
    return data[:end] + chunk + data[end:]


def test_exif_after_the_pixels_is_read_without_decoding_the_whole_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = with_exif_after_pixels(png(photo("RGB")), 6)
    stripped, whole = both_ways(data, monkeypatch)
    assert stripped.orientation == whole.orientation == 6
    assert (stripped.width, stripped.height) == (1111, 700)
    assert np.array_equal(stripped.rgb, whole.rgb)


@pytest.mark.parametrize("top", [300, 40000, 65535, 200])
def test_16_bit_in_integers_gives_the_float_path_s_pixels(top: int) -> None:
    from services.hasher.decode import _deep_to_l, _float_to_l

    rng = np.random.default_rng(top)
    values = rng.integers(0, top + 1, (64, 64), dtype=np.uint16)
    values[0, 0] = top
    img = Image.fromarray(values)
    assert img.mode == "I;16"
    fast = np.asarray(_deep_to_l(img))
    slow = np.asarray(_float_to_l(img, values.astype(np.float64)))
    assert np.array_equal(fast, slow)
