"""What the command line shows people: live progress, summary tables, one-line errors.

The library never prints; the CLI passes `LiveProgress` in and renders the report values it gets back.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table

from ._verify import VerificationReport
from .report import MigrationReport

log = logging.getLogger("clawfs")
LOG_EVERY_SECONDS = 5.0


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


class LiveProgress:
    """A bar per step with rate and ETA on a terminal; otherwise a log line every few seconds."""

    def __init__(self, stream: IO[str]) -> None:
        self.interactive = stream.isatty()
        self.console = Console(file=stream)
        self.bar: RichProgress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.done: dict[str, int] = {}
        self.totals: dict[str, int | None] = {}
        self.started: dict[str, float] = {}
        self.units: dict[str, str] = {}
        self.last_log = 0.0
        if self.interactive:
            self.bar = RichProgress(
                TextColumn("{task.description:<10}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.bar.start()

    def start(self, step: str, total: int | None, unit: str = "rows") -> None:
        self.units[step] = unit
        self.done[step] = 0
        self.totals[step] = total
        self.started[step] = time.monotonic()
        if self.bar is not None:
            self.tasks[step] = self.bar.add_task(step, total=total, rate="")
        else:
            log.info("%s: started (%s %s)", step, total if total is not None else "?", unit)

    def advance(self, step: str, rows: int, nbytes: int = 0) -> None:
        self.done[step] = self.done.get(step, 0) + rows
        elapsed = time.monotonic() - self.started.get(step, time.monotonic())
        rate = self.done[step] / elapsed if elapsed > 0 else 0.0
        if self.bar is not None and step in self.tasks:
            self.bar.update(self.tasks[step], advance=rows, rate=f"{rate:>9,.0f}/s")
        elif time.monotonic() - self.last_log >= LOG_EVERY_SECONDS:
            self.last_log = time.monotonic()
            total = self.totals.get(step)
            eta = (total - self.done[step]) / rate if total and rate > 0 else None
            unit = self.units.get(step, "rows")
            log.info(
                "%s: %s/%s %s, %s %s/s%s",
                step,
                f"{self.done[step]:,}",
                f"{total:,}" if total is not None else "?",
                unit,
                f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}",
                unit,
                f", ETA {eta:.0f} s" if eta is not None else "",
            )

    def finish(self, step: str) -> None:
        if self.bar is not None and step in self.tasks:
            task = self.tasks[step]
            self.bar.update(task, completed=self.done.get(step, 0), total=self.done.get(step, 0) or 1)
        elif step in self.started:
            log.info(
                "%s: done, %s rows in %.1f s",
                step,
                f"{self.done.get(step, 0):,}",
                time.monotonic() - self.started[step],
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def migration_tables(report: MigrationReport, console: Console) -> None:
    steps = Table(title="clawfs migrate", title_justify="left")
    for column in ("Step", "Rows", "Bytes", "Duration", "Rate"):
        steps.add_column(column, justify="left" if column == "Step" else "right")
    for s in report.steps:
        steps.add_row(
            s.step,
            f"{s.rows:,}",
            human_bytes(s.bytes),
            f"{s.seconds:.2f} s",
            f"{s.rows_per_second:,.0f} rows/s" if s.rows else "",
        )
    steps.add_section()
    total_rows = sum(w.documents + w.vectors for w in report.workspaces)
    steps.add_row(
        "Total",
        f"{total_rows:,}",
        "",
        f"{report.seconds:.2f} s",
        f"{total_rows / report.seconds:,.0f} rows/s" if report.seconds else "",
    )
    console.print(steps)
    spaces = Table(title="workspaces", title_justify="left")
    for column in ("Workspace", "Documents", "Vectors", "Database"):
        spaces.add_column(column, justify="right" if column in ("Documents", "Vectors") else "left")
    for w in report.workspaces:
        spaces.add_row(w.workspace_id, f"{w.documents:,}", f"{w.vectors:,}", w.database)
    console.print(spaces)
    where = f" under {os.path.dirname(os.path.dirname(report.identities[0]))}" if report.identities else ""
    console.print(f"identities: {len(report.identities)} file(s){where}")
    if report.encrypted:
        console.print("encrypted: yes (SQLCipher; each HNSW index inside its encrypted database)")
    console.print(
        f"verified: {'yes' if report.verified else 'no (--no-verify)'}; source {report.source}, "
        f"snapshot at WAL {report.snapshot.get('wal_lsn')}"
    )
    for check in report.checks:
        figures = "; ".join(_search_figure(s) for s in check.searches) or "no sampled searches"
        tables = ", ".join(f"{t.table} checksum {t.workspace_checksum}" for t in check.tables)
        console.print(f"  {check.workspace_id}: {tables}; {figures}", markup=False, highlight=False)
    for row in report.skipped:
        console.print(f"skipped (bad row): {row.table} id {row.id}: {row.reason}")
    for note in report.notes:
        console.print(f"note: {note}")


def _search_figure(search: Any) -> str:
    if search.check == "fts":
        overlap = f", top-10 overlap {search.top10_overlap:.2f}" if search.top10_overlap is not None else ""
        return f"full text: {search.queries} queries, finds {search.figure:.3f} of PostgreSQL's matches{overlap}"
    return f"vectors: {search.queries} queries, recall@10 {search.figure:.3f}"


def verification_tables(report: VerificationReport, console: Console) -> None:
    """Like pgcopydb's `compare data`: a table per workspace, then one ERROR line per problem."""
    for ws in report.workspaces:
        table = Table(title=f"workspace {ws.workspace_id}", title_justify="left")
        for column in ("Table", "PostgreSQL rows", "Workspace rows", "PostgreSQL checksum", "Workspace checksum", ""):
            table.add_column(column, justify="left" if column in ("Table", "") else "right")
        for t in ws.tables:
            table.add_row(
                t.table,
                f"{t.source_rows:,}",
                f"{t.workspace_rows:,}",
                t.source_checksum,
                t.workspace_checksum,
                "ok" if t.ok else "MISMATCH",
            )
        console.print(table)
        for search in ws.searches:
            console.print(
                f"  {_search_figure(search)} (threshold {search.threshold}) {'ok' if search.ok else 'MISMATCH'}"
            )
    if report.identities_checked:
        console.print(f"identities: {report.identities_checked} checked")
    for error in report.errors:
        console.print(f"ERROR {error}", markup=False, highlight=False)
    verdict = "an exact copy" if report.ok else f"NOT an exact copy ({len(report.errors)} problem(s))"
    console.print(
        f"verify: {verdict}; source {report.source}, snapshot at WAL {report.snapshot.get('wal_lsn')}, "
        f"{report.seconds:.1f} s"
    )


