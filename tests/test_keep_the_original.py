"""The kept copy of a pair is the original: the hasher's features, the matcher's proof
and the ranker's provenance rules together, on generated photos (no stack).

The pair goes the way it does in the pipeline: the matcher's decision recorded on the
copy's group, both groups through the ranker. The cases are the reproductions of issue
12: a copy that scores higher on quality, or whose file claims more, than the original
it was made from.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from dedup import synthetic
from dedup.v1.decisions_pb2 import DecisionKind
from dedup.v1.events_pb2 import BlobEvent
from dedup.v1.features_pb2 import ImageFeatures
from dedup.v1.groups_pb2 import CandidateGroup, Verdict
from services.hasher.features import extract
from services.hasher.handler import fill_features
from services.matcher.decide import decide
from services.matcher.geometry import MatchParams, MatchPolicy, view_of_bytes
from services.matcher.handler import record
from services.ranker.handler import Ranker

Encode = Callable[[Image.Image], bytes]


def jpeg(quality: int) -> Encode:
    def encode(img: Image.Image) -> bytes:
        out = io.BytesIO()
        img.convert("RGB").save(out, "JPEG", quality=quality)
        return out.getvalue()

    return encode


def png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.copy()


def grey_16(img: Image.Image) -> Image.Image:
    return Image.fromarray(np.asarray(ImageOps.grayscale(img), np.uint16) * 257)


def dithered_64(img: Image.Image) -> Image.Image:
    return img.convert("RGB").quantize(64, dither=Image.Dither.FLOYDSTEINBERG)


def captioned(img: Image.Image) -> Image.Image:
    out = img.convert("RGB")
    draw = ImageDraw.Draw(out)
    size = out.height // 10
    font = ImageFont.load_default(size=size)
    draw.text((size, out.height - 2 * size), "summer 2026", fill="white", font=font,
              stroke_width=2, stroke_fill="black")  # fmt: skip
    return out


def logo(img: Image.Image) -> Image.Image:
    out = img.convert("RGB")
    draw = ImageDraw.Draw(out)
    r = min(out.size) // 8
    x, y = out.width - 3 * r, out.height - 3 * r
    draw.ellipse((x, y, x + 2 * r, y + 2 * r), fill=(200, 30, 60), outline="white", width=3)
    return out


def grey_logo(img: Image.Image) -> Image.Image:
    """A colour logo on the picture made grey: colour in a patch only."""
    return logo(ImageOps.grayscale(img).convert("RGB"))


def grey_8(img: Image.Image) -> Image.Image:
    return ImageOps.grayscale(img)


def blurred(img: Image.Image) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(2))


def hue_turned(img: Image.Image) -> Image.Image:
    hsv = np.asarray(img.convert("RGB").convert("HSV"), np.uint8).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int32) + 40) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def grainy_grey(img: Image.Image) -> Image.Image:
    """A grey picture with film grain (sigma 12): a texture whose JPEG at 90 shows no
    blocks to speak of."""
    grey = np.asarray(ImageOps.grayscale(img), np.float32)
    grain = np.random.default_rng(12).normal(0.0, 12.0, grey.shape)
    return Image.fromarray(np.clip(grey + grain, 0, 255).astype(np.uint8))


def group(name: str, data: bytes) -> tuple[CandidateGroup, bytes]:
    """The image's group as the hasher writes it, and its working copy."""
    features = extract(data)
    image = ImageFeatures(image_id=name, e_tag=f"etag-{name}")
    fill_features(image, features, len(data), f"wc/{name}")
    return CandidateGroup(image_id=name, image=image, event=BlobEvent(image_id=name)), (
        features.working_copy
    )


def kept_of(original: bytes, copy: bytes) -> tuple[str, str]:
    """(the kept one of the pair, the copy's reason), through the ranker: the copy's group
    proves the original as the matcher records it."""
    ours, our_copy = group("original", original)
    theirs, their_copy = group("copy", copy)
    params, policy = MatchParams(), MatchPolicy()
    proof = decide(
        view_of_bytes(their_copy, params), view_of_bytes(our_copy, params), params, policy
    )
    assert proof.verdict == Verdict.VERDICT_DUPLICATE, proof.reason
    candidate = theirs.candidates.add(image_id="original", e_tag="etag-original")
    record(candidate, proof, new_is_ours=True)
    ranker = Ranker()
    decisions = {d.image_id: d for g in (ours, theirs) for d in ranker.handle(g).decisions}
    kept = next(i for i, d in decisions.items() if d.kind == DecisionKind.DECISION_KIND_KEEP)
    return kept, decisions["copy"].reason


PHOTO = synthetic.photo(61, size=(800, 600))
JPEG_90 = jpeg(90)(PHOTO)


@pytest.mark.parametrize(
    ("name", "original", "copy"),
    [
        ("a 16-bit greyscale PNG of a colour JPEG (q 90)", JPEG_90, png(grey_16(decoded(JPEG_90)))),
        ("a 64-colour dithered copy of a lossless original", png(PHOTO), png(dithered_64(PHOTO))),
        ("a captioned copy", jpeg(70)(PHOTO), jpeg(90)(captioned(decoded(jpeg(70)(PHOTO))))),
        ("a copy with a logo", jpeg(70)(PHOTO), png(logo(decoded(jpeg(70)(PHOTO))))),
        ("a re-encoded JPEG", JPEG_90, jpeg(50)(decoded(JPEG_90))),
        ("a PNG re-saved from the JPEG", jpeg(70)(PHOTO), png(decoded(jpeg(70)(PHOTO)))),
        (
            "a hue edit re-saved at a higher quality",
            jpeg(70)(PHOTO),
            jpeg(90)(hue_turned(decoded(jpeg(70)(PHOTO)))),
        ),
        (
            "a PNG re-save of a JPEG at 95 (no blocks show: the very pixels tell)",
            jpeg(95)(PHOTO),
            png(decoded(jpeg(95)(PHOTO))),
        ),
        (
            "a colour logo on a grey original",
            png(grey_8(PHOTO)),
            png(grey_logo(PHOTO)),
        ),
        (
            "a 16-bit copy of an 8-bit grey PNG (the very pixels)",
            png(grey_8(PHOTO)),
            png(grey_16(PHOTO)),
        ),
        (
            "a captioned JPEG of a smooth JPEG (the text is no blur of the original)",
            jpeg(92)(PHOTO),
            jpeg(90)(captioned(decoded(jpeg(92)(PHOTO)))),
        ),
        (
            "a captioned JPEG at 90 of a grainy grey PNG (faint blocks, still more than the PNG's)",
            png(grainy_grey(PHOTO)),
            jpeg(90)(captioned(grainy_grey(PHOTO))),
        ),
        (
            "a PNG with a logo of a JPEG at 92 (faint blocks: most of its very pixels tell)",
            jpeg(92)(PHOTO),
            png(logo(decoded(jpeg(92)(PHOTO)))),
        ),
        (
            "a blurred PNG of the JPEG (the demo's)",
            jpeg(85)(PHOTO),
            png(blurred(decoded(jpeg(85)(PHOTO)))),
        ),
    ],
)
def test_the_original_is_kept(name: str, original: bytes, copy: bytes) -> None:
    kept, reason = kept_of(original, copy)
    assert kept == "original", f"{name}: the copy was kept ({reason})"
    assert "of the kept copy" in reason, f"{name}: the copy is not said to derive from it"
