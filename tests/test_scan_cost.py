"""bench/scan_cost.py's pure parts: the recipe's edits, the process-tree accounting and
its arithmetic, the tables (no dev sets, no servers)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import recipe
from bench.metrics import Label
from bench.proctree import (
    KINDS,
    ProcStat,
    Tally,
    Usage,
    descendants,
    kind_of,
    parse_pss,
    parse_stat,
)
from bench.scan_cost import (
    COST_EDITS,
    Contender,
    Folder,
    accuracy,
    accuracy_table,
    clusters_of,
    cost,
    cost_table,
    cost_verdicts,
    dedup_command,
    plan_edited,
    plan_unique,
    without_inference_ms,
)

ROOT = Path(__file__).resolve().parents[1]


def gradient(w: int = 640, h: int = 480) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


# ---- the recipe ----------------------------------------------------------------------------


def test_the_recipe_edits_follow_imagededup() -> None:
    img = gradient()
    crop = recipe.crop_7_8(img)
    assert crop.size == (560, 420)  # imagededup's 560 x 420 of 640 x 480
    assert crop.getpixel((0, 0)) == img.getpixel((40, 30))  # centred
    flip_h, flip_v = recipe.RECIPE["flip-h"](img), recipe.RECIPE["flip-v"](img)
    assert flip_h.getpixel((0, 0)) == img.getpixel((639, 0))
    assert flip_v.getpixel((0, 0)) == img.getpixel((0, 479))
    turned = recipe.rotate_25(img)
    assert turned.size == img.size  # not expanded: the corners go black
    assert turned.getpixel((0, 0)) == (0, 0, 0)
    assert recipe.square(img).size == (480, 480)
    assert set(recipe.RECIPE) == {"crop-7-8", "flip-h", "flip-v", "rotate-25", "square"}


def test_recipe_copies_keep_the_original_and_its_format() -> None:
    png = recipe.save(gradient(200, 100), "PNG")
    copies = recipe.recipe_copies("set/photo.png", png)
    assert [c[2] for c in copies] == ["original", *recipe.RECIPE]
    assert copies[0] == ("set/photo.png", png, "original")
    assert all(name.endswith(".png") for name, _, _ in copies)
    jpg = recipe.save(gradient(200, 100), "JPEG")
    assert all(n.endswith(".jpg") for n, _, _ in recipe.recipe_copies("a/b.jpg", jpg)[1:])


def test_only_even_indexed_unsplash_photos(tmp_path: Path) -> None:
    folder = tmp_path / recipe.UNSPLASH
    folder.mkdir()
    for name in ["d.jpg", "a.jpg", "c.jpg", "b.jpg", "e.jpg", "CREDITS", "groups.csv"]:
        (folder / name).write_bytes(b"x")
    assert [p.name for p in recipe.even_unsplash(tmp_path)] == ["a.jpg", "c.jpg", "e.jpg"]


def test_other_shots_merged_counts_pairs_across_groups_of_a_family() -> None:
    def shot(f: str, group: str, family: str) -> Label:
        return Label(f, group, family, "other shot", 10, 10, f)

    labels = {
        x.file: x
        for x in [
            shot("s0", "scene-f0", "scene"), shot("s1", "scene-f1", "scene"),
            shot("s2", "scene-f2", "scene"), shot("m0", "left", "stereo"),
            shot("m1", "right", "stereo"), Label("p", "p", "p", "original", 9, 9, "p"),
            Label("p2", "p", "p", "flip-h", 9, 9, "p2"),
        ]
    }  # fmt: skip
    predicted = {"s0": "a", "s1": "a", "s2": "b", "m0": "c", "m1": "d", "p": "e", "p2": "e"}
    # Other-shot pairs: 3 in the scene, 1 stereo; merged: s0-s1. A copy pair is no shot.
    assert recipe.other_shots_merged(predicted, labels) == (1, 4)


# ---- the folders ---------------------------------------------------------------------------


def test_the_folder_plans() -> None:
    edited = plan_edited(10)
    assert len(edited) == 10
    assert next(e for _, e in edited[:4]) is None and all(e for _, e in edited[1:4])
    assert sum(e is None for _, e in edited) == 3  # 4 + 4 + 2
    unique = plan_unique(100)
    assert len(unique) == 100 and sum(e is None for _, e in unique) == 95
    assert {e for _, e in unique if e} <= set(COST_EDITS)
    assert plan_unique(1) == [(0, None)]


def test_every_cost_edit_makes_an_image() -> None:
    img = gradient(160, 120)
    for name, (edit, quality) in COST_EDITS.items():
        out = edit(img)
        assert out.width > 0 and out.height > 0, name
        assert 1 <= quality <= 95


# ---- the process tree ----------------------------------------------------------------------


def test_parse_stat_takes_a_name_with_spaces_and_parentheses() -> None:
    fields = " ".join(["S", "41"] + ["0"] * 9 + ["150", "50"] + ["0"] * 8 + ["25"] + ["0"] * 20)
    s = parse_stat(f"1234 (a (weird) name) {fields}")
    assert (s.pid, s.ppid, s.comm) == (1234, 41, "a (weird) name")
    import os

    assert s.cpu_seconds == pytest.approx(200 / os.sysconf("SC_CLK_TCK"))
    assert s.rss_bytes == 25 * os.sysconf("SC_PAGE_SIZE")


def test_descendants_follow_the_parent_links() -> None:
    stats = [ProcStat(p, pp, "x", 0.0, 0) for p, pp in [(2, 1), (3, 2), (4, 3), (5, 9), (6, 2)]]
    assert sorted(s.pid for s in descendants(1, stats)) == [2, 3, 4, 6]
    assert descendants(4, stats) == []


def test_kinds_of_process() -> None:
    assert kind_of("tritonserver", "/x/tritonserver --model-repository m") == "triton"
    assert kind_of("triton_python_b", "/x/triton_python_backend_stub m.py") == "triton"
    assert kind_of("milvus", "/x/lib/milvus /db 127.0.0.1:1") == "milvus"
    assert kind_of("dedup", "/v/bin/python /v/bin/dedup scan d") == "main"
    assert kind_of("bash", "bash -c source stack/lib.sh") == "main"


def test_pss_is_read_from_smaps_rollup_in_bytes() -> None:
    rollup = "55d0-7ffc ---p 00000000 00:00 0 [rollup]\nRss: 2048 kB\nPss: 1536 kB\n"
    assert parse_pss(rollup) == 1536 * 1024
    assert parse_pss("Rss: 2048 kB\n") is None


def test_the_tally_sums_rss_per_sample_and_keeps_the_last_cpu() -> None:
    kinds = {1: "main", 2: "milvus", 3: "triton", 4: "triton"}

    def tree(*rows: tuple[int, float, int]) -> list[ProcStat]:
        return [ProcStat(pid, 0, f"p{pid}", cpu, rss) for pid, cpu, rss in rows]

    t = Tally()
    t.add(tree((1, 1.0, 100), (2, 0.5, 50), (3, 2.0, 300)), lambda s: kinds[s.pid])
    t.add(tree((1, 1.5, 120), (3, 2.5, 100), (4, 0.2, 100)), lambda s: kinds[s.pid])
    assert t.peak_rss == 450  # the first sample: 100 + 50 + 300
    assert t.peak_rss_by_kind == {"main": 120, "milvus": 50, "triton": 300}
    assert t.peak_rss_except["triton"] == 150 and t.peak_rss_except["main"] == 350
    assert t.cpu_by_kind() == {"main": 1.5, "milvus": 0.5, "triton": pytest.approx(2.7)}
    assert set(t.cpu_by_kind()) == set(KINDS)


def test_a_forked_child_is_judged_again_once_it_execs() -> None:
    t = Tally()
    t.add([ProcStat(7, 1, "dedup", 0.0, 10)], lambda s: kind_of(s.comm, ""))
    assert t.kind[7] == "main"  # still the scan's copy, before its exec
    t.add([ProcStat(7, 1, "milvus", 0.1, 200)], lambda s: kind_of(s.comm, ""))
    assert t.kind[7] == "milvus" and t.cpu_by_kind()["milvus"] == 0.1


def test_measure_counts_a_grandchild_its_parent_left_behind() -> None:
    """A child that starts a busy grandchild and exits at once: the grandchild is re-parented
    to the measuring process (a subreaper) and its CPU counted. In a process of its own, as
    measuring reaps every child and makes its process a subreaper."""
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    parent = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {busy!r}])"
    script = textwrap.dedent(f"""
        import json, sys
        from bench.proctree import measure
        u = measure([sys.executable, "-c", {parent!r}])
        print(json.dumps([u.cpu_seconds, u.wall_seconds, u.returncode, u.processes]))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
        timeout=60,
    )  # fmt: skip
    cpu, _wall, rc, processes = json.loads(done.stdout)
    assert rc == 0
    assert cpu >= 0.4  # the grandchild's busy loop, though its parent never waited for it
    assert processes >= 1


