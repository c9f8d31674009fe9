"""Decode untrusted image bytes once, small and safe, into an upright RGB array.

Order of work, each step chosen so the expensive part happens on as few pixels as possible:

1. refuse empty input and input over ``max_bytes`` (``too_large``);
2. open the header only and refuse a declared pixel count over ``max_pixels`` (``bomb``)
   before a single pixel is decoded; a PNG whose chunk CRCs fail is ``corrupt``, one of
   too many chunks (or a JPEG of too many scans) a ``bomb``;
3. estimate the decode's peak memory from the header and hold that much of the process's
   decode budget (``dedup.budget.ByteBudget``, shared by every concurrent decode) until
   the small copy is out: decodes wait for room; one that could never fit is ``too_large``;
4. JPEG: ``Image.draft`` asks libjpeg for DCT-domain scaling (1/2, 1/4 or 1/8) so that the
   longer side still has at least ``max_side`` pixels; a large 8-bit PNG is decoded and
   reduced a strip of rows at a time (``png_strips``); other formats decode in full; all
   are then box-reduced by a power of two to the same bound, [max_side, 2 * max_side);
5. normalise the mode to RGB: 16-bit and float greyscale are rescaled (Pillow would clip
   them), alpha is flattened onto a fixed mid-grey (see ``BACKGROUND``);
6. apply the EXIF orientation, on the small image.

Every failure is a ``DecodeError`` whose ``kind`` matches the pipeline's image status.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, UnidentifiedImageError

from dedup.budget import ByteBudget
from dedup.formats import LOSSLESS_FORMATS, UNIDENTIFIED
from services.hasher import png_strips

DecodeErrorKind = Literal["corrupt", "unsupported", "too_large", "bomb", "empty"]

# Alpha is composited onto mid-grey rather than white or black: a logo drawn in black
# or in white (the two commonest logo colours) stays visible on it, so two logos whose
# RGB planes are identical but whose alpha differs stay different. A copy flattened by
# some tool onto white still hashes alike, because the hashes threshold at the median.
BACKGROUND: Final = (128, 128, 128)

# 2**27 = 134 M pixels: above every phone and medium-format camera in common use (a
# 108 MP sensor is 12000x9000) and below Pillow's own hard limit (~179 M), so ours is
# the one that fires, with our reason.
DEFAULT_MAX_PIXELS: Final = 1 << 27
DEFAULT_MAX_BYTES: Final = 64 << 20
# libjpeg makes one pass over every coefficient per scan of a progressive JPEG, and a
# scan can be 40 bytes: 10,000 of them in 466 KB held a thread for 24 s (64 MB: about an
# hour). Encoders write 10 or so; 0xFFDA (start of scan) cannot occur in entropy-coded
# data, so counting it in the file is exact but for embedded thumbnails and metadata.
MAX_JPEG_SCANS: Final = 256
# Encoders write image data in chunks of 8 KB or more (Pillow: 64 KB), an APNG two chunks
# a frame: 100,000 is far above any real file and a fifth of a second to walk.
MAX_PNG_CHUNKS: Final = 100_000
# What all of a process's decodes may hold at once: see HasherSettings.decode_memory_bytes.
DEFAULT_DECODE_MEMORY_BYTES: Final = 1 << 30

# Our pixel limit replaces Pillow's warning (which would fire between 89 M and our
# limit); Pillow's hard DecompressionBombError above ~179 M still maps to "bomb".
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# A damaged EXIF block is common and harmless (_orientation falls back to 1); Pillow's
# warning about it would be a stray non-JSON line on the service's stderr.
warnings.filterwarnings("ignore", message="Corrupt EXIF data", category=UserWarning)

RGBArray = npt.NDArray[np.uint8]

# Peak bytes a pixel of the full-size decode beyond Pillow's own storage of it: 16-bit and
# float images go through float64 arrays to be rescaled (_deep_to_l: the array, a finite
# copy and temporaries); alpha is composited (RGBA, the RGB result, the mask); other
# modes are converted to RGB (four bytes a pixel in Pillow). Checked against measured
# peaks of each mode (bench/README.md, "make bench-decode-memory").
_DEEP_EXTRA: Final = 2 + 8 + 8 + 8 + 8 + 1  # float images, or ints out of 16-bit range
_SIXTEEN_EXTRA: Final = 2 + 4 + 1 + 4  # the common 16-bit case (integers, _deep_to_l)
_ALPHA_EXTRA: Final = 4 + 4 + 1
_CONVERT_EXTRA: Final = 4
# A PNG whose whole decode would peak above this is decoded in strips (png_strips).
STRIP_ABOVE_BYTES: Final = 64 << 20
# The reduced copy, its RGB array and the turn, plus the codecs' own buffers.
_SMALL_COPIES: Final = 3
_CODEC_BYTES: Final = 8 << 20


class DecodeError(Exception):
    """An image that cannot be decoded; ``kind`` is one of the pipeline's statuses."""

    def __init__(self, kind: DecodeErrorKind, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind: DecodeErrorKind = kind
        self.reason = reason


# eq=False: it holds numpy arrays, whose == is element-wise.
@dataclass(frozen=True, slots=True, eq=False)
class Decoded:
    """An upright RGB image, downscaled on decode, plus facts about the original file."""

    rgb: RGBArray  # H x W x 3, C-contiguous, longer side in [max_side, 2*max_side) if larger
    width: int  # of the original, after EXIF orientation
    height: int
    format: str  # Pillow's format name: "JPEG", "PNG", "WEBP", ...
    mode: str  # Pillow's mode of the original: "RGB", "P", "I;16", "CMYK", ...
    has_alpha: bool
    file_size: int
    # JPEG quantisation tables in natural (row-major) order, table id -> 64 values.
    quantization: dict[int, tuple[int, ...]] | None = None
    # True: lossless storage (PNG, BMP, lossless WebP, ...); False: lossy (JPEG, lossy
    # WebP); None: not known.
    lossless: bool | None = None
    animated: bool = False
    orientation: int = 1  # the EXIF orientation that was applied (1 = none)
    scale: float = 1.0  # original longer side / decoded longer side
    # 16-bit samples that are all 8-bit ones widened (each a multiple of 257); not looked
    # for in a file decoded in strips (a large one).
    widened: bool = False


def decode(
    data: bytes,
    *,
    max_side: int = 512,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    budget: ByteBudget | None = None,
) -> Decoded:
    """Decode ``data`` into an upright RGB array whose longer side is about ``max_side``.

    The array keeps the original's aspect ratio; its longer side is at least ``max_side``
    (unless the original is smaller) and less than ``2 * max_side``. With a ``budget``,
    the decode first holds its estimated peak memory of it (waiting for room). Raises
    ``DecodeError``.
    """
    if max_side < 1:
        raise ValueError("max_side must be positive")
    if not data:
        raise DecodeError("empty", "zero bytes")
    if len(data) > max_bytes:
        raise DecodeError("too_large", f"{len(data)} bytes is over the limit of {max_bytes}")
    try:
        return _decode(data, max_side=max_side, max_pixels=max_pixels, budget=budget)
    except DecodeError:
        raise
    except Image.DecompressionBombError as e:
        raise DecodeError("bomb", str(e)) from e
    except MemoryError as e:
        raise DecodeError("too_large", "out of memory while decoding") from e
    except Exception as e:
        # Untrusted bytes reach deep into the format plugins, which raise all sorts
        # (OSError, ValueError, SyntaxError, struct.error, IndexError, ...): a broken
        # file must become a status, never a crash that poisons the consumer.
        kind: DecodeErrorKind = "bomb" if str(e).startswith(_METADATA_BOMB) else "corrupt"
        raise DecodeError(kind, f"{type(e).__name__}: {e}") from e


def _decode(data: bytes, *, max_side: int, max_pixels: int, budget: ByteBudget | None) -> Decoded:
    # Before Image.open: Pillow walks every chunk before the image data as it opens.
    if data.startswith(_PNG_SIGNATURE) and (bad := _png_chunks_problem(data)):
        raise bad
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise _unidentified(data) from e
    with img:
        fmt = img.format or "unknown"
        if fmt in _UNSUPPORTED_FORMATS:
            name = _UNSUPPORTED_FORMATS[fmt]
            raise DecodeError("unsupported", f"{name} is not a supported image format")
        mode = img.mode
        w0, h0 = img.size
        if w0 <= 0 or h0 <= 0:
            raise DecodeError("empty", f"declared size {w0}x{h0}")
        if w0 * h0 > max_pixels:
            raise DecodeError(
                "bomb", f"declared {w0}x{h0} = {w0 * h0} pixels is over the limit of {max_pixels}"
            )
        animated = bool(getattr(img, "is_animated", False))  # not n_frames: that scans all
        is_jpeg = fmt in ("JPEG", "MPO")  # MPO: a camera's multi-picture JPEG
        if is_jpeg and (scans := data.count(b"\xff\xda")) > MAX_JPEG_SCANS:
            raise DecodeError("bomb", f"{scans} JPEG scans is over the limit of {MAX_JPEG_SCANS}")
        quantization = _quantization(img) if is_jpeg else None
        orientation = _orientation(img, data)

        if is_jpeg and max(w0, h0) >= 2 * max_side:
            # Ask for at least max_side on the longer side; libjpeg picks 1/2..1/8.
            longer0 = max(w0, h0)
            img.draft("RGB", (-(-w0 * max_side // longer0), -(-h0 * max_side // longer0)))
        # Box reduction (C, fast) by a power of two, like JPEG's DCT scaling: every
        # format then reaches the working size through the same kind of chain, which
        # keeps the sharpness measure comparable between a PNG and its JPEG copy.
        factor = _power_of_two_at_most(max(img.size) // max_side)
        alpha = _has_alpha(img)
        need = peak_bytes(img.size, img.mode, has_alpha=alpha, max_side=max_side, stripped=False)
        # Strips cost CPU (the rows are inflated twice): only where the memory matters.
        stripped = factor >= 2 and need > STRIP_ABOVE_BYTES and png_strips.can_strip(img)
        if stripped:
            need = peak_bytes(img.size, img.mode, has_alpha=alpha, max_side=max_side, stripped=True)
        with _held(budget, need, img):
            widened = False
            if stripped and isinstance(img, ImageFile.ImageFile):
                has_alpha = _has_alpha(img)
                rgb_img = png_strips.decode_reduced(
                    img, data, factor, lambda strip: _to_rgb(strip, has_alpha)
                )
            else:
                img.load()  # the first frame of an animation
                has_alpha = _has_alpha(img)
                widened = mode.startswith("I;16") and _widened(img)
                rgb_img = _to_rgb(img, has_alpha)
                if factor >= 2:
                    rgb_img = rgb_img.reduce(factor)
            if orientation != 1:
                rgb_img = _transpose(rgb_img, orientation)
            # Copy out before the file (and, for plain RGB, the image core) is closed.
            rgb = np.array(rgb_img, dtype=np.uint8)
            del rgb_img
            img.close()  # the full-size image goes before the budget is given back

    if orientation in (5, 6, 7, 8):
        w0, h0 = h0, w0
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.size == 0:
        raise DecodeError("corrupt", f"decoded to an unexpected shape {rgb.shape}")
    return Decoded(
        rgb=rgb,
        width=w0,
        height=h0,
        format=fmt,
        mode=mode,
        has_alpha=has_alpha,
        file_size=len(data),
        quantization=quantization,
        lossless=_lossless(fmt, data),
        animated=animated,
        orientation=orientation,
        scale=max(w0, h0) / max(rgb.shape[0], rgb.shape[1]),
        widened=widened,
    )


_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def _png_chunks_problem(data: bytes) -> DecodeError | None:
    """The PNG's chunks walked once: the first whose CRC is wrong (``corrupt``), or too
    many chunks (``bomb``); None if neither. Pillow checks the CRCs of the chunks before
    the image data only, so damaged image data would decode to garbage rows; libpng
    (browsers, most tools) refuses such a file, and so do we. Pillow also walks every
    chunk in Python: 5 million empty ones (60 MB) took it 30 s. One pass: ~1 ms per MB."""
    view, pos, chunks = memoryview(data), 8, 0
    while pos + 12 <= len(data):
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            return DecodeError("bomb", f"over {MAX_PNG_CHUNKS} PNG chunks")
        (length,) = struct.unpack_from(">I", data, pos)
        end = pos + 8 + length
        if end + 4 > len(data):
            return None  # truncated: Pillow's decoder says so
        (crc,) = struct.unpack_from(">I", data, end)
        kind = bytes(view[pos + 4 : pos + 8])
        if zlib.crc32(view[pos + 4 : end]) != crc:
            name = kind.decode("latin-1")
            return DecodeError("corrupt", f"PNG chunk {name!r} at byte {pos} fails its CRC check")
        if kind == b"IEND":
            return None
        pos = end + 4
    return None


def peak_bytes(
    size: tuple[int, int], mode: str, *, has_alpha: bool, max_side: int, stripped: bool
) -> int:
    """Estimated peak bytes of decoding an image of this size and Pillow mode (after any
    JPEG draft) down to the working size: what the decode holds of the budget."""
    width, height = size
    factor = _power_of_two_at_most(max(width, height) // max_side)
    small = -(-width // factor) * -(-height // factor) * 4 * _SMALL_COPIES + _CODEC_BYTES
    if stripped:
        return png_strips.peak_bytes(width, factor) + small
    pixels = width * height
    if mode.startswith("I;16"):
        extra = _SIXTEEN_EXTRA
    elif mode in ("I", "F"):
        extra = _DEEP_EXTRA
    elif has_alpha:
        extra = _ALPHA_EXTRA
    elif mode == "RGB":
        extra = 0
    else:
        extra = _CONVERT_EXTRA
    return pixels * (_pixel_bytes(mode) + extra) + small


def _pixel_bytes(mode: str) -> int:
    # Pillow stores 1, L and P in a byte a pixel, the 16-bit modes in two, all others in four.
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _held(budget: ByteBudget | None, need: int, img: Image.Image) -> AbstractContextManager[None]:
    if budget is None:
        return nullcontext()
    if need > budget.capacity:
        w, h = img.size
        raise DecodeError(
            "too_large",
            f"decoding {w}x{h} {img.mode} needs about {need >> 20} MiB, more than the "
            f"decode memory budget of {budget.capacity >> 20} MiB",
        )
    return budget.hold(need)


def _power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1) if n >= 1 else 1


# Signatures of formats Pillow does not read here (or reads only with a plugin): the
# bytes are a real file, just not one we decode.
_UNSUPPORTED_MAGIC: Final = (
    (b"%PDF", "PDF"),
    (b"<svg", "SVG"),
    (b"<?xml", "XML/SVG"),
    (b"8BPS", "Photoshop PSD"),
)
# Formats Pillow identifies but decodes only with an outside program (Ghostscript).
_UNSUPPORTED_FORMATS: Final = {"EPS": "PostScript (EPS)"}
# Pillow's refusals of a PNG's compressed text or ICC chunk that inflates past its limit
# (PngImagePlugin.MAX_TEXT_CHUNK, MAX_TEXT_MEMORY): a decompression bomb in the metadata.
_METADATA_BOMB: Final = ("Decompressed data too large", "Too much memory used in text chunks")
_HEIF_BRANDS: Final = (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")


def _unidentified(data: bytes) -> DecodeError:
    head = data[:64].lstrip()
    for magic, name in _UNSUPPORTED_MAGIC:
        if head.startswith(magic):
            return DecodeError("unsupported", f"{name} is not a supported image format")
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return DecodeError("unsupported", "HEIF/HEIC is not a supported image format")
    return DecodeError("corrupt", UNIDENTIFIED)


def _quantization(img: Image.Image) -> dict[int, tuple[int, ...]] | None:
    q = getattr(img, "quantization", None)
    if not isinstance(q, dict) or not q:
        return None
    return {int(k): tuple(int(x) for x in v) for k, v in q.items()}


def _orientation(img: Image.Image, data: bytes) -> int:
    try:
        if img.format == "PNG" and "exif" not in img.info:
            # Pillow's getexif() would decode the whole image to look after the pixels.
            exif = Image.Exif()
            raw = png_strips.exif(data)
            if raw:
                exif.load(raw)
        else:
            exif = img.getexif()
        value = exif.get(0x0112, 1)
        o = int(value)
    except Exception:
        # A malformed EXIF block is common in the wild; it must not fail the image.
        return 1
    return o if 1 <= o <= 8 else 1


_TRANSPOSE: Final = {
    2: (Image.Transpose.FLIP_LEFT_RIGHT,),
    3: (Image.Transpose.ROTATE_180,),
    4: (Image.Transpose.FLIP_TOP_BOTTOM,),
    5: (Image.Transpose.TRANSPOSE,),
    6: (Image.Transpose.ROTATE_270,),
    7: (Image.Transpose.TRANSVERSE,),
    8: (Image.Transpose.ROTATE_90,),
}


def _transpose(img: Image.Image, orientation: int) -> Image.Image:
    # The same mapping as ImageOps.exif_transpose, applied to our already-small RGB
    # image (exif_transpose would also rewrite the EXIF block, which we do not keep).
    for method in _TRANSPOSE[orientation]:
        img = img.transpose(method)
    return img


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        # (a tRNS colour key on 16-bit greyscale is dropped by _deep_to_l: rare, harmless)
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )


def _to_rgb(img: Image.Image, has_alpha: bool) -> Image.Image:
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        img = _deep_to_l(img)
    if has_alpha:
        rgba = img.convert("RGBA")  # P+tRNS, LA, PA, premultiplied modes: all to RGBA
        out = Image.new("RGB", rgba.size, BACKGROUND)
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    if img.mode == "RGB":
        return img
    if img.mode == "LAB":
        return _lab_to_rgb(img)
    return img.convert("RGB")  # L, 1, P, CMYK (Adobe inversion handled), YCbCr, HSV


def _widened(img: Image.Image) -> bool:
    """Every 16-bit sample is an 8-bit one times 257 (how converters widen 8 bits)."""
    return not bool((np.asarray(img) % 257).any())


def _deep_to_l(img: Image.Image) -> Image.Image:
    # Pillow's I;16 -> L conversion clips at 255 instead of scaling: scale ourselves.
    a = np.asarray(img)
    if a.dtype.kind in "ui":
        lo, hi = int(a.min()), int(a.max())
        if 255 < hi <= 65535 and lo >= 0:
            # The common 16-bit case in integers: round(a / 257) == (2a + 257) // 514
            # exactly, at 4 bytes a pixel where float64 took ~30 (the decode's peak).
            wide = a.astype(np.uint32)
            wide *= 2
            wide += 257
            wide //= 514
            return Image.fromarray(wide.astype(np.uint8))
        if lo >= 0 and hi <= 255:
            return Image.fromarray(a.astype(np.uint8))
    return _float_to_l(img, a.astype(np.float64))


def _float_to_l(img: Image.Image, a: npt.NDArray[np.float64]) -> Image.Image:
    finite = a[np.isfinite(a)]
    hi = float(finite.max()) if finite.size else 0.0
    lo = float(finite.min()) if finite.size else 0.0
    if img.mode == "F" and hi <= 1.0 and lo >= 0.0:
        a = a * 255.0  # floats in 0..1
    elif hi > 255.0:
        # 16-bit data (0..65535) scales by 257; anything wider is stretched to its range.
        a = a / 257.0 if hi <= 65535.0 and lo >= 0.0 else (a - lo) * (255.0 / (hi - lo))
    a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def _lab_to_rgb(img: Image.Image) -> Image.Image:
    from PIL import ImageCms

    transform = ImageCms.buildTransform(
        ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
    )
    out = ImageCms.applyTransform(img, transform)
    if out is None:  # pragma: no cover - only for in-place transforms
        raise DecodeError("unsupported", "LAB conversion failed")
    return out


def _lossless(fmt: str, data: bytes) -> bool | None:
    if fmt in LOSSLESS_FORMATS:
        return True
    if fmt in ("JPEG", "MPO"):
        return False
    if fmt == "WEBP":
        # RIFF....WEBP then chunks: VP8L = lossless, VP8 = lossy; VP8X = extended, search.
        chunks = data[12:4096]
        if chunks.startswith(b"VP8L"):
            return True
        if chunks.startswith(b"VP8 "):
            return False
        if b"VP8L" in chunks:
            return True
        if b"VP8 " in chunks:
            return False
    return None


__all__ = [
    "BACKGROUND",
    "DEFAULT_DECODE_MEMORY_BYTES",
    "DecodeError",
    "DecodeErrorKind",
    "Decoded",
    "decode",
    "peak_bytes",
]
