"""Generated photos and their edits, for tests, benchmarks and the demo.

Every picture comes from a seed, so a test can make the same set again; nothing is
downloaded. A "photo" is a smooth background with random shapes, texture and sensor
noise: enough structure for hashes and local features to behave as on real pictures.
"""

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

Edit = Callable[[Image.Image], Image.Image]


def photo(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic synthetic photograph."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.empty((h, w, 3), np.float32)
    for c in range(3):
        a, b, phase = rng.uniform(-1, 1, 3)
        base[..., c] = 128 + 60 * np.sin(a * x / w * 3 + b * y / h * 3 + phase * 6)
    img = Image.fromarray(base.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(8, 16))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(4)]
            draw.polygon(points, fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.2))
    noise = rng.normal(0, 6, (h, w, 3))
    return Image.fromarray((np.asarray(img, np.float32) + noise).clip(0, 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=quality)
    else:
        img.save(out, fmt)
    return out.getvalue()


def _resized(factor: float) -> Edit:
    return lambda img: img.resize((int(img.width * factor), int(img.height * factor)))


def _cropped(fraction: float) -> Edit:
    def crop(img: Image.Image) -> Image.Image:
        dx, dy = int(img.width * fraction / 2), int(img.height * fraction / 2)
        return img.crop((dx, dy, img.width - dx, img.height - dy))

    return crop


def _captioned(img: Image.Image) -> Image.Image:
    out = img.copy()
    draw = ImageDraw.Draw(out)
    band = out.height // 8
    draw.rectangle((0, out.height - band, out.width, out.height), fill=(0, 0, 0))
    draw.text((10, out.height - band + band // 4), "holiday 2026 - do not share", fill="white")
    return out


def _bordered(img: Image.Image) -> Image.Image:
    return ImageOps.expand(img, border=img.width // 12, fill=(255, 255, 255))


EDITS: dict[str, Edit] = {
    "resize-half": _resized(0.5),
    "resize-up": _resized(1.5),
    "crop-10": _cropped(0.10),
    "grey": lambda img: ImageOps.grayscale(img).convert("RGB"),
    "brighter": lambda img: ImageEnhance.Brightness(img).enhance(1.3),
    "caption": _captioned,
    "border": _bordered,
    "rotate-90": lambda img: img.transpose(Image.Transpose.ROTATE_90),
    "mirror": ImageOps.mirror,
    "blur": lambda img: img.filter(ImageFilter.GaussianBlur(2)),
}


@dataclass(frozen=True)
class SampleFile:
    name: str
    data: bytes
    group: str  # the original's name: files of one group are duplicates of each other
    edit: str


def sample_set(originals: int, edits_per_original: int, seed: int = 0) -> list[SampleFile]:
    """Originals (JPEG q 92) and, for some of them, edited copies in JPEG, PNG or WebP."""
    rng = np.random.default_rng(seed)
    names = sorted(EDITS)
    files = []
    for i in range(originals):
        original = photo(seed * 10_000 + i)
        group = f"photo-{i:03d}"
        files.append(SampleFile(f"{group}.jpg", encode(original, quality=92), group, "original"))
        if i % 2:  # half the originals stay unique
            continue
        for edit in rng.choice(names, size=min(edits_per_original, len(names)), replace=False):
            fmt, ext = [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")][int(rng.integers(3))]
            edited = EDITS[str(edit)](original)
            name = f"{group}-{edit}.{ext}"
            files.append(SampleFile(name, encode(edited, fmt, quality=80), group, str(edit)))
    return files
