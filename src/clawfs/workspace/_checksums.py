"""The workspace side of the row checksums of `clawfs._checksum`, read from the file itself."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .._checksum import RANGE_SIZE, RangeSum, RangeSums, document_canonical, row_hash, vector_canonical

TABLES = ("documents", "vectors")
_QUERIES = {
    "documents": "SELECT id, workspace_id, content, metadata, created_at FROM document_store",
    "vectors": "SELECT id, document_id, created_at, embedding FROM vectors",
}


def _hashes(
    db: sqlite3.Connection, table: str, where: str = "", params: Sequence[int] = ()
) -> Iterator[tuple[int, int]]:
    cursor = db.execute(_QUERIES[table] + where, params)
    if table == "documents":
        for row in cursor:
            yield row[0], row_hash(document_canonical(*row))
    else:
        for id_, document_id, created_at, blob in cursor:
            yield id_, row_hash(vector_canonical(id_, document_id, created_at, _big_endian(blob)))


def stored_row_hash(table: str, row: Sequence[Any]) -> int:
    """The row hash of one row as stored (the columns of `document_store` or `vectors`, in order)."""
    if table == "documents":
        return row_hash(document_canonical(*row))
    id_, document_id, blob, created_at = row
    return row_hash(vector_canonical(id_, document_id, created_at, _big_endian(blob)))


def _big_endian(blob: object) -> bytes:
    if isinstance(blob, bytes) and len(blob) % 4 == 0:
        return np.frombuffer(blob, dtype="<f4").astype(">f4").tobytes()
    return str(blob).encode("utf-8", "surrogateescape")  # not a float32 array: hash what is there, it differs


def range_checksums(db: sqlite3.Connection, table: str) -> dict[int, RangeSum]:
    sums = RangeSums()
    for id_, h in _hashes(db, table):
        sums.add(id_, h)
    return sums.result()


def row_hashes(db: sqlite3.Connection, table: str, ranges: Sequence[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in ranges:
        out.update(_hashes(db, table, " WHERE id >= ? AND id < ?", (r * RANGE_SIZE, (r + 1) * RANGE_SIZE)))
    return out
