"""What `dedup scan` costs against its peers, on the same files in the same run.

    .venv/bin/python -m bench.scan_cost [--files 60] [--rounds 2] [--side 1600] [--json OUT]
    .venv/bin/python -m bench.scan_cost --rss-sweep [--sweep-sizes 100,1000]

Two folders, generated in a temporary directory from the real photos of the dev sets
(../shared/data/dev: Unsplash and skimage-data; dedup.synthetic's photos without them),
each photo resized to --side pixels on its longer side (0: as it is; the dev photos are
~400 px, far smaller than uploads) and saved as JPEG:

- edited: a quarter originals, each with 3 edits (crop, caption, border + downscale,
  greyscale crop, rotation by 27 degrees, flips, resize to a square, a JPEG re-encode at
  quality 60, brighter), JPEG;
- unique: 95 % distinct photos, the rest edits of some of them.

Contenders, every one run as its own process tree (bench/proctree.py: exact CPU of every
process it started, grandchildren included; peak memory (PSS, see proctree) summed over
the tree, sampled every 50 ms), rounds interleaved (every contender on every folder, then
again) so that a neighbour's load on a shared machine hits all alike:

- decode-only: the hasher's own decode (JPEG DCT scaling to the working side), every
  file, one thread per CPU (bench/peer_worker.py); the floor of the pipeline's cost;
- decode-full: Pillow's full decode of every file, to RGB;
- phash: imagehash phash + union-find within 10 bits (as bench/eval.py);
- immaculate pdq / sscd_distilled / sscd (PyPI immaculate 0.3.0, its own Python 3.12
  venv bench/.venv-peers: `make bench-peers`), `immaculate DIR --json --method M`;
- dedup scan: `dedup scan DIR --json OUT --quiet` as a user runs it, with its private
  Milvus Lite and Triton (and Triton's Python-backend stubs).

Each contender also runs on an empty folder in every round: its fixed start-up (for dedup:
starting both servers and loading the models), taken off before dividing by the files:
CPU ms/image = (CPU on the folder - CPU on the empty folder) / files, medians over the
rounds. dedup's CPU is split by process: Triton's (the model's inference) and the rest
(the scan process, Milvus Lite). "x decode" is the ratio to decode-only's CPU per image.
Wall and peak memory (PSS) are those of the whole run, start-up included.

Then the accuracy of every contender on imagededup's benchmark recipe (bench/recipe.py):
pairwise precision and recall (bench/metrics.py, as bench/eval.py counts), and how many
pairs of other shots of one scene each merged. Targets (issue 9): dedup without the
model's inference <= 3x decode-only CPU per image; dedup's wall <= Immaculate
sscd_distilled's; peak RSS of all dedup's processes <= 0.5 GB, flat from 100 to 10,000
files (--rss-sweep); recall >= 0.97 at precision >= 0.999 on the recipe set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from bench.dev_sets import DEFAULT_DEV
from bench.metrics import Label, Outcome, outcome, read_labels
from bench.proctree import Usage, measure
from bench.recipe import (
    SKIMAGE,
    SKIMAGE_PHOTOS,
    UNSPLASH,
    other_shots_merged,
    write_recipe_set,
)

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / "bench" / ".venv-peers"
MB = 1e6
TARGET_CPU_RATIO = 3.0  # dedup without the model's inference / decode-only, CPU per image
TARGET_RSS_BYTES = 0.5e9
TARGET_RECALL, TARGET_PRECISION = 0.97, 0.999
IMMACULATE_METHODS = ("pdq", "sscd_distilled", "sscd")

Edit = Callable[[Image.Image], Image.Image]


# ---- the folders ---------------------------------------------------------------------------


def _crop(fraction: float, offset: float = 0.0) -> Edit:
    """Cut `fraction` of each side's length, the window moved by `offset` of the cut."""

    def crop(img: Image.Image) -> Image.Image:
        dx, dy = int(img.width * fraction), int(img.height * fraction)
        left, top = int(dx / 2 * (1 + offset)), int(dy / 2 * (1 - offset))
        return img.crop((left, top, left + img.width - dx, top + img.height - dy))

    return crop


