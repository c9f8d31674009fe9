"""The bad-input corpus: odd, broken and hostile files, made here from generated photos
(nothing committed, nothing downloaded), each with the status the pipeline must give it.

`cases()` is every byte-level kind: what `dedup scan` reads from a folder and what the
pipeline reads from blob storage. The filesystem-only kinds (unreadable, links, FIFO)
need a folder: `make_filesystem_kinds` writes them.

A case's `group` says which duplicates it may merge with: the same picture saved in
another format or mode is a copy of it. Any other merge is a false positive, and a file
that cannot be read must stay alone.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image

from dedup import synthetic
from tests.support.clusters import partition

OK: Final = "ok"
CORRUPT: Final = "corrupt"
UNSUPPORTED: Final = "unsupported"
BOMB: Final = "bomb"
EMPTY: Final = "empty"
MISSING: Final = "missing"

# Small pictures keep the corpus cheap to decode and match; one size for all copies.
SIZE: Final = (320, 240)
# The hasher's download limit in these tests (the default is 100 MiB: too much to upload
# in a test), so that one file can be over it; every other case is well under it.
MAX_DOWNLOAD: Final = 3 << 20
HASHER_ENV: Final = {"DEDUP_HASHER_BLOB_MAX_DOWNLOAD_BYTES": str(MAX_DOWNLOAD)}
TOO_LARGE: Final = "too_large"
# Just under the hasher's pixel limit (decode.DEFAULT_MAX_PIXELS = 1 << 27 = 134,217,728).
UNDER_LIMIT_SIDE: Final = 11500


@dataclass(frozen=True)
class Case:
    kind: str  # what it is, for messages
    name: str  # the blob name, or the path under the scanned folder
    data: bytes
    status: str  # the status label it must get (dedup.report.model.status_label)
    group: str = ""  # ok files of one group may merge; "" : alone

    @property
    def storable(self) -> bool:
        """Whether a folder or a blob container can hold it under its name: a `.` or `..`
        segment is resolved away by the path (or the blob URL), so only an event names it."""
        return not {".", ".."} & set(self.name.split("/"))


@functools.cache
def photo(seed: int) -> Image.Image:
    return synthetic.photo(seed, SIZE)


def save(img: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **params)
    return out.getvalue()


# ---- hand-made files ------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def flat_png(width: int, height: int, colour: tuple[int, int, int], level: int = 6) -> bytes:
    """A single-colour RGB PNG of any size, compressed row by row (never held whole)."""
    row = b"\x00" + bytes(colour) * width
    z = zlib.compressobj(level)
    rows_per_block = max(1, (1 << 22) // len(row))
    parts, left = [], height
    while left:
        n = min(left, rows_per_block)
        parts.append(z.compress(row * n))
        left -= n
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def bomb_png(side: int = 100_000) -> bytes:
    """A PNG that declares side x side pixels but holds a few bytes of them."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def bomb_gif(side: int = 65535) -> bytes:
    """A GIF whose screen and only frame declare side x side pixels."""
    screen = (
        b"GIF89a" + struct.pack("<HH", side, side) + b"\x80\x00\x00" + b"\x00" * 3 + b"\xff" * 3
    )
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, side, side) + b"\x00" + b"\x02\x02\x4c\x01\x00"
    return screen + frame + b"\x3b"


def with_bad_crc(png: bytes) -> bytes:
    """The IHDR chunk's CRC flipped (bytes 29..32 of every PNG)."""
    return png[:29] + bytes(b ^ 0xFF for b in png[29:33]) + png[33:]


def png_with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """`png` with one more chunk right after IHDR (which ends at byte 33)."""
    return png[:33] + png_chunk(kind, data) + png[33:]


def chunk_bomb(png: bytes, chunks: int = 200_000) -> bytes:
    """`png` with that many empty private chunks before its image data (2.4 MB)."""
    return png[:33] + png_chunk(b"prVt", b"") * chunks + png[33:]