def setup_logging(verbose: bool, log_file: str | None) -> None:
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        handlers.append(logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8")))
    for h in handlers:
        h.setFormatter(logging.Formatter("%(asctime)s clawfs %(message)s", "%Y-%m-%dT%H:%M:%S"))
        log.addHandler(h)
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def json_default(value: Any) -> Any:
    return str(value)


def sync_table(report: Any, console: Console, brief: bool = False) -> None:
    """What a sync changed, per workspace and table (`brief`: one line, for --follow)."""
    if brief:
        parts = [
            f"{w.workspace_id}: " + ", ".join(f"{t.table} +{t.inserted} ~{t.updated} -{t.deleted}" for t in w.tables)
            for w in report.workspaces
        ]
        console.print(
            f"{datetime.now(UTC):%H:%M:%S} synced to {report.snapshot['wal_lsn']} in {report.seconds:.1f} s: "
            f"{report.changes} change(s); lag {_lag(report)}; {'; '.join(parts)}"
        )
        for note in report.notes:
            console.print(f"note: {note}")
        return
    how = " through the replication slot" if report.method == "slot" else ""
    table = Table(title=f"sync from {report.source}{how} at WAL {report.snapshot['wal_lsn']}")
    for column in ("Workspace", "Table", "Inserted", "Updated", "Deleted"):
        table.add_column(column, justify="left" if column in ("Workspace", "Table") else "right")
    for w in report.workspaces:
        for t in w.tables:
            table.add_row(w.workspace_id, t.table, f"{t.inserted:,}", f"{t.updated:,}", f"{t.deleted:,}")
        table.add_row(w.workspace_id, "metadata", "", f"{w.metadata_changed:,}", "")
    console.print(table)
    outcome = (
        "the rows the slot listed were read again and applied"
        if report.method == "slot"
        else "every workspace now matches PostgreSQL's checksums"
    )
    console.print(
        f"identity files written: {report.identities_written}, removed: {report.identities_removed}; "
        f"{report.changes} change(s) in {report.seconds:.1f} s; {outcome}"
    )
    for row in report.skipped:
        console.print(f"skipped (bad row): {row.table} id {row.id}: {row.reason}")
    for note in report.notes:
        console.print(f"note: {note}")


def _lag(report: Any) -> str:
    wal = f"{report.lag_wal_bytes:,} bytes of WAL, " if report.lag_wal_bytes is not None else ""
    return f"{wal}{report.lag_seconds:.1f} s"
