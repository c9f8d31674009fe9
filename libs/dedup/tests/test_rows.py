"""Rows: an id-keyed matrix that grows, replaces in place and fills the gaps it leaves."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from dedup.rows import INITIAL_ROWS, Rows


def test_upsert_replaces_delete_moves_the_last_row_into_the_gap() -> None:
    rows: Rows[str] = Rows(2, np.float32)
    for i in range(3):
        rows.upsert(f"r{i}", [i, i], f"p{i}")
    rows.upsert("r1", [9, 9], "again")
    rows.delete("r0")
    rows.delete("missing")

    assert len(rows) == 2
    assert {rows.id_at(r): (rows.matrix[r].tolist(), rows.payload_at(r)) for r in range(2)} == {
        "r1": ([9, 9], "again"),
        "r2": ([2, 2], "p2"),
    }
    found = rows.get("r2")
    assert found is not None and found[1] == "p2"
    assert rows.get("r0") is None


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3 * INITIAL_ROWS)), max_size=400))
def test_rows_agree_with_a_dict(operations: list[tuple[bool, int]]) -> None:
    rows: Rows[int] = Rows(1, np.int64)
    model: dict[str, int] = {}
    for insert, key in operations:
        if insert:
            rows.upsert(str(key), [key], key)
            model[str(key)] = key
        else:
            rows.delete(str(key))
            model.pop(str(key), None)
    assert len(rows) == len(model) == len(rows.matrix)
    assert {rows.id_at(r): int(rows.matrix[r, 0]) for r in range(len(rows))} == model
    assert sorted(rows.id_at(r) for r in range(len(rows))) == sorted(model)