def text_bomb(png: bytes) -> bytes:
    """A zTXt comment of 8 MB of one letter, compressed to ~8 KB."""
    return png_with_chunk(png, b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (8 << 20), 9))


def icc_bomb(png: bytes) -> bytes:
    """An iCCP profile of 16 MB of zeros, compressed to ~16 KB."""
    return png_with_chunk(png, b"iCCP", b"icc\x00\x00" + zlib.compress(bytes(16 << 20), 9))


def bmp_declaring(bmp: bytes, width: int, height: int) -> bytes:
    """A BMP whose header declares another size (bytes 18..26: width, height)."""
    out = bytearray(bmp)
    struct.pack_into("<ii", out, 18, width, height)
    return bytes(out)


def top_down_bmp(img: Image.Image) -> bytes:
    """A BMP stored top row first: a negative height, valid and rarer."""
    return bmp_declaring(save(img, "BMP"), img.width, -img.height)


def zero_size_png() -> bytes:
    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b""))


def zero_height_jpeg(jpeg: bytes) -> bytes:
    """The frame header (SOF0) says 0 lines."""
    out = bytearray(jpeg)
    struct.pack_into(">H", out, out.index(b"\xff\xc0") + 5, 0)
    return bytes(out)


def scan_bomb_jpeg(side: int = 4096, scans: int = 1000) -> bytes:
    """A progressive grey JPEG with `scans` more scans of 40 bytes each: every one makes
    libjpeg pass over all side**2 / 64 blocks (each scan's data is end-of-band runs of
    16384 blocks, one Huffman code of one bit plus 14 zero bits)."""
    base = save(Image.new("L", (side, side), 128), "JPEG", progressive=True)
    # An AC table (class 1, id 1) of one code, "0", for EOB14 (0xE0): a run of 2^14+bits.
    dht = b"\xff\xc4" + struct.pack(">H", 20) + b"\x11" + bytes([1] + [0] * 15) + b"\xe0"
    # One component (id 1), DC table 0 / AC table 1, coefficients 1..63, no refinement.
    sos = b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, 1, 0x01, 1, 63, 0)
    runs = (side // 8) ** 2 // (1 << 14)
    data = bytes(-(-runs * 15 // 8))  # all zero bits (the last byte's padding included)
    return base[:-2] + dht + (sos + data) * scans + b"\xff\xd9"


def int32_tiff(img: Image.Image) -> bytes:
    grey = np.asarray(img.convert("L"), np.int32) * 1000
    return save(Image.fromarray(grey), "TIFF")  # int32: mode I


EPS: Final = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n0 0 moveto\nshowpage\n"
ZERO_SIZE_GIF: Final = b"GIF89a\x00\x00\x00\x00\x00\x00\x00;"


def corrupted_middle(data: bytes, length: int = 64) -> bytes:
    """`length` bytes in the middle of the file overwritten with a fixed junk pattern."""
    mid = len(data) // 2
    return data[:mid] + bytes((i * 37 + 11) % 256 for i in range(length)) + data[mid + length :]


def exif_jpeg(img: Image.Image, exif: bytes) -> bytes:
    return save(img, "JPEG", quality=90, exif=exif)


def orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def broken_ifd_exif() -> bytes:
    """EXIF whose first IFD says 400 entries and whose next-IFD offset points far away."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 400) + b"\x01\x12\x00\x03"
    return b"Exif\x00\x00" + tiff + struct.pack(">I", 0x7FFFFFF0)


def huge_icc_jpeg(img: Image.Image, size: int = 2 << 20) -> bytes:
    """A JPEG carrying a 2 MB ICC profile of junk (split over many APP2 segments)."""
    junk = bytes((i * 131 + 7) % 256 for i in range(size))
    return save(img, "JPEG", quality=90, icc_profile=junk)


def multi_frame(img: Image.Image, n: int = 3) -> list[Image.Image]:
    """The picture and n-1 slightly brightened frames (an animation of one picture)."""
    a = np.asarray(img, np.int16)
    return [Image.fromarray(np.clip(a + 8 * i, 0, 255).astype(np.uint8)) for i in range(n)]


def animated(img: Image.Image, fmt: str, **params: object) -> bytes:
    first, *rest = multi_frame(img)
    return save(first, fmt, save_all=True, append_images=rest, duration=100, loop=0, **params)


def deep(img: Image.Image) -> Image.Image:
    """16-bit greyscale (I;16) of the picture, its full range used."""
    grey = np.asarray(img.convert("L"), np.uint16) * 257
    return Image.fromarray(grey)  # uint16: I;16


def float_tiff(img: Image.Image) -> bytes:
    grey = np.asarray(img.convert("L"), np.float32) / 255.0
    return save(Image.fromarray(grey), "TIFF")  # float32: F


def heic_header() -> bytes:
    """The start of an HEIC file: an `ftyp` box with the heic brand, then junk."""
    ftyp = struct.pack(">I", 24) + b"ftypheic" + b"\x00\x00\x00\x00" + b"mif1heic"
    return ftyp + struct.pack(">I", 16) + b"meta" + b"\x00" * 8 + b"\x00" * 512


SVG: Final = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<circle cx="50" cy="50" r="40" fill="red"/></svg>\n'
)


def hostile_names() -> list[str]:
    """Blob names and file names that break naive code: paths, markup, shells, formats."""
    return [
        "hostile/line\nbreak.jpg",
        "hostile/tab\tand\rreturn.jpg",
        "hostile/<img src=x onerror=alert(1)><script>.jpg",
        "hostile/\"quotes\" & 'apostrophes' `$(id)`.jpg",
        "hostile/ünïcødé 名前 🖼.jpg",
        "hostile/\u202egpj.exe",  # right-to-left override
        "hostile/" + "long-" * 48 + ".jpg",  # 245 bytes: near a file name's 255
        "-rf --help.jpg",  # at the top: a path that starts with a dash
        "hostile/  spaces  around  .jpg",
        "hostile/100%25 %s %n %00 %2e%2e%2f.jpg",
        '=HYPERLINK("x")+cmd.jpg',  # a formula, to a spreadsheet
    ]


# ---- the corpus -----------------------------------------------------------------------------


Maker = Callable[[], bytes]
Row = tuple[str, str, str, str, Maker]  # kind, name, status, group, make


def family(status: str, group: str, rows: list[tuple[str, str, Maker]]) -> list[Row]:
    return [(kind, name, status, group, make) for kind, name, make in rows]


def _copies() -> list[Row]:
    """Four pictures, each in many formats, modes and variants: copies of each other."""
    fmt, mode, anim, jpg = photo(7101), photo(7102), photo(7103), photo(7104)
    jpeg = functools.partial(save, jpg, "JPEG", quality=90)
    png = functools.partial(save, fmt, "PNG")
    return [
        *family(OK, "formats", [
            ("PNG", "formats/picture.png", png),
            ("PNG named .jpg", "formats/png-named.jpg", png),
            ("BMP", "formats/picture.bmp", lambda: save(fmt, "BMP")),
            ("TGA", "formats/picture.tga", lambda: save(fmt, "TGA")),
            ("ICO", "formats/picture.ico", lambda: save(fmt, "ICO")),
            ("PPM", "formats/picture.ppm", lambda: save(fmt, "PPM")),
            ("WebP lossless", "formats/lossless.webp", lambda: save(fmt, "WEBP", lossless=True)),
            ("JPEG 2000", "formats/picture.jp2", lambda: save(fmt, "JPEG2000")),
            ("AVIF", "formats/picture.avif", lambda: save(fmt, "AVIF")),
            ("QOI", "formats/picture.qoi", lambda: save(fmt, "QOI")),
            ("DDS", "formats/picture.dds", lambda: save(fmt, "DDS")),
            ("PCX", "formats/picture.pcx", lambda: save(fmt, "PCX")),
            ("SGI", "formats/picture.sgi", lambda: save(fmt, "SGI")),
            ("top-down BMP", "formats/top-down.bmp", lambda: top_down_bmp(fmt)),
        ]),
        *family(OK, "modes", [
            ("CMYK JPEG", "modes/cmyk.jpg", lambda: save(mode.convert("CMYK"), "JPEG")),
            ("RGB PNG", "modes/rgb.png", lambda: save(mode, "PNG")),
            ("16-bit PNG", "modes/grey16.png", lambda: save(deep(mode), "PNG")),
            ("16-bit TIFF", "modes/grey16.tiff", lambda: save(deep(mode), "TIFF")),
            ("float TIFF", "modes/float.tiff", lambda: float_tiff(mode)),
            ("alpha PNG", "modes/alpha.png", lambda: save(mode.convert("RGBA"), "PNG")),
            ("grey+alpha PNG", "modes/grey-alpha.png", lambda: save(mode.convert("LA"), "PNG")),
            ("palette PNG", "modes/palette.png", lambda: save(mode.quantize(64), "PNG")),
            ("1-bit PNG", "modes/bilevel.png", lambda: save(mode.convert("1"), "PNG")),
            ("LAB TIFF", "modes/lab.tiff", lambda: save(mode.convert("LAB"), "TIFF")),
            ("YCbCr TIFF", "modes/ycbcr.tiff", lambda: save(mode.convert("YCbCr"), "TIFF")),
            ("32-bit integer TIFF", "modes/int32.tiff", lambda: int32_tiff(mode)),
        ]),
        *family(OK, "anim", [
            ("animated GIF", "anim/animated.gif", lambda: animated(anim, "GIF")),
            ("animated WebP", "anim/animated.webp", lambda: animated(anim, "WEBP")),
            ("APNG", "anim/animated.png", lambda: animated(anim, "PNG")),
            ("multi-page TIFF", "anim/pages.tiff", lambda: animated(anim, "TIFF")),
        ]),
        *family(OK, "jpeg", [
            ("baseline JPEG", "jpeg/baseline.jpg", jpeg),
            ("MPO (two pictures)", "jpeg/stereo.mpo", lambda: animated(jpg, "MPO")),
            ("progressive JPEG", "jpeg/progr.jpg", lambda: save(jpg, "JPEG", progressive=True)),
            ("trailing garbage", "jpeg/trailing.jpg", lambda: jpeg() + b"\x00garbage" * 512),
            ("EXIF orientation 9", "jpeg/orient-9.jpg", lambda: exif_jpeg(jpg, orientation(9))),
            ("EXIF orientation 6", "jpeg/orient-6.jpg", lambda: exif_jpeg(jpg, orientation(6))),
            ("broken EXIF IFD", "jpeg/broken-ifd.jpg", lambda: exif_jpeg(jpg, broken_ifd_exif())),
            ("huge ICC profile", "jpeg/huge-icc.jpg", lambda: huge_icc_jpeg(jpg)),
            # libjpeg decodes damaged entropy-coded data (grey blocks), as browsers show it
            ("corrupted middle JPEG", "jpeg/damaged.jpg", lambda: corrupted_middle(jpeg())),
        ]),
    ]  # fmt: skip


def _unreadable() -> list[Row]:
    pic = photo(7105)
    jpeg = functools.partial(save, pic, "JPEG", quality=90)
    png = functools.partial(save, pic, "PNG")
    return [
        *family(EMPTY, "", [("zero bytes", "broken/zero-bytes.jpg", lambda: b"")]),
        *family(CORRUPT, "", [
            ("whitespace only", "broken/blank.png", lambda: b" \n\t\n"),
            ("truncated JPEG", "broken/truncated.jpg", lambda: jpeg()[: len(jpeg()) // 3]),
            ("truncated PNG", "broken/truncated.png", lambda: png()[: len(png()) // 2]),
            ("JPEG header only", "broken/header-only.jpg", lambda: jpeg()[:200]),
            ("corrupted middle PNG", "broken/damaged.png", lambda: corrupted_middle(png())),
            ("PNG with bad CRC", "broken/bad-crc.png", lambda: with_bad_crc(png())),
            ("text named .jpg", "broken/text.jpg", lambda: b"shopping list: milk, eggs\n" * 20),
            ("HTML named .png", "broken/page.png", lambda: b"<html><body>hi</body></html>\n"),
            ("PNG of 0x0", "broken/zero-size.png", zero_size_png),
            ("GIF of 0x0", "broken/zero-size.gif", lambda: ZERO_SIZE_GIF),
            ("JPEG of 0 lines", "broken/zero-lines.jpg", lambda: zero_height_jpeg(jpeg())),
            ("truncated WebP", "broken/truncated.webp", lambda: save(pic, "WEBP")[:3000]),
            ("markup name, broken", "broken/<b>bold</b> & <i>it</i>.jpg", lambda: jpeg()[:999]),
        ]),
        *family(UNSUPPORTED, "", [
            ("SVG", "unsupported/drawing.svg", lambda: SVG),
            ("SVG named .png", "unsupported/drawing.png", lambda: b'<?xml version="1.0"?>\n' + SVG),
            ("HEIC", "unsupported/photo.heic", heic_header),
            ("EPS", "unsupported/drawing.eps", lambda: EPS),
            ("PDF", "unsupported/doc.pdf", lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\n"),
        ]),
        *family(TOO_LARGE, "", [
            ("over the download limit", "broken/big.jpg", lambda: jpeg() + bytes(MAX_DOWNLOAD)),
        ]),
        *family(BOMB, "", [
            ("bomb PNG", "bomb/bomb.png", bomb_png),
            ("bomb GIF", "bomb/bomb.gif", bomb_gif),
            ("bomb BMP", "bomb/bomb.bmp", lambda: bmp_declaring(save(pic, "BMP"), 30000, 30000)),
            ("text-chunk bomb PNG", "bomb/text.png", lambda: text_bomb(png())),
            ("progressive JPEG scan bomb", "bomb/scans.jpg", scan_bomb_jpeg),
            ("PNG of 200,000 chunks", "bomb/chunks.png", lambda: chunk_bomb(png())),
            ("ICC-chunk bomb PNG", "bomb/icc.png", lambda: icc_bomb(png())),
        ]),
    ]  # fmt: skip


def _shapes(heavy: bool) -> list[Row]:
    """Odd sizes, each its own picture; `heavy`: with the one just under the pixel limit."""
    rows = [
        ("1x1", "shapes/one-pixel.png", OK, "1x1", lambda: save(one_pixel(), "PNG")),
        ("20000x1", "shapes/wide.png", OK, "wide", lambda: flat_png(20000, 1, (40, 200, 40))),
        ("1x20000", "shapes/tall.png", OK, "tall", lambda: save(tall(), "PNG")),
    ]
    if heavy:
        rows.append(
            ("just under the pixel limit", "shapes/huge-flat.png", OK, "flat", under_limit_png)
        )
    return rows


def one_pixel() -> Image.Image:
    return Image.new("RGB", (1, 1), (200, 40, 40))


def tall() -> Image.Image:
    return photo(7106).resize((1, 20000))


@functools.cache
def under_limit_png() -> bytes:
    """11500 x 11500 of one colour: ~400 KB that decode to ~400 MB (3 s to make, 3 s to
    decode; the hasher peaks near 600 MB on it)."""
    return flat_png(UNDER_LIMIT_SIDE, UNDER_LIMIT_SIDE, (30, 60, 200))


def _unaddressable() -> list[Row]:
    """Names no store holds, so no file or blob is behind them (only an event names them)."""
    jpeg = functools.partial(save, photo(7201), "JPEG")
    return [
        ("'..' in the name", "hostile/../escape.jpg", MISSING, "", jpeg),
        ("'.' in the name", "hostile/./here.jpg", MISSING, "", jpeg),
    ]


def _hostile() -> list[Row]:
    """Copies of one picture (they may merge: the gallery shows them) under hostile names."""
    pic = photo(7200)
    return [
        (
            f"hostile name {i}",
            name,
            OK,
            "hostile",
            functools.partial(save, pic, "JPEG", quality=70 + i),
        )
        for i, name in enumerate(hostile_names())
    ]


@functools.cache
def cases(heavy: bool = True) -> tuple[Case, ...]:
    """Every byte-level kind, made once per process; `heavy=False` leaves out the one
    that costs seconds and hundreds of MB (the just-under-the-limit image)."""
    rows = _copies() + _unreadable() + _shapes(heavy) + _hostile() + _unaddressable()
    made = tuple(
        Case(kind, name, make(), status, group) for kind, name, status, group, make in rows
    )
    assert len({c.name for c in made}) == len(made), "two cases share a name"
    return made


def assert_clusters_are_copies(cluster_of: dict[str, str], cases: Iterable[Case]) -> None:
    """Each cluster (name -> cluster id) holds copies of one picture: members of one
    group; a file that cannot be read, or has no group, is alone."""
    group = {c.name: c.group for c in cases}
    for names in partition(cluster_of):
        if len(names) > 1:
            groups = {group[n] for n in names}
            assert len(groups) == 1 and "" not in groups, sorted(names)


def table(results: list[tuple[str, str, str, str]]) -> str:
    """(kind, status, decision, reason) lines, for the test's output (`pytest -s`)."""
    return "\n".join(f"  {k[:30]:30} {s:11} {d:10} {r[:90]!r}" for k, s, d, r in results)


# ---- the filesystem-only kinds ----------------------------------------------------------------


@dataclass(frozen=True)
class FileKind:
    kind: str
    name: str
    status: str  # "" : no entry at all (not a file)


def make_filesystem_kinds(root: Path) -> list[FileKind]:
    """Write the kinds only a folder has under `root`: an unreadable file (mode 000: only
    root reads it), a symlink loop, a dangling link, a directory named like an image with
    a picture in it, a FIFO (reading it would block), and a good picture beside them."""
    root.mkdir(parents=True, exist_ok=True)
    good = save(photo(7300), "JPEG")
    (root / "good.jpg").write_bytes(good)
    unreadable = root / "unreadable.jpg"
    unreadable.write_bytes(save(photo(7301), "JPEG"))
    unreadable.chmod(0)
    os.symlink("loop-b.jpg", root / "loop-a.jpg")
    os.symlink("loop-a.jpg", root / "loop-b.jpg")
    os.symlink("nowhere.jpg", root / "dangling.jpg")
    (root / "folder.jpg").mkdir()
    (root / "folder.jpg" / "inside.png").write_bytes(save(photo(7302), "PNG"))
    os.mkfifo(root / "pipe.jpg")
    return [
        FileKind("good picture", "good.jpg", OK),
        FileKind("unreadable (mode 000)", "unreadable.jpg", MISSING),
        FileKind("symlink loop", "loop-a.jpg", MISSING),
        FileKind("symlink loop", "loop-b.jpg", MISSING),
        FileKind("dangling symlink", "dangling.jpg", MISSING),
        FileKind("directory named like an image", "folder.jpg", ""),
        FileKind("picture in that directory", "folder.jpg/inside.png", OK),
        FileKind("FIFO", "pipe.jpg", MISSING),
    ]


__all__ = [
    "Case",
    "FileKind",
    "assert_clusters_are_copies",
    "cases",
    "make_filesystem_kinds",
    "table",
]