def _caption(img: Image.Image) -> Image.Image:
    from dedup import synthetic

    return synthetic.EDITS["caption"](img)


def _border_small(img: Image.Image) -> Image.Image:
    bordered = ImageOps.expand(img, border=img.width // 12, fill=(255, 255, 255))
    return bordered.resize((bordered.width // 2, bordered.height // 2), Image.Resampling.LANCZOS)


def _grey_crop(img: Image.Image) -> Image.Image:
    return ImageOps.grayscale(_crop(0.12, 0.5)(img)).convert("RGB")


def _square(img: Image.Image) -> Image.Image:
    side = min(img.size)
    return img.resize((side, side), Image.Resampling.LANCZOS)


# name -> (edit, JPEG quality of the copy)
COST_EDITS: dict[str, tuple[Edit, int]] = {
    "crop": (_crop(0.15, 0.3), 85),
    "caption": (_caption, 85),
    "border-small": (_border_small, 85),
    "grey-crop": (_grey_crop, 85),
    "rotate-27": (lambda img: img.rotate(27, Image.Resampling.BILINEAR, expand=True), 85),
    "flip-h": (lambda img: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), 85),
    "flip-v": (lambda img: img.transpose(Image.Transpose.FLIP_TOP_BOTTOM), 85),
    "square": (_square, 85),
    "jpeg-60": (lambda img: img, 60),
    "brighter": (lambda img: ImageEnhance.Brightness(img).enhance(1.3), 85),
}


def real_photos(data: Path) -> list[Path]:
    """Every Unsplash photo and skimage-data photo of the dev sets (cost only: nothing's
    accuracy is judged on these folders)."""
    unsplash = data / UNSPLASH
    found = sorted(unsplash.glob("*.jpg")) if unsplash.is_dir() else []
    return found + [data / SKIMAGE / n for n in SKIMAGE_PHOTOS if (data / SKIMAGE / n).is_file()]


def at_side(img: Image.Image, side: int) -> Image.Image:
    """`img` in RGB, its longer side made `side` (0: as it is)."""
    img = img.convert("RGB")
    if side <= 0 or max(img.size) == side:
        return img
    scale = side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


class PhotoSource:
    """The i-th distinct photo: the real ones first, then generated ones."""

    def __init__(self, photos: Sequence[Path], side: int) -> None:
        self.photos = list(photos)
        self.side = side

    def __call__(self, i: int) -> Image.Image:
        if i < len(self.photos):
            with Image.open(self.photos[i]) as img:
                return at_side(img, self.side)
        from dedup import synthetic

        side = self.side or 640
        return synthetic.photo(70_000 + i, (side, side * 3 // 4))


def jpeg(img: Image.Image, quality: int) -> bytes:
    import io

    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


@dataclass(frozen=True)
class Folder:
    name: str
    path: Path
    files: int
    originals: int
    edits: int
    megabytes: float


def plan_edited(files: int) -> list[tuple[int, str | None]]:
    """(photo index, edit or None for the original) for the edited folder: a quarter
    originals (at least one), each followed by up to 3 edits, edits in turn."""
    names = list(COST_EDITS)
    plan: list[tuple[int, str | None]] = []
    photo, turn = 0, 0
    while len(plan) < files:
        plan.append((photo, None))
        for _ in range(3):
            if len(plan) == files:
                break
            plan.append((photo, names[turn % len(names)]))
            turn += 1
        photo += 1
    return plan


def plan_unique(files: int, distinct: float = 0.95) -> list[tuple[int, str | None]]:
    """`distinct` of the files distinct photos, the rest one edit each of the first ones."""
    names = list(COST_EDITS)
    originals = max(1, min(files, round(files * distinct)))
    plan: list[tuple[int, str | None]] = [(i, None) for i in range(originals)]
    plan += [(i % originals, names[i % len(names)]) for i in range(files - originals)]
    return plan


def write_folder(name: str, path: Path, plan: Sequence[tuple[int, str | None]],
                 source: PhotoSource) -> Folder:  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    cache: dict[int, Image.Image] = {}
    total = 0
    for n, (i, edit) in enumerate(plan):
        if i not in cache:
            cache = {i: source(i)}  # plans keep one photo's files together, or nearly
        img = cache[i]
        if edit is None:
            data = jpeg(img, 90)
        else:
            fn, quality = COST_EDITS[edit]
            data = jpeg(fn(img), quality)
        (path / f"{n:05d}-{i:04d}-{edit or 'original'}.jpg").write_bytes(data)
        total += len(data)
    edits = sum(e is not None for _, e in plan)
    return Folder(name, path, len(plan), len(plan) - edits, edits, total / MB)


# ---- the contenders ------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    name: str
    command: Callable[[Path, Path], list[str]]  # (folder, JSON out) -> argv
    stdout_json: bool = False  # the JSON comes on stdout (Immaculate)


def dedup_command() -> list[str]:
    beside = Path(sys.executable).parent / "dedup"
    found = str(beside) if beside.is_file() else shutil.which("dedup")
    if not found:
        raise SystemExit("no `dedup` command: run `make setup`")
    return [found, "scan", *stateless(found)]


def stateless(dedup: str) -> list[str]:
    """The flag that keeps `dedup scan` from reading or writing its state: every run is
    measured from nothing (with its state, a second round would resume the first and
    index nothing). A checkout from before the state has no such flag, and none to skip."""
    usage = subprocess.run([dedup, "scan", "--help"], capture_output=True, text=True).stdout
    return ["--no-state"] if "--no-state" in usage else []


DEDUP = "dedup scan"
BASELINE = "dedup scan (baseline)"


def is_dedup(name: str) -> bool:
    """dedup's own contenders: this checkout's and, with --baseline, another one's."""
    return name in (DEDUP, BASELINE)


def contenders(immaculate: Sequence[str], baseline: str | None = None) -> list[Contender]:
    py = sys.executable
    worker = [py, "-m", "bench.peer_worker"]
    out = [
        Contender("decode-only", lambda d, j: [*worker, "decode-only", str(d), "--json", str(j)]),
        Contender("decode-full", lambda d, j: [*worker, "decode-full", str(d), "--json", str(j)]),
        Contender("phash", lambda d, j: [*worker, "phash", str(d), "--json", str(j)]),
    ]
    exe = PEERS_VENV / "bin" / "immaculate"
    for method in immaculate:
        out.append(
            Contender(
                f"immaculate {method}",
                lambda d, j, m=method: [str(exe), str(d), "--json", "--method", m],  # type: ignore[misc]
                stdout_json=True,
            )
        )
    scan = dedup_command()
    if baseline:
        # Another checkout's `dedup` (say, main's): before and after in the same run.
        before = [baseline, "scan", *stateless(baseline)]
        out.append(Contender(BASELINE, lambda d, j: [*before, str(d), "--json", str(j), "--quiet"]))
    out.append(Contender(DEDUP, lambda d, j: [*scan, str(d), "--json", str(j), "--quiet"]))
    return out


def run(
    contender: Contender, folder: Path, json_out: Path, log: Path, timeout: float = 3600.0
) -> Usage:
    """One measured run; a failure stops the benchmark with the command's log."""
    json_out.unlink(missing_ok=True)
    log.write_bytes(b"")
    with log.open("ab") as err, (json_out if contender.stdout_json else log).open("ab") as out:
        usage = measure(
            contender.command(folder, json_out),
            cwd=ROOT,
            stdout=out.fileno(),
            stderr=err.fileno(),
            timeout=timeout,
        )
    # dedup scan's exit code 1 is "finished, duplicates found" (README: exit codes).
    if usage.returncode not in ((0, 1) if is_dedup(contender.name) else (0,)):
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{contender.name} on {folder} failed ({usage.returncode}):\n{tail}")
    return usage


# ---- the arithmetic ------------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """One contender on one folder: per-image CPU net of the start-up, and the run's own
    wall and peak RSS (medians over the rounds)."""

    name: str
    cpu_ms: float  # per image, the empty folder's CPU taken off
    wall_seconds: float
    peak_rss_mb: float
    startup_cpu_seconds: float
    startup_wall_seconds: float
    startup_rss_mb: float
    # dedup's split, per image (ms), by kind of process: main, milvus, triton
    cpu_ms_by_kind: Mapping[str, float] = field(default_factory=dict)
    peak_rss_mb_by_kind: Mapping[str, float] = field(default_factory=dict)
    peak_rss_mb_without_triton: float = 0.0
    unattributed_ms: float = 0.0
    rounds: int = 0


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else 0.0


def cost(name: str, runs: Sequence[Usage], empties: Sequence[Usage], files: int) -> Cost:
    """Per-image costs of `runs` on `files` files, net of the `empties`' start-up."""
    n = max(1, files)
    start_cpu = median([u.cpu_seconds for u in empties])
    kinds = sorted({k for u in [*runs, *empties] for k in u.cpu_by_kind})
    by_kind = {
        k: 1000
        * (
            median([u.cpu_by_kind.get(k, 0.0) for u in runs])
            - median([u.cpu_by_kind.get(k, 0.0) for u in empties])
        )
        / n
        for k in kinds
    }
    rss_kinds = sorted({k for u in runs for k in u.peak_rss_by_kind})
    return Cost(
        name=name,
        cpu_ms=1000 * (median([u.cpu_seconds for u in runs]) - start_cpu) / n,
        wall_seconds=median([u.wall_seconds for u in runs]),
        peak_rss_mb=median([u.peak_rss_bytes for u in runs]) / MB,
        startup_cpu_seconds=start_cpu,
        startup_wall_seconds=median([u.wall_seconds for u in empties]),
        startup_rss_mb=median([u.peak_rss_bytes for u in empties]) / MB,
        cpu_ms_by_kind=by_kind,
        peak_rss_mb_by_kind={
            k: median([u.peak_rss_by_kind.get(k, 0) for u in runs]) / MB for k in rss_kinds
        },
        peak_rss_mb_without_triton=median([u.peak_rss_except("triton") for u in runs]) / MB,
        unattributed_ms=1000
        * (median([u.unattributed for u in runs]) - median([u.unattributed for u in empties]))
        / n,
        rounds=len(runs),
    )


def without_inference_ms(c: Cost) -> float:
    """dedup's CPU per image less Triton's (the model's inference)."""
    return c.cpu_ms - c.cpu_ms_by_kind.get("triton", 0.0)


def ratio(x: float, base: float) -> str:
    return f"{x / base:6.1f}x" if base > 0 else "    - "


def cost_table(folder: Folder, costs: Sequence[Cost], baseline: str = "decode-only") -> str:
    base = next((c.cpu_ms for c in costs if c.name == baseline), 0.0)
    head = (
        f"{'method':42s} {'CPU ms/img':>10s} {'x decode':>8s} {'wall s':>7s}"
        f" {'peak RSS MB':>11s}  {'start-up: CPU s, wall s, RSS MB':>31s}"
    )
    lines = [
        f"{folder.name}: {folder.files} files ({folder.originals} originals, {folder.edits}"
        f" edits; {folder.megabytes:.1f} MB of JPEG)",
        head,
        "-" * len(head),
    ]
    for c in costs:
        lines.append(
            f"{c.name:42s} {c.cpu_ms:10.1f} {ratio(c.cpu_ms, base):>8s} {c.wall_seconds:7.1f}"
            f" {c.peak_rss_mb:11.0f}  {c.startup_cpu_seconds:13.2f} {c.startup_wall_seconds:7.1f}"
            f" {c.startup_rss_mb:8.0f}"
        )
        if is_dedup(c.name):
            rss = c.peak_rss_mb_by_kind
            parts = (
                ("  without the model's inference", without_inference_ms(c),
                 c.peak_rss_mb_without_triton),
                ("  model inference (Triton)", c.cpu_ms_by_kind.get("triton", 0.0),
                 rss.get("triton", 0.0)),
                ("    of the rest: Milvus Lite", c.cpu_ms_by_kind.get("milvus", 0.0),
                 rss.get("milvus", 0.0)),
                ("    of the rest: the scan process", c.cpu_ms_by_kind.get("main", 0.0),
                 rss.get("main", 0.0)),
            )  # fmt: skip
            for label, ms, mb in parts:
                lines.append(f"{label:42s} {ms:10.1f} {ratio(ms, base):>8s} {'':>7s} {mb:11.0f}")
            lines.append(f"{'    (CPU no sample saw, in the rest)':42s} {c.unattributed_ms:10.1f}")
    return "\n".join(lines)


def cost_verdicts(costs: Sequence[Cost]) -> list[str]:
    by = {c.name: c for c in costs}
    out = []
    dedup, base = by.get(DEDUP), by.get("decode-only")
    if dedup and base and base.cpu_ms > 0:
        r = without_inference_ms(dedup) / base.cpu_ms
        verdict = "meets" if r <= TARGET_CPU_RATIO else "MISSES"
        out.append(
            f"dedup without the model's inference: {r:.1f}x decode-only CPU per image"
            f" ({verdict} <= {TARGET_CPU_RATIO:g}x)"
        )
    sscd = by.get("immaculate sscd_distilled")
    if dedup and sscd:
        verdict = "meets" if dedup.wall_seconds <= sscd.wall_seconds else "MISSES"
        out.append(
            f"dedup scan's wall {dedup.wall_seconds:.1f} s vs Immaculate sscd_distilled's"
            f" {sscd.wall_seconds:.1f} s ({verdict} <=)"
        )
    if dedup:
        verdict = "meets" if dedup.peak_rss_mb * MB <= TARGET_RSS_BYTES else "MISSES"
        out.append(
            f"dedup scan's peak RSS, all its processes: {dedup.peak_rss_mb:.0f} MB"
            f" ({verdict} <= {TARGET_RSS_BYTES / MB:.0f} MB)"
        )
    return out


# ---- accuracy on the recipe ----------------------------------------------------------------


def clusters_of(
    contender: Contender, json_out: Path, folder: Path
) -> tuple[dict[str, str], set[str]]:
    """(file -> cluster, files reported unreadable) from a contender's JSON."""
    data = json.loads(json_out.read_text())
    if is_dedup(contender.name):
        rows = data["images"]
        return {r["path"]: r["cluster"] for r in rows}, {
            r["path"] for r in rows if r["status"] != "ok"
        }
    if contender.name == "phash":
        return dict(data["clusters"]), set()
    # Immaculate: {"exact": [[path, ...]], "near": [[...]], "skipped": [...]}, paths as
    # given on the command line; a file in no group is alone.
    predicted: dict[str, str] = {}
    for group in [*data.get("exact", []), *data.get("near", [])]:
        names = sorted(relative(p, folder) for p in group)
        root = min([predicted.get(n, n) for n in names])
        for n in names:  # an exact group may meet a near one: merge them
            old = predicted.get(n)
            if old is not None and old != root:
                for k, v in predicted.items():
                    if v == old:
                        predicted[k] = root
            predicted[n] = root
    return predicted, {relative(p, folder) for p in data.get("skipped", [])}


def relative(path: str, folder: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        p = ROOT / p
    return p.relative_to(folder).as_posix()


def found_per_edit(predicted: Mapping[str, str], labels: Mapping[str, Label]) -> dict[str, int]:
    """edit -> how many of its copies are in their original's cluster."""
    originals = {x.group: x.file for x in labels.values() if x.relation == "original"}
    found: dict[str, int] = {}
    for x in labels.values():
        if x.relation in ("original", "other shot") or x.group not in originals:
            continue
        hit = predicted.get(x.file) == predicted.get(originals[x.group])
        found[x.relation] = found.get(x.relation, 0) + hit
    return found


@dataclass(frozen=True)
class Accuracy:
    outcome: Outcome
    other_merged: int
    other_pairs: int
    cpu_ms: float  # per image, start-up included (one run)
    wall_seconds: float
    peak_rss_mb: float
    found: Mapping[str, int] = field(default_factory=dict)  # edit -> copies with their original
    copies: Mapping[str, int] = field(default_factory=dict)  # edit -> copies
    peak_rss_mb_by_kind: Mapping[str, float] = field(default_factory=dict)

    def meets_target(self) -> bool:
        p = self.outcome.precision
        r = self.outcome.recall or 0.0
        return (p is None or p >= TARGET_PRECISION) and r >= TARGET_RECALL


def accuracy(name: str, predicted: Mapping[str, str], unreadable: set[str],
             labels: Mapping[str, Label], usage: Usage) -> Accuracy:  # fmt: skip
    full = {f: predicted.get(f, f"alone:{f}") for f in labels}
    o = outcome(name, full, {}, labels, usage.wall_seconds, unreadable)
    merged, total = other_shots_merged(full, labels)
    copies: dict[str, int] = {}
    for x in labels.values():
        if x.relation not in ("original", "other shot"):
            copies[x.relation] = copies.get(x.relation, 0) + 1
    return Accuracy(
        o, merged, total, 1000 * usage.cpu_seconds / max(1, len(labels)), usage.wall_seconds,
        usage.peak_rss_bytes / MB, found_per_edit(full, labels), copies,
        {k: v / MB for k, v in usage.peak_rss_by_kind.items()},
    )  # fmt: skip


def number(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.3f}"


def accuracy_table(title: str, rows: Sequence[Accuracy]) -> str:
    head = (
        f"{'method':26s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'pairs':>5s} {'false':>5s}"
        f" {'other shots merged':>18s} {'CPU ms/img':>10s} {'wall s':>7s} {'RSS MB':>7s}"
    )
    lines = [title, head, "-" * len(head)]
    for a in rows:
        o = a.outcome
        flag = "  < target" if is_dedup(o.method) and not a.meets_target() else ""
        lines.append(
            f"{o.method:26s} {number(o.precision):>6s} {number(o.recall):>6s}"
            f" {number(o.f1):>6s} {o.true_pairs:5d} {o.false_pairs:5d}"
            f" {f'{a.other_merged}/{a.other_pairs}':>18s} {a.cpu_ms:10.1f}"
            f" {a.wall_seconds:7.1f} {a.peak_rss_mb:7.0f}{flag}"
        )
    lines.append("copies found with their original, per edit:")
    for a in rows:
        found = ", ".join(f"{e} {a.found.get(e, 0)}/{n}" for e, n in sorted(a.copies.items()))
        lines.append(f"  {a.outcome.method:24s} {found}")
    for a in rows:
        if is_dedup(a.outcome.method) and a.peak_rss_mb_by_kind:
            parts = ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(a.peak_rss_mb_by_kind.items()))
            lines.append(f"dedup scan's peak RSS by process kind (each its own peak): {parts}")
    return "\n".join(lines)


# ---- main ----------------------------------------------------------------------------------


def header(argv: Sequence[str]) -> str:
    load = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"$ {' '.join([os.path.relpath(sys.executable, ROOT), '-m', 'bench.scan_cost', *argv])}\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs;"
        f" Python {platform.python_version()}; load: {load}"
    )


def immaculate_methods(wanted: Sequence[str]) -> list[str]:
    exe = PEERS_VENV / "bin" / "immaculate"
    if not exe.is_file():
        print(f"no {exe.relative_to(ROOT)}: `make bench-peers` (Immaculate left out)",
              file=sys.stderr)  # fmt: skip
        return []
    return list(wanted)


def measure_costs(
    folders: Sequence[Folder], all_contenders: Sequence[Contender], rounds: int, work: Path
) -> dict[str, list[Cost]]:
    empty = work / "empty"
    empty.mkdir(exist_ok=True)
    runs: dict[tuple[str, str], list[Usage]] = {}
    empties: dict[str, list[Usage]] = {}
    for r in range(rounds):
        for c in all_contenders:
            print(f"  round {r + 1}/{rounds}: {c.name}, empty folder", file=sys.stderr)
            u = run(c, empty, work / "out.json", work / "log.txt")
            empties.setdefault(c.name, []).append(u)
            for f in folders:
                print(f"  round {r + 1}/{rounds}: {c.name}, {f.name}", file=sys.stderr)
                u = run(c, f.path, work / "out.json", work / "log.txt")
                runs.setdefault((f.name, c.name), []).append(u)
    return {
        f.name: [cost(c.name, runs[f.name, c.name], empties[c.name], f.files)
                 for c in all_contenders]
        for f in folders
    }  # fmt: skip


def measure_recipe(
    all_contenders: Sequence[Contender], work: Path, data: Path
) -> tuple[str, list[Accuracy]]:
    images, labels_dir = work / "recipe", work / "recipe-labels"
    write_recipe_set(images, labels_dir, data)
    labels = read_labels(labels_dir)
    photos = sum(1 for x in labels.values() if x.relation == "original")
    shots = [x for x in labels.values() if x.relation == "other shot"]
    title = (
        f"accuracy on imagededup's recipe: {len(labels)} files ({photos} photos + 5 copies"
        f" each; {len(shots)} other shots of {len({x.family for x in shots})} scenes);"
        " CPU per image includes the start-up here"
    )
    rows = []
    for c in all_contenders:
        if c.name.startswith("decode"):
            continue
        print(f"  recipe: {c.name}", file=sys.stderr)
        out = work / "recipe-out.json"
        u = run(c, images, out, work / "log.txt")
        predicted, unreadable = clusters_of(c, out, images)
        rows.append(accuracy(c.name, predicted, unreadable, labels, u))
    return title, rows


def rss_sweep(sizes: Sequence[int], work: Path, width: int = 640) -> str:
    """dedup scan's peak RSS over its processes on folders of cheap generated photos
    (`width` x 3/4 of it), one folder grown from size to size."""
    from dedup import synthetic

    scan = Contender(DEDUP, lambda d, j: [*dedup_command(), str(d), "--json", str(j),
                                                  "--quiet"])  # fmt: skip
    folder = work / "sweep"
    folder.mkdir(exist_ok=True)
    have = 0
    lines = [
        f"dedup scan's peak RSS by folder size (generated {width}x{width * 3 // 4} JPEG photos,"
        " no duplicates)",
        f"{'files':>6s} {'peak RSS MB':>11s} {'scan':>6s} {'milvus':>6s} {'triton':>6s}"
        f" {'CPU s':>7s} {'wall s':>7s}  CPU s: {'scan':>6s} {'milvus':>6s} {'triton':>6s}",
    ]
    for size in sorted(sizes):
        while have < size:
            img = synthetic.photo(600_000 + have, (width, width * 3 // 4))
            (folder / f"{have:06d}.jpg").write_bytes(synthetic.encode(img, quality=85))
            have += 1
        print(f"  rss sweep: {size} files", file=sys.stderr)
        u = run(scan, folder, work / "sweep.json", work / "log.txt", timeout=6 * 3600.0)
        k = u.peak_rss_by_kind
        lines.append(
            f"{size:6d} {u.peak_rss_bytes / MB:11.0f} {k.get('main', 0) / MB:6.0f}"
            f" {k.get('milvus', 0) / MB:6.0f} {k.get('triton', 0) / MB:6.0f}"
            f" {u.cpu_seconds:7.1f} {u.wall_seconds:7.1f}         "
            + " ".join(f"{u.cpu_by_kind.get(x, 0.0):6.1f}" for x in ("main", "milvus", "triton"))
        )
        print(lines[-1], file=sys.stderr)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--files", type=int, default=60, help="files in each folder")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    p.add_argument("--side", type=int, default=1600, help="longer side of the photos (0: as is)")
    p.add_argument("--data", type=Path, default=DEFAULT_DEV, help="the dev sets")
    p.add_argument("--immaculate", default=",".join(IMMACULATE_METHODS),
                   help="Immaculate's methods to run (comma-separated; empty: none)")  # fmt: skip
    p.add_argument("--no-recipe", action="store_true", help="skip the accuracy on the recipe")
    p.add_argument("--rss-sweep", action="store_true", help="only dedup's peak RSS by size")
    p.add_argument("--sweep-sizes", default="100,1000", help="folder sizes of --rss-sweep")
    p.add_argument("--sweep-width", type=int, default=640, help="photo width of --rss-sweep")
    p.add_argument("--json", type=Path, help="write the numbers as JSON too")
    p.add_argument("--baseline", metavar="DEDUP",
                   help="another checkout's `dedup`, measured beside this one")  # fmt: skip
    ns = p.parse_args(args)
    # SIGTERM as Ctrl-C: the temporary folders go (and a measured run is killed with us).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(header(args))
    with tempfile.TemporaryDirectory(prefix="dedup-scan-cost-") as tmp:
        work = Path(tmp)
        if ns.rss_sweep:
            sizes = [int(s) for s in ns.sweep_sizes.split(",") if s]
            print(rss_sweep(sizes, work, ns.sweep_width))
            return 0
        methods = [m for m in ns.immaculate.split(",") if m]
        all_contenders = contenders(immaculate_methods(methods), ns.baseline)
        source = PhotoSource(real_photos(ns.data), ns.side)
        print(
            f"photos: {len(source.photos)} real ones from {ns.data} (then generated ones),"
            f" longer side {ns.side or 'as is'}; JPEG",
            file=sys.stderr,
        )
        folders = [
            write_folder("edited photos", work / "edited", plan_edited(ns.files), source),
            write_folder("mostly unique photos", work / "unique", plan_unique(ns.files), source),
        ]
        started = time.perf_counter()
        costs = measure_costs(folders, all_contenders, ns.rounds, work)
        print(f"\n{ns.rounds} interleaved rounds, medians; CPU of every process of each run;"
              " start-up (an empty folder) taken off the per-image CPU")  # fmt: skip
        for f in folders:
            print()
            print(cost_table(f, costs[f.name]))
            for line in cost_verdicts(costs[f.name]):
                print(f"  {line}")
        recipe: tuple[str, list[Accuracy]] | None = None
        if not ns.no_recipe:
            recipe = measure_recipe(all_contenders, work, ns.data)
            print()
            print(accuracy_table(*recipe))
            print(
                f"  target: dedup recall >= {TARGET_RECALL} at precision >= {TARGET_PRECISION};"
                " other shots never merged"
            )
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
    if ns.json:
        numbers: dict[str, object] = {
            "folders": [asdict(f) | {"path": None} for f in folders],
            "costs": {name: [asdict(c) for c in cs] for name, cs in costs.items()},
        }
        if recipe:
            numbers["recipe"] = [
                asdict(a) | {"precision": a.outcome.precision, "recall": a.outcome.recall}
                for a in recipe[1]
            ]
        ns.json.write_text(json.dumps(numbers, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
