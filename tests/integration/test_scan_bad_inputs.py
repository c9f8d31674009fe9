"""`dedup scan` over the bad-input corpus (tests/support/bad_inputs.py): every file one
entry with its typed status and a reason, duplicates merged only with copies of the same
picture, hostile names escaped in the gallery; and the kinds only a folder has (an
unreadable file, symlink loops, a dangling link, a FIFO), scanned by a process that,
like any user but root, cannot read a mode-000 file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dedup.report import gallery
from tests.integration.conftest import ROOT
from tests.support import bad_inputs

# Root reads any file whatever its mode: without these two capabilities it cannot (the
# same check a non-root user meets; a user switch would not do here, the interpreter
# lives under /root).
NO_DAC_OVERRIDE = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def scan(folder: Path, out: Path, *extra: str, prefix: list[str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [*(prefix or []), sys.executable, "-m", "apps.cli", "scan", str(folder),
         "--json", str(out), "--quiet", *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        # The scan's state (apps.scan.state) beside the test's files, not in ~/.cache.
        env=os.environ | bad_inputs.HASHER_ENV | {"XDG_CACHE_HOME": str(out.parent / "cache")},
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    result = json.loads(out.read_text())
    # 1: duplicates were found (dedup scan --help)
    assert done.returncode == (1 if result["totals"]["duplicates"] else 0)
    return {e["path"]: e for e in result["images"]}


def test_scan_gives_every_bad_input_its_status(tmp_path: Path) -> None:
    cases = [c for c in bad_inputs.cases() if c.storable]
    folder, out, html = tmp_path / "corpus", tmp_path / "scan.json", tmp_path / "gallery"
    for c in cases:
        (folder / c.name).parent.mkdir(parents=True, exist_ok=True)
        (folder / c.name).write_bytes(c.data)

    started = time.monotonic()
    entries = scan(folder, out, "--html", str(html), "--workers", "4")
    print(f"scan of {len(cases)} bad inputs: {time.monotonic() - started:.1f} s")

    assert set(entries) == {c.name for c in cases}
    print(bad_inputs.table([(c.kind, e["status"], e["decision"], e["reason"]) for c in cases
                            if (e := entries[c.name])]))  # fmt: skip
    for c in cases:
        e = entries[c.name]
        assert (e["status"], c.kind) == (c.status, c.kind), e
        assert isinstance(e["reason"], str) and e["reason"].strip(), e
        assert e["decision"] != "unreadable" if c.status == "ok" else e["decision"] == "unreadable"
    bad_inputs.assert_clusters_are_copies({n: e["cluster"] for n, e in entries.items()}, cases)

    # Names are data: the gallery shows the hostile ones as text, never as markup.
    page = (html / "index.html").read_text()
    assert "<img src=x" not in page and page.count("<script") == 2 and "<b>bold" not in page
    names = gallery.names(page)  # the page's script shows them as text (textContent)
    assert any(n.endswith("<img src=x onerror=alert(1)><script>.jpg") for n in names)
    assert any(n.endswith("<b>bold</b> & <i>it</i>.jpg") for n in names)


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"), reason="root needs setpriv to drop"
)
def test_files_only_a_folder_has(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    kinds = bad_inputs.make_filesystem_kinds(folder)
    prefix = NO_DAC_OVERRIDE if os.geteuid() == 0 else []
    # A FIFO read would block: the scan's timeout is the test's limit.
    stack = ["--triton-url", "127.0.0.1:8001"]  # the stack's Triton: no private one needed
    entries = scan(folder, tmp_path / "scan.json", *stack, prefix=prefix)

    assert set(entries) == {k.name for k in kinds if k.status}
    print(bad_inputs.table([(k.kind, e["status"], e["decision"], e["reason"]) for k in kinds
                            if (e := entries.get(k.name, {}))]))  # fmt: skip
    for k in kinds:
        if k.status:
            e = entries[k.name]
            assert (e["status"], k.kind) == (k.status, k.kind), e
            assert e["reason"].strip(), e
    assert "Permission denied" in entries["unreadable.jpg"]["reason"]
    assert "symbolic links" in entries["loop-a.jpg"]["reason"]
    assert "not a regular file" in entries["pipe.jpg"]["reason"]
