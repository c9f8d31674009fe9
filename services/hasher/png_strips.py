"""Decode a large PNG a strip of rows at a time, box-reducing each strip as it comes.

Pillow cannot reduce a PNG on decode (libpng has no DCT-like scaling) and holds the whole
image, four bytes a pixel for RGB: an 11500 x 11500 flat PNG of 400 KB is 530 MB decoded.
Here the IDAT stream is inflated incrementally and every strip of rows goes through
Pillow's own PNG row decoder (its `zip` codec) in a stream of its own: the strip's
filtered rows, preceded by the previous strip's last row, unfiltered (filter type 0), which
the first row's Up/Average/Paeth filters refer to. Each strip is made RGB and reduced by
the same power of two as the whole image would be (strips are a multiple of it high), so
the result is the one the whole-image path gives, pixel for pixel, at a fraction of the
memory.

Only the common layouts: 8 bits a sample (L, LA, RGB, RGBA, P), not interlaced, one frame.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Final

from PIL import Image, ImageFile

# rawmode -> bytes a pixel, for the 8-bit layouts whose unfiltered row Pillow gives back
# byte for byte with tobytes().
_RAW_BYTES: Final = {"L": 1, "P": 1, "LA": 2, "RGB": 3, "RGBA": 4}
# Rows of the original per strip, before rounding up to a multiple of the reduction: ~3 MB
# of RGB at 11500 px wide (a strip's copies stay far below the whole image's size).
STRIP_ROWS: Final = 64
_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def can_strip(img: Image.Image) -> bool:
    """Whether `img` (opened, not loaded) is a PNG this module decodes."""
    if (
        not isinstance(img, ImageFile.ImageFile)
        or img.format != "PNG"
        or getattr(img, "is_animated", False)
        or img.info.get("interlace")
    ):
        return False
    tile = img.tile
    return len(tile) == 1 and tile[0][0] == "zip" and tile[0][3] in _RAW_BYTES


def strip_height(factor: int) -> int:
    """Rows per strip: STRIP_ROWS rounded up to a multiple of the reduction factor."""
    return -(-STRIP_ROWS // factor) * factor


def peak_bytes(width: int, factor: int) -> int:
    """What one strip holds at most (the raw rows, their stored stream, the strip in
    Pillow's four bytes a pixel, its RGB copy and the flattening's temporaries)."""
    rows = strip_height(factor) + 1
    return rows * width * (4 + 4 + 4 + 4 + 4 + 1)


def _chunks(data: bytes) -> Iterator[tuple[bytes, memoryview]]:
    """(type, payload) of each chunk, up to IEND."""
    view = memoryview(data)
    if bytes(view[:8]) != _SIGNATURE:
        raise ValueError("not a PNG signature")
    pos = 8
    while pos + 8 <= len(view):
        (length,) = struct.unpack(">I", view[pos : pos + 4])
        kind = bytes(view[pos + 4 : pos + 8])
        start = pos + 8
        if start + length > len(view):
            raise ValueError("truncated PNG chunk")
        if kind == b"IEND":
            return
        yield kind, view[start : start + length]
        pos = start + length + 4  # + CRC


def _idat(data: bytes) -> Iterator[memoryview]:
    return (payload for kind, payload in _chunks(data) if kind == b"IDAT")


def exif(data: bytes) -> bytes | None:
    """The eXIf chunk, wherever it is. Pillow's PNG getexif() decodes the whole image
    to reach one after the pixels (the full-size peak this module avoids)."""
    try:
        return next((bytes(p) for kind, p in _chunks(data) if kind == b"eXIf"), None)
    except ValueError:
        return None


def _inflated(data: bytes, limit: int) -> Iterator[bytes]:
    """The IDAT stream inflated, at most `limit` bytes a piece (a flat PNG expands 1000x:
    never inflate much more than a strip ahead)."""
    inflater = zlib.decompressobj()
    for chunk in _idat(data):
        pending: bytes | memoryview = chunk
        while pending:
            piece = inflater.decompress(pending, limit)
            if piece:
                yield piece
            pending = inflater.unconsumed_tail
    tail = inflater.flush()
    if tail:
        yield tail


def _rows(data: bytes, row_bytes: int, height: int, count: int) -> Iterator[bytes]:
    """The filtered rows (filter byte + row) of the image, `count` rows at a time."""
    want = count * row_bytes
    pending = bytearray()
    done = 0
    for piece in _inflated(data, want):
        pending += piece
        while done < height and len(pending) >= min(want, (height - done) * row_bytes):
            n = min(count, height - done)
            yield bytes(pending[: n * row_bytes])
            del pending[: n * row_bytes]
            done += n
        if done >= height:
            return
    raise ValueError(f"image data ends after {done} of {height} rows")


def decode_reduced(
    img: ImageFile.ImageFile, data: bytes, factor: int, to_rgb: Callable[[Image.Image], Image.Image]
) -> Image.Image:
    """The RGB image `to_rgb(img).reduce(factor)` would give, built strip by strip."""
    width, height = img.size
    rawmode = str(img.tile[0][3])  # can_strip checked it is one of _RAW_BYTES
    row_bytes = 1 + width * _RAW_BYTES[rawmode]
    out = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    previous = b"\x00" * (row_bytes - 1)
    top = 0
    for raw in _rows(data, row_bytes, height, strip_height(factor)):
        rows = len(raw) // row_bytes
        packer = zlib.compressobj(0)  # a stored deflate stream: no compression work
        stream = packer.compress(b"\x00" + previous) + packer.compress(raw) + packer.flush()
        strip = Image.frombytes(img.mode, (width, rows + 1), stream, "zip", rawmode)
        if img.mode == "P" and img.palette is not None:
            strip.putpalette(img.palette)
        if "transparency" in img.info:
            strip.info["transparency"] = img.info["transparency"]
        previous = strip.crop((0, rows, width, rows + 1)).tobytes()
        out.paste(to_rgb(strip).reduce(factor, (0, 1, width, rows + 1)), (0, top // factor))
        top += rows
    return out


__all__ = ["can_strip", "decode_reduced", "exif", "peak_bytes", "strip_height"]
