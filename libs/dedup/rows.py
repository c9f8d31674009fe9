"""Rows of fixed width kept in one numpy matrix, by id: the storage of an in-memory index.

Upsert replaces a row in place or appends one (the matrix grows by doubling, so n
appends cost O(n) copies); delete moves the last row into the gap. Searches read
`matrix` (the live rows, in no particular order) and map row numbers back with `id_at`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

Payload = TypeVar("Payload")

INITIAL_ROWS = 64


class Rows(Generic[Payload]):
    def __init__(self, width: int, dtype: npt.DTypeLike) -> None:
        self._matrix = np.zeros((INITIAL_ROWS, width), dtype=dtype)
        self._ids: list[str] = []
        self._payloads: list[Payload] = []
        self._row_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def matrix(self) -> npt.NDArray[Any]:
        """The live rows (a view: valid until the next upsert or delete)."""
        return self._matrix[: len(self._ids)]

    def id_at(self, row: int) -> str:
        return self._ids[row]

    def payload_at(self, row: int) -> Payload:
        return self._payloads[row]

    def get(self, row_id: str) -> tuple[npt.NDArray[Any], Payload] | None:
        row = self._row_of.get(row_id)
        return None if row is None else (self._matrix[row].copy(), self._payloads[row])

    def upsert(self, row_id: str, values: npt.ArrayLike, payload: Payload) -> None:
        row = self._row_of.get(row_id)
        if row is None:
            row = len(self._ids)
            if row == len(self._matrix):
                grown = np.zeros((2 * row, self._matrix.shape[1]), self._matrix.dtype)
                grown[:row] = self._matrix
                self._matrix = grown
            self._ids.append(row_id)
            self._payloads.append(payload)
            self._row_of[row_id] = row
        else:
            self._payloads[row] = payload
        self._matrix[row] = values

    def delete(self, row_id: str) -> None:
        row = self._row_of.pop(row_id, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:
            self._matrix[row] = self._matrix[last]
            self._ids[row] = self._ids[last]
            self._payloads[row] = self._payloads[last]
            self._row_of[self._ids[row]] = row
        self._ids.pop()
        self._payloads.pop()
