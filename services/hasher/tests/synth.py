"""Seeded synthetic images and edits for the hasher's tests (no files on disk needed)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFilter


def photo(seed: int, width: int = 800, height: int = 600) -> Image.Image:
    """A photo-like RGB image: smooth gradients, shapes, text, a little blur and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    fx, fy, fd = rng.uniform(1.0, 6.0, 3)
    px, pd = rng.uniform(0.0, 6.0, 2)
    amp = rng.uniform(80.0, 255.0, 3)
    base = np.stack(
        [
            (np.sin(xx / width * fx + px) * 0.5 + 0.5) * amp[0],
            (yy / height) ** (fy / 3.0) * amp[1],
            (np.cos((xx + yy) / (width + height) * fd + pd) * 0.5 + 0.5) * amp[2],
        ],
        axis=-1,
    )
    img = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        size = rng.uniform(0.05, 0.35) * width
        box = [x0, y0, x0 + size, y0 + size * rng.uniform(0.5, 1.5)]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    for _ in range(3):
        xy = (rng.uniform(0, width * 0.7), rng.uniform(0, height * 0.9))
        draw.text(xy, f"dedup {rng.integers(1000)}", fill=(255, 255, 255), font_size=height // 15)
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32)
    arr += rng.normal(0.0, 3.0, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str = "JPEG", **params: Any) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG" and "quality" not in params:
        params["quality"] = 95
    img.save(out, fmt, **params)
    return out.getvalue()


def jpeg(img: Image.Image, quality: int = 95, **params: Any) -> bytes:
    return encode(img, "JPEG", quality=quality, **params)


def png(img: Image.Image, **params: Any) -> bytes:
    return encode(img, "PNG", **params)


def resized(img: Image.Image, factor: float) -> Image.Image:
    w, h = img.size
    return img.resize(
        (max(1, round(w * factor)), max(1, round(h * factor))), Image.Resampling.LANCZOS
    )


def cropped(img: Image.Image, keep: float) -> Image.Image:
    """The centre ``keep`` fraction of each side."""
    w, h = img.size
    dw, dh = round(w * (1 - keep) / 2), round(h * (1 - keep) / 2)
    return img.crop((dw, dh, w - dw, h - dh))


def letterboxed(img: Image.Image, bar: float = 0.15, colour: int = 0) -> Image.Image:
    w, h = img.size
    pad = round(h * bar)
    out = Image.new("RGB", (w, h + 2 * pad), (colour, colour, colour))
    out.paste(img, (0, pad))
    return out


def noisy(img: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0.0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def logo_alpha(seed: int, size: int = 256) -> npt.NDArray[np.uint8]:
    """An alpha mask with a random logo-like shape (ellipses, bars and a letter)."""
    rng = np.random.default_rng(seed)
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(4):
        x0, y0 = rng.uniform(0, size * 0.6, 2)
        w, h = rng.uniform(size * 0.15, size * 0.4, 2)
        if rng.random() < 0.5:
            draw.ellipse([x0, y0, x0 + w, y0 + h], fill=255)
        else:
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=255)
    draw.text((size * 0.3, size * 0.3), "ABCDEFGH"[seed % 8], fill=255, font_size=size // 2)
    return np.asarray(mask)


def wallpaper(light: bool, width: int = 640, height: int = 400) -> Image.Image:
    """One design in a light and a dark colour scheme (same shapes, re-coloured)."""
    bg, fg, accent = (
        ((236, 240, 244), (60, 90, 160), (230, 120, 40))
        if light
        else ((18, 20, 28), (110, 150, 230), (250, 170, 90))
    )
    img = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(img)
    for i in range(6):
        x = 40 + i * 100
        draw.ellipse([x, 120 + (i % 2) * 60, x + 80, 200 + (i % 2) * 60], fill=fg)
    draw.rectangle([0, height - 60, width, height - 40], fill=accent)
    return img
