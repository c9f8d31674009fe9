"""Is a file an image at all? A text file or an archive in a photo folder is not an image
that could not be read: it is reported apart (status `not_an_image`).

A file is taken for no image when neither its first bytes (the signature of every common
image format) nor its name (an image format's extension, or a MIME type image/*) say
it is one. Anything else that does not decode stays a broken image: a truncated JPEG still
starts as one, and a file named .jpg was meant to be a picture.
"""

from __future__ import annotations

import mimetypes
from functools import cache
from pathlib import PurePosixPath
from typing import Final

# Enough of a file's head to see every signature below.
HEAD_BYTES: Final = 16

# Signatures at the start of a file (ISO BMFF and RIFF ones are checked apart).
_SIGNATURES: Final = (
    b"\xff\xd8\xff",  # JPEG, MPO
    b"\x89PNG\r\n\x1a\n",  # PNG, APNG
    b"GIF87a",
    b"GIF89a",
    b"BM",  # BMP
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
    b"II+\x00",  # BigTIFF
    b"MM\x00+",
    b"\x00\x00\x01\x00",  # ICO
    b"\x00\x00\x02\x00",  # CUR
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JPEG 2000 (JP2)
    b"\xff\x4f\xff\x51",  # JPEG 2000 codestream
    b"\xff\x0a",  # JPEG XL codestream
    b"\x00\x00\x00\x0cJXL \r\n\x87\n",  # JPEG XL container
    b"qoif",  # QOI
    b"DDS ",  # DirectDraw Surface
    b"8BPS",  # Photoshop
    b"\x01\xda",  # SGI
    b"icns",  # Apple icon
    b"\x76\x2f\x31\x01",  # OpenEXR
    b"#?RADIANCE",  # HDR
    b"%!PS-Adobe",  # EPS
    b"<svg",
)
_ISO_BMFF_BRANDS: Final = (b"avif", b"avis", b"heic", b"heix", b"hevc", b"mif1", b"msf1")
# Image formats Pillow reads whose files have no signature of their own (TGA, PCX, PPM's
# one-letter "P1".."P7" is too weak to tell from text): their names say what they are.
_EXTRA_IMAGE_SUFFIXES: Final = frozenset({".heic", ".heif", ".avif", ".jxl", ".svg", ".raw"})


def has_image_signature(head: bytes) -> bool:
    """Whether a file's first bytes are those of an image format."""
    if head.startswith(_SIGNATURES):
        return True
    if head[4:8] == b"ftyp" and head[8:12] in _ISO_BMFF_BRANDS:
        return True
    return head[:4] == b"RIFF" and head[8:12] == b"WEBP"


@cache
def _image_suffixes() -> frozenset[str]:
    from PIL import Image  # here: only a folder with a broken file needs Pillow's table

    return frozenset(Image.registered_extensions()) | _EXTRA_IMAGE_SUFFIXES


def has_image_name(name: str) -> bool:
    """Whether a file's name is an image's: an image format's extension or MIME type."""
    suffix = PurePosixPath(name).suffix.lower()
    kind = mimetypes.guess_type(name)[0] or ""
    return kind.startswith("image/") or suffix in _image_suffixes()


def not_an_image(name: str, head: bytes) -> str | None:
    """Why the file `name`, starting with `head`, is no image at all; None when its bytes
    or its name say it is one (or its head is empty: an empty file is an empty image)."""
    if not head or has_image_signature(head) or has_image_name(name):
        return None
    kind = mimetypes.guess_type(name)[0]
    what = f" ({kind})" if kind else ""
    return f"not an image{what}: neither its bytes nor its name are an image format's"
