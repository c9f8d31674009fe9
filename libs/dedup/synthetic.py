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


# --- Other shots of one scene, and re-coloured designs: look-alikes that are NOT copies ---


def _texture(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Band-limited random texture, zero mean, about unit standard deviation."""
    small = rng.normal(0, 1, (max(2, int(h / scale)), max(2, int(w / scale)), 1))
    plane = Image.fromarray(small[..., 0].astype(np.float32))
    tex = np.asarray(plane.resize((w, h), Image.Resampling.BICUBIC), np.float32)
    return tex / max(float(tex.std()), 1e-6)


def scene(
    seed: int, view: float = 0.0, size: tuple[int, int] = (640, 480), noise_seed: int | None = None
) -> Image.Image:
    """One shot of a deterministic 3-D scene, taken from horizontal camera position ``view``.

    The scene is a textured far background and textured objects at different depths.
    Moving the camera (``view``, in pixels of shift for the nearest object) shifts each
    layer in proportion to its inverse depth, as in a stereo pair or a hand-held burst:
    no single image transform maps one shot onto another. ``noise_seed`` picks the
    sensor noise (another exposure); by default it follows ``view``.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    # A fixed margin, so that every view draws the same random numbers (the same scene).
    margin = w // 4
    if abs(view) > margin:
        raise ValueError(f"view {view} is too far for a {w}-pixel wide scene")
    big_w = w + 2 * margin
    y, x = np.mgrid[0:h, 0:big_w].astype(np.float32)
    background = np.empty((h, big_w, 3), np.float32)
    for c in range(3):
        a, b, phase = rng.uniform(-1, 1, 3)
        background[..., c] = 120 + 50 * np.sin(a * x / w * 3 + b * y / h * 3 + phase * 6)
    background += 20 * _texture(rng, h, big_w, 10.0)[..., None]
    # The background is far (depth 6): it moves a sixth as much as the nearest object.
    shift = round(view / 6)
    canvas = background[:, margin - shift : margin - shift + w].copy()
    # Far objects first, so that nearer ones cover them.
    for depth in sorted(rng.uniform(1.0, 4.0, int(rng.integers(10, 16))), reverse=True):
        ow, oh = int(rng.integers(w // 6, w // 2)), int(rng.integers(h // 6, h // 2))
        # Anywhere, a third of it out of the frame at most.
        x0 = int(rng.integers(-ow // 3, w - 2 * ow // 3))
        y0 = int(rng.integers(-oh // 3, h - 2 * oh // 3))
        colour = rng.uniform(30, 225, 3).astype(np.float32)
        tex = 35 * _texture(rng, oh, ow, float(rng.uniform(2.0, 5.0)))
        mask_img = Image.new("L", (ow, oh), 0)
        if rng.random() < 0.5:
            ImageDraw.Draw(mask_img).ellipse((0, 0, ow - 1, oh - 1), fill=255)
        else:
            points = [(int(rng.integers(0, ow)), int(rng.integers(0, oh))) for _ in range(5)]
            ImageDraw.Draw(mask_img).polygon(points, fill=255)
        mask = np.asarray(mask_img.filter(ImageFilter.GaussianBlur(1.0)), np.float32) / 255
        dx = x0 + round(view / depth)
        left, right = max(0, dx), min(w, dx + ow)
        if right <= left:
            continue
        top, bottom = max(0, y0), min(h, y0 + oh)
        rows, cols = slice(top - y0, bottom - y0), slice(left - dx, right - dx)
        patch = colour + tex[rows, cols, None]
        m = mask[rows, cols, None]
        region = canvas[top:bottom, left:right]
        canvas[top:bottom, left:right] = m * patch + (1 - m) * region
    noise = np.random.default_rng(noise_seed if noise_seed is not None else seed * 7919 + 1)
    canvas = np.asarray(Image.fromarray(canvas.clip(0, 255).astype(np.uint8)), np.float32)
    canvas += noise.normal(0, 4, canvas.shape)
    return Image.fromarray(canvas.clip(0, 255).astype(np.uint8))


def burst(seed: int, frame: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """Frame ``frame`` of a hand-held burst of ``scene(seed)``: the camera drifts a little
    between frames (parallax) and each frame has its own sensor noise."""
    return scene(seed, view=10.0 * frame, size=size, noise_seed=seed * 7919 + 1 + frame)


def wallpaper(seed: int, dark: bool = False, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A flat-colour design: line art and accents on a light background, or the same design
    in its "dark" variant (dark background, light lines, the same accents). The two are
    different renditions of one design, not a copy and its edit."""
    rng = np.random.default_rng(seed)
    w, h = size
    hue = rng.uniform(0, 1, 3)
    light_bg = tuple(int(v) for v in 215 + 35 * hue)
    dark_bg = tuple(int(v) for v in 20 + 30 * hue)
    ink = (235, 235, 240) if dark else (30, 30, 40)
    img = Image.new("RGB", size, dark_bg if dark else light_bg)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 9))):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        x1, y1 = x0 + int(rng.integers(40, w // 3)), y0 + int(rng.integers(40, h // 3))
        accent = tuple(int(v) for v in rng.integers(60, 200, 3))
        draw.ellipse((x0, y0, x1, y1), fill=accent, outline=ink, width=4)
    for _ in range(int(rng.integers(12, 20))):
        points = [(int(rng.integers(0, w)), int(rng.integers(0, h))) for _ in range(2)]
        draw.line(points, fill=ink, width=int(rng.integers(2, 7)))
    return img.filter(ImageFilter.GaussianBlur(0.7))
