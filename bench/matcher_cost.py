"""The matcher's CPU on scan_cost's edited folder: this checkout against another one.

    .venv/bin/python -m bench.matcher_cost [--files 60] [--rounds 3] [--baseline DIR]
    .venv/bin/python -m bench.matcher_cost --against screen_inliers=0 [--rounds 3]
    .venv/bin/python -m bench.matcher_cost --against-tree DIR [--rounds 3]

The folder is scan_cost's edited photos (bench/scan_cost.py, --side 1600); the pairs are
every two files of one photo (the copies a scan proposes) and as many pairs of different
photos (the unrelated candidates it rejects), each decided once by ``decide`` with the
hasher's hints, as the matcher does. Process CPU per pair and per file, the views' decode
excluded but their features (computed on first use) included, as in the service.
``--baseline DIR``: a tree with ``libs`` and ``services`` (``git archive <commit> libs
services | tar -x -C DIR``), run in its own process in turn with this one, round by round
(interleaved: a shared machine's load hits both alike); the best round of each counts.
``--against NAME=VALUE``: the defaults against them with one MatchParams field changed,
in one process, pair by pair in alternating order (steadier than processes in turn);
the features are then computed up front (both orientations) and reported on their own.
``--against-tree DIR``: another tree's matcher (its ``services/matcher``; the libraries
are this checkout's) in this process, pair by pair in alternating order, each with views
of its own and their features on first use included, as in the service.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.dev_sets import DEFAULT_DEV
from bench.scan_cost import PhotoSource, plan_edited, real_photos, write_folder


def measure(folder: Path) -> dict[str, Any]:
    """Decide the folder's pairs once; CPU ms and the verdicts by test."""
    from services.hasher.features import extract
    from services.hasher.handler import transform_of_candidate
    from services.hasher.hashes import best_dihedral
    from services.matcher.decide import HashHint, decide
    from services.matcher.geometry import MatchParams, MatchPolicy, view_of_bytes

    params, policy = MatchParams(), MatchPolicy()
    files = sorted(folder.glob("*.jpg"))
    photos = [f.name.split("-")[1] for f in files]
    features = [extract(f.read_bytes()) for f in files]
    views = [view_of_bytes(f.working_copy, params) for f in features]
    both = list(itertools.combinations(range(len(files)), 2))
    copies = [(i, j) for i, j in both if photos[i] == photos[j]]
    others = [(i, j) for i, j in both if photos[i] != photos[j]]
    pairs = copies + random.Random(0).sample(others, min(len(others), len(copies)))
    started = time.process_time()
    tests: Counter[str] = Counter()
    for i, j in pairs:
        variant, distance = best_dihedral(features[i].pdq, features[j].pdq.hash)
        hint = HashHint(distance, transform_of_candidate(variant))
        decision = decide(views[i], views[j], params, policy, hint)
        tests[f"{decision.verdict}:{decision.test}"] += 1
    ms = (time.process_time() - started) * 1000
    return {"pairs": len(pairs), "files": len(files), "ms": ms, "tests": dict(tests)}


