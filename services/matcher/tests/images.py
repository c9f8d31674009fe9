"""Working copies of generated pictures, made as the hasher makes them (cached per run)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from dedup import synthetic
from services.hasher.features import Features, extract
from services.hasher.handler import transform_of_candidate
from services.hasher.hashes import best_dihedral
from services.matcher.decide import HashHint

Edit = Callable[[Image.Image], Image.Image]

# Copies and edits of one capture: all of them must be proven duplicates.
EDITS: dict[str, Edit] = {
    "re-encode": lambda im: im,
    "crop": lambda im: im.crop((im.width // 8, im.height // 10, im.width * 7 // 8, im.height)),
    "caption": synthetic.EDITS["caption"],
    "border": synthetic.EDITS["border"],
    # A frame of a colour that the bar trimming does not take for a bar.
    "grey-frame": lambda im: ImageOps.expand(im, border=im.width // 12, fill=(90, 90, 90)),
    "resize": lambda im: im.resize((im.width // 2, im.height // 2)),
    "blur": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "brightness": lambda im: ImageEnhance.Brightness(im).enhance(0.6),
    "rotate-90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "mirror": ImageOps.mirror,
    # Black corners around the turned picture.
    "rotate-27": lambda im: im.rotate(27, Image.Resampling.BILINEAR, expand=True),
}

PICTURES: dict[str, Callable[[], Image.Image]] = {
    "scene": lambda: synthetic.scene(21),
    "another-shot": lambda: synthetic.scene(21, view=40),
    "photo": lambda: synthetic.photo(22),
    "unrelated": lambda: synthetic.scene(23),
    "light": lambda: synthetic.wallpaper(24),
    "dark": lambda: synthetic.wallpaper(24, dark=True),
}


@functools.cache
def features(picture: str, edit: str | None = None) -> Features:
    image = PICTURES[picture]()
    if edit is not None:
        image = EDITS[edit](image)
    return extract(synthetic.encode(image, quality=85))


def working_copy(picture: str, edit: str | None = None) -> bytes:
    return features(picture, edit).working_copy


def hint(new: tuple[str, str | None], candidate: tuple[str, str | None]) -> HashHint:
    """What the hasher says of the pair (``Scores.pdq_distance``, ``pdq_transform``)."""
    variant, distance = best_dihedral(features(*new).pdq, features(*candidate).pdq.hash)
    return HashHint(distance, transform_of_candidate(variant))
