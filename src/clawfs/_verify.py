"""Verification: is a workspace an exact copy of its source? Evidence per table (DESIGN §3 "Verified").

Each side computes per-range checksums on its own (PostgreSQL by SQL, the workspace from its file,
`clawfs._checksum`); ranges that differ are narrowed down to the rows, by comparing row hashes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from ._checksum import RangeSum, total


@dataclass(frozen=True)
class TableCheck:
    """One table of one workspace: counts and checksums of both sides, and the rows that differ."""

    table: str
    source_rows: int
    workspace_rows: int
    source_checksum: str
    workspace_checksum: str
    missing: tuple[int, ...] = ()  # in PostgreSQL, not in the workspace
    extra: tuple[int, ...] = ()  # in the workspace, not in PostgreSQL
    changed: tuple[int, ...] = ()  # in both, different
    skipped: tuple[int, ...] = field(default=())  # missing on purpose (--on-bad-row skip)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def problems(self) -> list[str]:
        out = []
        for what, ids in (
            ("missing from the workspace", self.missing),
            ("not in PostgreSQL", self.extra),
            ("different", self.changed),
        ):
            if ids:
                shown = ", ".join(map(str, ids[:20])) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
                out.append(f"{self.table}: {len(ids)} row(s) {what}: id {shown}")
        return out


def compare_table(
    table: str,
    source: dict[int, RangeSum],
    workspace: dict[int, RangeSum],
    source_rows: Callable[[Sequence[int]], dict[int, int]],
    workspace_rows: Callable[[Sequence[int]], dict[int, int]],
    skipped: Collection[int] = (),
) -> TableCheck:
    """Compare range checksums; fetch row hashes of the ranges that differ to name the rows."""
    differing = sorted(r for r in source.keys() | workspace.keys() if source.get(r) != workspace.get(r))
    missing: list[int] = []
    extra: list[int] = []
    changed: list[int] = []
    skipped_found: list[int] = []
    if differing:
        theirs = source_rows(differing)
        ours = workspace_rows(differing)
        absent = set(theirs) - set(ours)
        skipped_found = sorted(absent & set(skipped))
        missing = sorted(absent - set(skipped))
        extra = sorted(set(ours) - set(theirs))
        changed = sorted(i for i in set(theirs) & set(ours) if theirs[i] != ours[i])
    return TableCheck(
        table=table,
        source_rows=total(source).rows,
        workspace_rows=total(workspace).rows,
        source_checksum=total(source).hex(),
        workspace_checksum=total(workspace).hex(),
        missing=tuple(missing),
        extra=tuple(extra),
        changed=tuple(changed),
        skipped=tuple(skipped_found),
    )