def against(folder: Path, field: str, value: str, rounds: int) -> None:
    """The defaults and ``field=value``, interleaved pair by pair; best round of each."""
    from dataclasses import replace

    from services.hasher.features import extract
    from services.hasher.handler import transform_of_candidate
    from services.hasher.hashes import best_dihedral
    from services.matcher.decide import HashHint, decide
    from services.matcher.geometry import MatchParams, MatchPolicy, view_of_bytes

    params, policy = MatchParams(), MatchPolicy()
    default = getattr(params, field)
    other = replace(params, **{field: type(default)(value)})
    files = sorted(folder.glob("*.jpg"))
    photos = [f.name.split("-")[1] for f in files]
    features = [extract(f.read_bytes()) for f in files]
    views = [view_of_bytes(f.working_copy, params) for f in features]
    started = time.process_time()
    for v in views:
        _ = v.plain, v.mirrored
    feature_ms = (time.process_time() - started) * 1000 / len(views)
    both = list(itertools.combinations(range(len(files)), 2))
    copies = [(i, j) for i, j in both if photos[i] == photos[j]]
    others = [(i, j) for i, j in both if photos[i] != photos[j]]
    pairs = copies + random.Random(0).sample(others, min(len(others), len(copies)))
    totals: dict[str, list[float]] = {"defaults": [], f"{field}={value}": []}
    changed = 0
    for _ in range(rounds):
        spent = dict.fromkeys(totals, 0.0)
        for n, (i, j) in enumerate(pairs):
            variant, distance = best_dihedral(features[i].pdq, features[j].pdq.hash)
            hint = HashHint(distance, transform_of_candidate(variant))
            runs = list(zip(spent, (params, other), strict=True))
            verdicts = {}
            for name, p in runs if n % 2 else runs[::-1]:
                t = time.process_time()
                verdicts[name] = decide(views[i], views[j], p, policy, hint).verdict
                spent[name] += (time.process_time() - t) * 1000
            changed += len(set(verdicts.values())) > 1
        for name, total in spent.items():
            totals[name].append(total)
    print(f"{len(pairs)} pairs of {len(files)} files; features {feature_ms:.1f} ms a file"
          f" (both orientations, up front); verdicts that differ: {changed}")  # fmt: skip
    for name, ms in totals.items():
        every = ", ".join(f"{m / len(pairs):.1f}" for m in ms)
        print(
            f"{name:>20}: {min(ms) / len(pairs):.1f} CPU-ms per pair (rounds: {every}),"
            f" {min(ms) / len(files):.1f} per file, features excluded"
        )


def _ours(name: str) -> bool:
    # The package too: its __path__, not sys.path, says where its subpackages are.
    return name == "services" or name.startswith("services.matcher")


@contextlib.contextmanager
def _modules_of(tree: Path) -> Iterator[None]:
    """Imports of ``services.matcher`` inside come from ``tree``; this checkout's after."""
    ours = {n: m for n, m in sys.modules.items() if _ours(n)}
    for name in ours:
        del sys.modules[name]
    sys.path.insert(0, str(tree))
    try:
        yield
    finally:
        sys.path.remove(str(tree))
        for name in [n for n in sys.modules if _ours(n)]:
            del sys.modules[name]
        sys.modules.update(ours)


def matcher_of(tree: Path) -> tuple[ModuleType, ModuleType]:
    """(decide, geometry) of ``tree``'s matcher, bound to its own modules."""
    import importlib

    with _modules_of(tree):
        decide = importlib.import_module("services.matcher.decide")
        geometry = importlib.import_module("services.matcher.geometry")
    assert Path(geometry.__file__ or "").is_relative_to(tree), geometry.__file__
    return decide, geometry