# ---- the arithmetic and the tables ---------------------------------------------------------


def usage(cpu: float, triton: float = 0.0, milvus: float = 0.0, wall: float = 1.0,
          rss: int = 100_000_000) -> Usage:  # fmt: skip
    main = cpu - triton - milvus
    return Usage(
        cpu_seconds=cpu, wall_seconds=wall, peak_rss_bytes=rss,
        cpu_by_kind={"main": main, "milvus": milvus, "triton": triton},
        peak_rss_by_kind={"main": rss // 2, "milvus": rss // 4, "triton": rss // 4},
        processes=3, returncode=0, rss_except={"triton": rss * 3 // 4},
    )  # fmt: skip


def test_cost_per_image_takes_the_start_up_off() -> None:
    runs = [usage(14.0, triton=4.0, milvus=1.0), usage(12.0, triton=3.0, milvus=1.0),
            usage(13.0, triton=3.5, milvus=1.0)]  # fmt: skip
    empties = [usage(3.0, triton=1.0, milvus=0.5, wall=10.0), usage(3.0, triton=1.0, milvus=0.5)]
    c = cost("dedup scan", runs, empties, files=100)
    assert c.cpu_ms == pytest.approx(100.0)  # (13 - 3) s / 100 files
    assert c.cpu_ms_by_kind["triton"] == pytest.approx(25.0)  # (3.5 - 1) s / 100
    assert c.cpu_ms_by_kind["milvus"] == pytest.approx(5.0)
    assert without_inference_ms(c) == pytest.approx(75.0)
    assert c.startup_cpu_seconds == 3.0 and c.startup_wall_seconds == pytest.approx(5.5)
    assert c.peak_rss_mb == pytest.approx(100.0) and c.peak_rss_mb_without_triton == 75.0
    assert c.unattributed_ms == pytest.approx(0.0)


def test_the_cost_table_and_verdicts() -> None:
    folder = Folder("edited photos", Path("/x"), 100, 25, 75, 12.5)
    costs = [
        cost("decode-only", [usage(1.2)], [usage(0.2)], 100),  # 10 ms
        cost("immaculate sscd_distilled", [usage(4.2, wall=3.0)], [usage(0.2)], 100),
        cost(
            "dedup scan",
            [usage(13.0, triton=3.5, wall=20.0, rss=800_000_000)],
            [usage(3.0, triton=1.0)],
            100,
        ),
    ]
    text = cost_table(folder, costs)
    assert "edited photos: 100 files (25 originals, 75 edits" in text
    assert "without the model's inference" in text and "model inference (Triton)" in text
    dedup_line = next(line for line in text.splitlines() if line.startswith("dedup scan"))
    assert " 100.0 " in dedup_line and "10.0x" in dedup_line
    verdicts = cost_verdicts(costs)
    assert (
        verdicts[0].startswith("dedup without the model's inference: 7.5x")
        and "MISSES" in verdicts[0]
    )
    assert "MISSES" in verdicts[1] and "MISSES" in verdicts[2]


def test_accuracy_from_immaculate_json_and_the_table(tmp_path: Path) -> None:
    folder = tmp_path / "recipe"
    out = tmp_path / "out.json"
    out.write_text(json.dumps({
        "exact": [[str(folder / "a.jpg"), str(folder / "a2.jpg")]],
        "near": [[str(folder / "a2.jpg"), str(folder / "a3.jpg")], [str(folder / "s0.jpg"),
                 str(folder / "s1.jpg")]],
        "skipped": [str(folder / "bad.jpg")],
    }))  # fmt: skip
    c = Contender("immaculate pdq", lambda d, j: [], stdout_json=True)
    predicted, unreadable = clusters_of(c, out, folder)
    assert predicted["a.jpg"] == predicted["a2.jpg"] == predicted["a3.jpg"]
    assert unreadable == {"bad.jpg"}
    labels = {
        "a.jpg": Label("a.jpg", "a", "a", "original", 9, 9, "1"),
        "a2.jpg": Label("a2.jpg", "a", "a", "flip-h", 9, 9, "2"),
        "a3.jpg": Label("a3.jpg", "a", "a", "square", 9, 9, "3"),
        "b.jpg": Label("b.jpg", "b", "b", "original", 9, 9, "4"),
        "b2.jpg": Label("b2.jpg", "b", "b", "flip-v", 9, 9, "5"),
        "s0.jpg": Label("s0.jpg", "s-0", "s", "other shot", 9, 9, "6"),
        "s1.jpg": Label("s1.jpg", "s-1", "s", "other shot", 9, 9, "7"),
    }
    a = accuracy("immaculate pdq", predicted, unreadable, labels, usage(0.7))
    o = a.outcome
    assert (o.true_pairs, o.predicted_pairs, o.correct_pairs) == (4, 4, 3)
    assert (a.other_merged, a.other_pairs) == (1, 1)
    assert not a.meets_target()
    assert a.found == {"flip-h": 1, "square": 1, "flip-v": 0}
    assert a.copies == {"flip-h": 1, "square": 1, "flip-v": 1}
    table = accuracy_table("t", [a])
    assert "immaculate pdq" in table and "1/1" in table and "flip-v 0/1" in table


def test_decode_only_decodes_at_the_hashers_working_side() -> None:
    from services.hasher.decode import decode
    from services.hasher.thumbnail import WORKING_SIDE

    assert inspect.signature(decode).parameters["max_side"].default == WORKING_SIDE


def test_every_scan_is_measured_from_nothing() -> None:
    # With its state, the second round would resume the first and index nothing.
    command = dedup_command()
    assert command[1:] == ["scan", "--no-state"]
