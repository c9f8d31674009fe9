from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.hasher.decode import DecodeError
from services.hasher.features import extract
from services.hasher.tests import synth
from services.hasher.thumbnail import working_copy


@pytest.mark.parametrize("size", [(3000, 2000), (2000, 3000), (640, 480), (100, 80)])
def test_working_copy_fits_and_keeps_the_aspect_ratio(size: tuple[int, int]) -> None:
    rgb = np.asarray(synth.photo(0, *size))
    img = Image.open(io.BytesIO(working_copy(rgb)))
    assert img.format == "JPEG"
    assert max(img.size) == min(512, max(size))
    assert img.size[0] / img.size[1] == pytest.approx(size[0] / size[1], rel=0.01)


def test_working_copy_as_webp() -> None:
    rgb = np.asarray(synth.photo(0, 800, 600))
    img = Image.open(io.BytesIO(working_copy(rgb, 256, fmt="WEBP")))
    assert img.format == "WEBP" and img.size == (256, 192)


def test_extract_is_deterministic_and_complete() -> None:
    data = synth.jpeg(synth.photo(1, 1800, 1200), 90)
    a, b = extract(data), extract(data)
    assert a.pdq == b.pdq and a.wavelet_hash == b.wavelet_hash
    assert a.colour.to_bytes() == b.colour.to_bytes() and a.quality == b.quality
    assert a.working_copy == b.working_copy
    assert (a.decoded.width, a.decoded.height) == (1800, 1200)
    copy = Image.open(io.BytesIO(a.working_copy))
    assert copy.size == (512, 341)
    assert a.content_box == (0, 341, 0, 512)


def test_extract_raises_decode_errors() -> None:
    with pytest.raises(DecodeError):
        extract(b"not an image")