def against_tree(folder: Path, tree: Path, rounds: int) -> None:
    """This checkout's matcher and ``tree``'s, interleaved pair by pair; best round of each."""
    from services.hasher.features import extract
    from services.hasher.handler import transform_of_candidate
    from services.hasher.hashes import best_dihedral
    from services.matcher import decide, geometry

    sides = {"now": (decide, geometry), "baseline": matcher_of(tree)}
    files = sorted(folder.glob("*.jpg"))
    photos = [f.name.split("-")[1] for f in files]
    features = [extract(f.read_bytes()) for f in files]
    both = list(itertools.combinations(range(len(files)), 2))
    copies = [(i, j) for i, j in both if photos[i] == photos[j]]
    others = [(i, j) for i, j in both if photos[i] != photos[j]]
    pairs = copies + random.Random(0).sample(others, min(len(others), len(copies)))
    hints = [best_dihedral(features[i].pdq, features[j].pdq.hash) for i, j in pairs]
    totals: dict[str, list[float]] = {name: [] for name in sides}
    on_copies: dict[str, list[float]] = {name: [] for name in sides}
    changed = 0
    for r in range(rounds):
        deciders: dict[str, Callable[[int, int, int], tuple[Any, ...]]] = {}
        for name, (d, g) in sides.items():
            views = [g.view_of_bytes(f.working_copy, g.MatchParams()) for f in features]

            def decided(i: int, j: int, n: int, d: Any = d, g: Any = g, views: Any = views
                        ) -> tuple[Any, ...]:  # fmt: skip
                variant, distance = hints[n]
                hint = d.HashHint(distance, transform_of_candidate(variant))
                out = d.decide(views[i], views[j], g.MatchParams(), g.MatchPolicy(), hint)
                return out.verdict, str(out.test)

            deciders[name] = decided
        spent = dict.fromkeys(sides, 0.0)
        spent_copies = dict.fromkeys(sides, 0.0)
        for n, (i, j) in enumerate(pairs):
            verdicts = set()
            for name in list(sides) if (n + r) % 2 else list(sides)[::-1]:
                t = time.process_time()
                verdicts.add(deciders[name](i, j, n))
                took = (time.process_time() - t) * 1000
                spent[name] += took
                spent_copies[name] += took if n < len(copies) else 0.0
            changed += len(verdicts) > 1
        for name in sides:
            totals[name].append(spent[name])
            on_copies[name].append(spent_copies[name])
    print(f"{len(pairs)} pairs ({len(copies)} of copies) of {len(files)} files, features on"
          f" first use included; verdicts or tests that differ: {changed}")  # fmt: skip
    for name, ms in totals.items():
        every = ", ".join(f"{m / len(pairs):.1f}" for m in ms)
        best_copies = min(on_copies[name])
        print(
            f"{name:>8}: {min(ms) / len(pairs):.1f} CPU-ms per pair (rounds: {every}),"
            f" {min(ms) / len(files):.1f} per file; the copies' pairs alone"
            f" {best_copies / len(copies):.1f} per pair, {best_copies / len(files):.1f} per file"
        )


def run_in(tree: Path, folder: Path) -> dict[str, Any]:
    """``measure`` with ``tree``'s libs and services, in a process of its own."""
    path = os.pathsep.join([str(tree / "libs"), str(tree), os.getcwd()])
    out = subprocess.run(
        [sys.executable, "-m", "bench.matcher_cost", "--measure", str(folder)],
        env={**os.environ, "PYTHONPATH": path},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--side", type=int, default=1600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DEV)
    parser.add_argument("--baseline", type=Path, help="a tree with libs and services")
    parser.add_argument("--against", metavar="NAME=VALUE", help="a MatchParams field changed")
    parser.add_argument("--against-tree", type=Path, metavar="DIR",
                        help="another tree's services/matcher, in this process")  # fmt: skip
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.measure:
        print(json.dumps(measure(ns.measure)))
        return 0
    here = Path(__file__).resolve().parent.parent
    trees = {"now": here} | ({"baseline": ns.baseline} if ns.baseline else {})
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "edited"
        write_folder("edited", folder, plan_edited(ns.files),
                     PhotoSource(real_photos(ns.data), ns.side))  # fmt: skip
        if ns.against:
            field, value = ns.against.split("=", 1)
            against(folder, field, value, ns.rounds)
            return 0
        if ns.against_tree:
            against_tree(folder, ns.against_tree, ns.rounds)
            return 0
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for r in range(ns.rounds):
            order = list(trees.items()) if r % 2 == 0 else list(trees.items())[::-1]
            for name, tree in order:
                runs[name].append(run_in(tree, folder))
    for name, results in runs.items():
        best = min(results, key=lambda x: float(x["ms"]))
        pairs, files, ms = int(best["pairs"]), int(best["files"]), float(best["ms"])
        every = ", ".join(f"{float(x['ms']) / pairs:.1f}" for x in results)
        print(
            f"{name:>8}: {ms / pairs:.1f} CPU-ms per pair (rounds: {every}),"
            f" {ms / files:.1f} per file; {pairs} pairs of {files} files; {best['tests']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
