"""Is a file an image at all? A text file or an archive among photos is not an image that
could not be read: it is reported apart (status `not_an_image`), by `dedup scan` and
`dedup report` alike, from what the hasher decided.

A file is taken for no image when no image format recognised its bytes (the hasher's
decoder says so in its reason: UNIDENTIFIED) and its name is not an image's either (an
image format's extension or a MIME type image/*). Anything else that does not decode stays
a broken image: a truncated JPEG is recognised as a JPEG, and a file named .jpg was meant
to be a picture.
"""

from __future__ import annotations

import mimetypes
from functools import cache
from pathlib import PurePosixPath
from typing import Final

# The hasher's reason for bytes that no image format recognised (services/hasher/decode.py
# says it with this constant).
UNIDENTIFIED: Final = "not a decodable image (unknown or damaged header)"
# Formats (Pillow's names) that always store their pixels losslessly (WebP may or may not;
# TIFF may hold JPEG, rare for photos people upload). The hasher's decoder marks these
# lossless; the ranker tells a lossless file by them, since a quality score that penalises
# a lossless file holding a JPEG's pixels no longer does.
LOSSLESS_FORMATS: Final = frozenset(
    {"PNG", "BMP", "TIFF", "PPM", "TGA", "QOI", "ICO", "DIB", "PCX"}
)
# Image formats that Pillow does not list (some we do not decode, but they are images).
_EXTRA_IMAGE_SUFFIXES: Final = frozenset({".heic", ".heif", ".avif", ".jxl", ".svg", ".raw"})


@cache
def _image_suffixes() -> frozenset[str]:
    from PIL import Image  # here: only a file that did not decode needs Pillow's table

    return frozenset(Image.registered_extensions()) | _EXTRA_IMAGE_SUFFIXES


def has_image_name(name: str) -> bool:
    """Whether a file's name is an image's: an image format's extension or MIME type."""
    suffix = PurePosixPath(name).suffix.lower()
    kind = mimetypes.guess_type(name)[0] or ""
    return kind.startswith("image/") or suffix in _image_suffixes()


def not_an_image(name: str, status: str, reason: str) -> str | None:
    """Why the file `name`, which the hasher gave `status` and `reason`, is no image at
    all; None when it may be one (it decoded, its bytes were recognised, or its name says
    it is an image)."""
    if status != "corrupt" or not reason.endswith(UNIDENTIFIED) or has_image_name(name):
        return None
    kind = mimetypes.guess_type(name)[0]
    what = f" ({kind})" if kind else ""
    return f"not an image{what}: no image format recognised its bytes, nor its name"
