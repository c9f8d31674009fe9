"""Our PDQ against the reference hashes of facebook/ThreatExchange (tolerance 16 bits).

The data set lives outside the repository (``<repo>/../shared/data/dev``); without it
these tests skip. The reference implementations decode the full image; we hash through
the production path (DCT-scaled decode, 512-px working copy, bar trimming), so this
also checks that the shortcuts stay within tolerance.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from dedup.imaging import DIHEDRAL
from services.hasher.features import extract
from services.hasher.hashes import hamming

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data" / "dev" / "threatexchange-pdq"
TOLERANCE = 16


def _rows() -> list[dict[str, str]]:
    path = DATA / "expected_pdq_hashes.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


ROWS = _rows()
pytestmark = pytest.mark.skipif(not ROWS, reason=f"reference data not found under {DATA}")


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_pdq_matches_the_reference_hash(row: dict[str, str]) -> None:
    features = extract((DATA / row["file"]).read_bytes())
    expected = bytes.fromhex(row["pdq_hex"])
    assert hamming(features.pdq.hash, expected) <= TOLERANCE, features.pdq.hex()
    if row["quality"]:
        assert abs(features.pdq.quality - int(row["quality"])) <= 10


def test_dihedral_variants_match_the_turned_files() -> None:
    # bridge-1 is the original; files 2..8 are its rotations/flips, hashed by the
    # reference from the turned pixels. Our variants come from bridge-1's DCT alone.
    expected = {
        Path(r["file"]).name: bytes.fromhex(r["pdq_hex"]) for r in ROWS if "/dih/" in r["file"]
    }
    if len(expected) != 8:
        pytest.skip("the dihedral files are not all present")
    variants = extract((DATA / "reg-test-input/dih/bridge-1-original.jpg").read_bytes()).pdq
    names = {
        "bridge-1-original.jpg": "identity",
        "bridge-2-rotate-90.jpg": "rot90",
        "bridge-3-rotate-180.jpg": "rot180",
        "bridge-4-rotate-270.jpg": "rot270",
        "bridge-5-flipx.jpg": "flip_ud",  # the reference mirrors about the x axis
        "bridge-6-flipy.jpg": "flip_lr",
        "bridge-7-flip-plus-1.jpg": "transpose",
        "bridge-8-flip-minus-1.jpg": "transverse",
    }
    for name, transform in names.items():
        got = variants.dihedral[DIHEDRAL.index(transform)]
        assert hamming(got, expected[name]) <= TOLERANCE, name
