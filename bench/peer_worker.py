"""The in-Python contenders of bench/scan_cost.py, each run as its own process so that
its CPU and memory are measured exactly as `dedup scan`'s and Immaculate's are:

    python -m bench.peer_worker {decode-full,decode-only,phash} DIR [--json OUT] [--threads N]

- decode-full: Pillow decodes every file in full, to RGB;
- decode-only: the hasher's own decode (services/hasher/decode.py: JPEG DCT scaling to
  the working copy's side, other formats decoded and box-reduced), the pipeline's floor;
- phash: imagehash's 64-bit phash of every file, then union-find over every pair within
  10 bits (as bench/eval.py clusters it); --json writes {"clusters": {file: cluster}}.

Every file under DIR, recursively, in name order, over a pool of --threads threads (one
per CPU by default, as `dedup scan` decodes). Imports only what the contender needs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

PHASH_THRESHOLD = 10  # bench/eval.py's PEER_THRESHOLDS["phash"]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def decode_full(path: Path) -> object:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.convert("RGB").size
    except Exception:  # unreadable: skipped, as a user's tool would
        return None


def decode_only(path: Path) -> object:
    # decode's default max_side is the hasher's working side (tests/test_scan_cost.py
    # checks it): services.hasher.thumbnail itself would import OpenCV, which the hasher
    # needs for its features, not for decoding.
    from services.hasher.decode import DecodeError, decode

    try:
        return decode(path.read_bytes()).rgb.shape
    except DecodeError:
        return None


def phash_bits(path: Path) -> object:
    import imagehash
    from PIL import Image

    try:
        with Image.open(path) as img:
            return np.asarray(imagehash.phash(img).hash, bool).ravel()
    except Exception:
        return None


CONTENDERS: dict[str, Callable[[Path], object]] = {
    "decode-full": decode_full,
    "decode-only": decode_only,
    "phash": phash_bits,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("contender", choices=sorted(CONTENDERS))
    p.add_argument("folder", type=Path)
    p.add_argument("--json", type=Path)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ns = p.parse_args(argv)
    files = files_under(ns.folder)
    work = CONTENDERS[ns.contender]
    with ThreadPoolExecutor(max(1, ns.threads)) as pool:
        results = list(pool.map(work, files))
    names = [f.relative_to(ns.folder).as_posix() for f in files]
    if ns.contender == "phash":
        from bench.metrics import cluster_within

        hashes = {
            n: (r if isinstance(r, np.ndarray) else None)
            for n, r in zip(names, results, strict=True)
        }
        clusters = cluster_within(hashes, PHASH_THRESHOLD)
        if ns.json:
            ns.json.write_text(json.dumps({"clusters": clusters}))
    elif ns.json:
        ns.json.write_text(json.dumps({"decoded": sum(r is not None for r in results)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
