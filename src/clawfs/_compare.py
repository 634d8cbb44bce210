"""Which rows differ between PostgreSQL and a workspace file, found by comparison (clawfs._checksum).

Both sides compute per-range row checksums of a table; only ranges that differ are narrowed to
per-row hashes, and only those rows need reading. `sync` uses it to catch up with PostgreSQL, and
`migrate --resume` to find which rows of an interrupted build are missing, changed or gone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ._checksum import RangeSum
from .source import Source


class RowSums(Protocol):
    """The file's side: a workspace file being read, or a build under way."""

    def range_checksums(self, table: str) -> dict[int, RangeSum]: ...

    def row_hashes(self, table: str, ranges: Sequence[int]) -> dict[int, int]: ...


def differences(
    source: Source, ours: RowSums, workspace_id: str, table: str, theirs: dict[int, RangeSum]
) -> tuple[set[int], set[int], set[int]]:
    """(ids to insert or update, ids to delete, which of the first are new), by range checksums."""
    mine = ours.range_checksums(table)
    differing = sorted(r for r in theirs.keys() | mine.keys() if theirs.get(r) != mine.get(r))
    if not differing:
        return set(), set(), set()
    their_rows = source.row_hashes(table, workspace_id, differing)
    our_rows = ours.row_hashes(table, differing)
    upsert = {i for i, h in their_rows.items() if our_rows.get(i) != h}
    delete = set(our_rows) - set(their_rows)
    return upsert, delete, upsert - set(our_rows)
