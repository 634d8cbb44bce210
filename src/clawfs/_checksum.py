"""Row checksums: one canonical form, computed independently on each side (DESIGN §3 "Verified").

Canonical form of a row: its fields in order, each written as `<byte length>:<UTF-8 bytes>`, or `-`
for NULL, with nothing between fields (the length prefix makes the form unambiguous).

    documents: id, workspace_id, content, metadata (jsonb::text), created_at (DESIGN §2.2 text)
    vectors:   id, document_id, created_at, embedding (the float32 values, big-endian, as raw bytes)

Row hash: the first 8 bytes of MD5(canonical form), as a signed big-endian 64-bit integer.
Range checksum: rows are grouped by `floor(id / RANGE_SIZE)`; a range's checksum is its row count and
the sum of its row hashes modulo 2^64. Sums do not depend on row order, so each side streams its rows
as they come, in constant memory; a mismatch names a range, and then the rows inside it.

PostgreSQL computes this by SQL over its own values (`to_char` for timestamps, `vector_send` for
embeddings: source/_checksum_sql.py); clawfs computes it from the workspace file. Neither side uses
the migration's conversion code, so a conversion bug cannot hide in both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

FORM = "clawfs-row-md5-sum-v1"  # recorded beside checksums, so a later form is never compared with this one
RANGE_SIZE = 4096
_MOD = 1 << 64


def field(value: str | int | None) -> bytes:
    if value is None:
        return b"-"
    data = str(value).encode("utf-8", "surrogateescape")  # text that is not UTF-8 (a damaged file) hashes too
    return b"%d:%b" % (len(data), data)


def row_hash(canonical: bytes) -> int:
    return int.from_bytes(hashlib.md5(canonical, usedforsecurity=False).digest()[:8], "big", signed=True)


def document_canonical(id: int, workspace_id: str, content: str, metadata: str | None, created_at: str | None) -> bytes:
    return field(id) + field(workspace_id) + field(content) + field(metadata) + field(created_at)


def vector_canonical(id: int, document_id: int, created_at: str | None, embedding_be: bytes) -> bytes:
    return field(id) + field(document_id) + field(created_at) + b"%d:%b" % (len(embedding_be), embedding_be)


@dataclass(frozen=True)
class RangeSum:
    rows: int
    sum: int  # modulo 2^64, unsigned

    def __add__(self, other: RangeSum) -> RangeSum:
        return RangeSum(self.rows + other.rows, (self.sum + other.sum) % _MOD)

    def hex(self) -> str:
        return f"{self.sum:016x}"


def range_of(id: int) -> int:
    return id // RANGE_SIZE


class RangeSums:
    """Accumulates (id, row hash) pairs into per-range checksums."""

    def __init__(self) -> None:
        self.rows: dict[int, int] = {}
        self.sums: dict[int, int] = {}

    def add(self, id: int, hash_: int) -> None:
        r = id // RANGE_SIZE
        self.rows[r] = self.rows.get(r, 0) + 1
        self.sums[r] = self.sums.get(r, 0) + hash_

    def result(self) -> dict[int, RangeSum]:
        return {r: RangeSum(self.rows[r], self.sums[r] % _MOD) for r in sorted(self.rows)}


def total(ranges: dict[int, RangeSum]) -> RangeSum:
    out = RangeSum(0, 0)
    for value in ranges.values():
        out = out + value
    return out


def from_sql(rows: Iterable[tuple[int, int, int]]) -> dict[int, RangeSum]:
    """(range, rows, sum as a possibly negative or large integer) rows of the SQL side."""
    return {int(r): RangeSum(int(n), int(s) % _MOD) for r, n, s in rows}


def checksum_record(ranges: dict[str, dict[int, RangeSum]]) -> dict[str, object]:
    """Whole-table checksums as workspace metadata records them (key `checksums`), with their form."""
    recorded: dict[str, object] = {"form": FORM}
    for table, sums in ranges.items():
        whole = total(sums)
        recorded[table] = {"rows": whole.rows, "sum": whole.hex()}
    return recorded
