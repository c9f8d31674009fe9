"""imagededup's "transformed" benchmark recipe on our photos, and other shots of one scene.

imagededup (idealo) benchmarks its methods on UKBench photos each with 5 copies: a crop
keeping the aspect ratio (560 x 420 of 640 x 480: 7/8 of each side), a horizontal flip, a
vertical flip, a 25 degree rotation and a resize to a square (its user guide,
"Benchmarks"). Here: the same 5 copies, the crop centred, the rotation as PIL's
`rotate(25)` (the same canvas, black corners: the guide does not say it expands, and
not expanding is the harder case for a hash) and the square at the shorter side. Each
copy is written in its original's format (JPEG quality 90, or PNG).

Photos: the even-indexed (by sorted file name) Unsplash photos of the dev sets (the
odd-indexed ones are kept for tuning elsewhere: never evaluated here) and the photos
among skimage-data's images (not its charts, text, logo or microscopy); no scikit-learn
sample images. Without the dev sets: generated photos (dedup.synthetic).

Hard negatives that must never be merged: other shots of one scene, each its own group
of one family: generated bursts with parallax (dedup.synthetic.burst, as bench/eval.py
makes them) and skimage-data's motorcycle stereo pair.

The labels are a groups.csv as bench/metrics.read_labels reads it (file, group, family,
relation, width, height, md5), written beside the image folder, not in it, so that
every method sees image files only.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PIL import Image

from bench.dev_sets import DEFAULT_DEV
from bench.metrics import Label

Edit = Callable[[Image.Image], Image.Image]

UNSPLASH = "unsplash-coenm-image-suite"
SKIMAGE = "skimage-data"
# skimage-data's photographs (the rest are charts, text, a logo, microscopy, tiny crops).
SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "chelsea.png", "clock_motion.png",
    "coffee.png", "coins.png", "grass.png", "gravel.png", "hubble_deep_field.jpg",
    "moon.png", "rocket.jpg",
)  # fmt: skip
STEREO_PAIR = ("motorcycle_left.png", "motorcycle_right.png")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def crop_7_8(img: Image.Image) -> Image.Image:
    """A centred crop keeping the aspect ratio: 7/8 of each side (560 x 420 of 640 x 480)."""
    w, h = round(img.width * 7 / 8), round(img.height * 7 / 8)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def rotate_25(img: Image.Image) -> Image.Image:
    """25 degrees counter-clockwise on the same canvas (corners black, nothing expanded)."""
    return img.convert("RGB").rotate(25, resample=Image.Resampling.BILINEAR)


def square(img: Image.Image) -> Image.Image:
    """Resized to a square (the aspect ratio changes) at the shorter side."""
    side = min(img.width, img.height)
    return img.resize((side, side), Image.Resampling.LANCZOS)


RECIPE: dict[str, Edit] = {
    "crop-7-8": crop_7_8,
    "flip-h": lambda img: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flip-v": lambda img: img.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "rotate-25": rotate_25,
    "square": square,
}


def even_unsplash(data: Path = DEFAULT_DEV) -> list[Path]:
    """The even-indexed Unsplash photos, by sorted file name (0, 2, 4, ...)."""
    folder = data / UNSPLASH
    if not folder.is_dir():
        return []
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return photos[::2]


def skimage_photos(data: Path = DEFAULT_DEV) -> list[Path]:
    folder = data / SKIMAGE
    return [folder / n for n in SKIMAGE_PHOTOS if (folder / n).is_file()]


def recipe_photos(data: Path = DEFAULT_DEV) -> list[Path]:
    """The photos the recipe is applied to (see the module docstring)."""
    return even_unsplash(data) + skimage_photos(data)


def save(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(out, "JPEG", quality=90)
    else:
        img.save(out, "PNG")
    return out.getvalue()


def label_row(name: str, data: bytes, group: str, family: str, relation: str) -> Label:
    with Image.open(io.BytesIO(data)) as img:
        w, h = img.size
    return Label(
        name, group, family, relation, w, h, hashlib.md5(data, usedforsecurity=False).hexdigest()
    )


def recipe_copies(name: str, data: bytes) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, edit) of the original (as it is) and its 5 copies."""
    stem, suffix = name.rsplit(".", 1)
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        fmt = "JPEG" if img.format == "JPEG" else "PNG"
        ext = "jpg" if fmt == "JPEG" else "png"
        out = [(f"{stem}.{suffix}", data, "original")]
        for edit, fn in RECIPE.items():
            out.append((f"{stem}-{edit}.{ext}", save(fn(img), fmt), edit))
    return out


def write_labels(labels: Sequence[Label], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "group", "family", "relation", "width", "height", "md5"])
        for x in labels:
            writer.writerow([x.file, x.group, x.family, x.relation, x.width, x.height, x.md5])


def write_recipe_set(
    images: Path,
    labels_dir: Path,
    data: Path = DEFAULT_DEV,
    scenes: int = 4,
    frames: int = 3,
    generated: int = 40,
    seed: int = 47,
) -> list[Label]:
    """The recipe set under `images`, its groups.csv in `labels_dir`; returns the labels.

    Without the dev sets, `generated` photos of dedup.synthetic stand in for the real ones."""
    from dedup import synthetic

    images.mkdir(parents=True, exist_ok=True)
    labels: list[Label] = []

    def put(name: str, blob: bytes, group: str, family: str, relation: str) -> None:
        (images / name).parent.mkdir(parents=True, exist_ok=True)
        (images / name).write_bytes(blob)
        labels.append(label_row(name, blob, group, family, relation))

    sources: list[tuple[str, bytes]] = [
        (f"{p.parent.name}/{p.name}", p.read_bytes()) for p in recipe_photos(data)
    ]
    if not sources:
        sources = [
            (f"generated/photo-{i:03d}.jpg", synthetic.encode(synthetic.photo(seed * 1000 + i)))
            for i in range(generated)
        ]
    for name, blob in sources:
        group = name.rsplit(".", 1)[0]
        for file, copy, edit in recipe_copies(name, blob):
            put(file, copy, group, group, edit)
    for s in range(scenes):  # bursts: every frame its own group, one family
        family = f"scene-{s}"
        for frame in range(frames):
            shot = synthetic.burst(seed * 1000 + 900 + s, frame)
            put(f"bursts/{family}-frame-{frame}.jpg", synthetic.encode(shot, quality=92),
                f"{family}-frame-{frame}", family, "other shot")  # fmt: skip
    stereo = [data / SKIMAGE / n for n in STEREO_PAIR]
    if all(p.is_file() for p in stereo):
        for p in stereo:
            put(f"stereo/{p.name}", p.read_bytes(), p.stem, "motorcycle-stereo", "other shot")
    write_labels(labels, labels_dir / "groups.csv")
    return labels


def other_shots_merged(
    predicted: Mapping[str, str], labels: Mapping[str, Label]
) -> tuple[int, int]:
    """(pairs of other shots put in one cluster, pairs of other shots): files of one
    family in different groups, where the family is not the group itself."""
    shots = [x for x in labels.values() if x.family and x.family != x.group]
    merged = total = 0
    for i, a in enumerate(shots):
        for b in shots[i + 1 :]:
            if a.family == b.family and a.group != b.group:
                total += 1
                merged += predicted.get(a.file, a.file) == predicted.get(b.file, b.file)
    return merged, total
