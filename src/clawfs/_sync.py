"""`sync`: bring migrated workspaces up to date with PostgreSQL, by comparison (draft Option C, phase 5).

Needs no set-up and only `SELECT`. PostgreSQL's `vectors` table has no `updated_at` and deletes leave no
trace, so changes are found the way verification finds differences: per-range row checksums computed on
both sides (clawfs._checksum); only ranges that differ are narrowed to rows, and only those rows are read.
Each batch of changes is applied in one SQLite transaction, together with the sync position (the
snapshot it came from), so a crash mid-sync loses nothing: the next sync compares again and applies
what is still missing, nothing twice. FTS5, `vectors` and the HNSW index (through its log) change together.

Cost: both sides' checksums every time (PostgreSQL reads each workspace's rows once; clawfs reads its
file once), plus the changed rows. `--follow` repeats this at an interval.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._checksum import RangeSum, checksum_record, total
from ._compare import differences
from ._migrate import identity_bytes
from ._values import now_text, redact_url
from ._verify import CHECKSUM_TABLES, check_selection, workspaces_on_disk
from .audit import AuditLog
from .errors import BadRowError, SourceError, UsageError, WorkspaceError
from .progress import NULL_PROGRESS, Progress
from .report import SkippedRow
from .source import Source
from .workspace import (
    CLAWFS_METADATA_KEYS,
    Layout,
    Workspace,
    WorkspaceFiles,
    make_private_dir,
    metadata_entries,
    remove_path,
    write_private_temp,
)

log = logging.getLogger("clawfs")


@dataclass(frozen=True)
class SyncOptions:
    workspaces: tuple[str, ...] = ()
    all_workspaces: bool = False
    sqlite_path: Path | None = None
    batch_size: int = 1000
    identities: bool = True
    on_bad_row: str = "fail"  # or "skip": bad source rows are listed and left out (as migrate does)

    def __post_init__(self) -> None:
        check_selection("sync", self.workspaces, self.all_workspaces, self.sqlite_path)
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.on_bad_row not in ("fail", "skip"):
            raise UsageError("--on-bad-row must be one of fail, skip")


@dataclass(frozen=True)
class TableChanges:
    table: str
    inserted: int = 0
    updated: int = 0
    deleted: int = 0

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.deleted


@dataclass(frozen=True)
class WorkspaceSync:
    workspace_id: str
    database: str
    tables: tuple[TableChanges, ...]
    metadata_changed: int
    in_sync: bool  # both sides' checksums agree after the changes


@dataclass(frozen=True)
class SyncReport:
    source: str
    snapshot: dict[str, Any]
    workspaces: tuple[WorkspaceSync, ...]
    identities_written: int
    identities_removed: int
    notes: tuple[str, ...] = ()
    skipped: tuple[SkippedRow, ...] = ()
    seconds: float = 0.0
    changes: int = field(default=0)
    # how far the workspaces are behind PostgreSQL when the sync ends: WAL written since its snapshot, and
    # the age of that snapshot (with --follow, add the interval for the worst case)
    lag_wal_bytes: int | None = None
    lag_seconds: float = 0.0

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


def sync(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: SyncOptions,
    progress: Progress = NULL_PROGRESS,
) -> SyncReport:
    """Apply what PostgreSQL changed since the workspaces were migrated (or last synced)."""
    started = time.perf_counter()
    layout = Layout(Path(root))
    where = redact_url(pg_url) if pg_url else "(libpq environment)"
    audit = AuditLog(layout.audit_log, f"{os.getpid()}-{time.time_ns()}", "sync", where)
    audit.record("start", options={"workspaces": list(options.workspaces), "all": options.all_workspaces})
    notes: list[str] = []
    results = []
    bad = _BadRows(options.on_bad_row)
    try:
        with Source(pg_url) as source:
            known = source.workspace_ids()
            if options.all_workspaces:
                # every migrated workspace, also one whose documents PostgreSQL no longer has (it is emptied)
                chosen = sorted(workspaces_on_disk(layout))
                notes += [
                    f"workspace {ws!r} is new in PostgreSQL: migrate it (clawfs migrate --workspace-id {ws})"
                    for ws in known
                    if ws not in chosen
                ]
            else:
                chosen = list(dict.fromkeys(options.workspaces))
            progress.start("sync", len(chosen), unit="workspaces")
            for ws in chosen:
                db = options.sqlite_path or layout.workspace_db(ws)
                if not db.is_file():
                    raise WorkspaceError(f"no workspace {ws!r} at {db}: migrate it first")
                result = _sync_workspace(source, db, ws, options.batch_size, bad)
                results.append(result)
                audit.record(
                    "workspace",
                    result="ok",
                    workspace=ws,
                    **{t.table: asdict(t) for t in result.tables},
                )
                progress.advance("sync", 1)
            written = removed = 0
            if options.identities and options.sqlite_path is None:
                written, removed = _sync_identities(source, layout, bad)
            info = source.info
            lag_wal_bytes = source.wal_behind()
    except BaseException as e:
        audit.record("end", result="failed", error=str(e))
        raise
    finally:
        progress.finish("sync")
    seconds = time.perf_counter() - started
    changes = sum(t.changed for w in results for t in w.tables) + sum(w.metadata_changed for w in results)
    audit.record("end", result="ok", seconds=round(seconds, 3), changes=changes)
    return SyncReport(
        source=info.location,
        snapshot={"wal_lsn": info.snapshot_lsn, "snapshot": info.snapshot_xmin},
        workspaces=tuple(results),
        identities_written=written,
        identities_removed=removed,
        notes=tuple(notes),
        skipped=tuple(bad.rows),
        seconds=seconds,
        changes=changes + written + removed,
        lag_wal_bytes=lag_wal_bytes,
        lag_seconds=time.perf_counter() - started,
    )


def _sync_workspace(source: Source, db_path: Path, workspace_id: str, batch_size: int, bad: _BadRows) -> WorkspaceSync:
    info = source.info
    with Workspace.open(db_path) as ws:
        if ws.workspace_id != workspace_id:
            raise WorkspaceError(f"{db_path} holds workspace {ws.workspace_id!r}, not {workspace_id!r}")
        if info.dimension is not None and ws.dimension not in (None, info.dimension):
            raise WorkspaceError(
                f"workspace {workspace_id!r} has vectors of {ws.dimension} dimensions, PostgreSQL {info.dimension}: "
                "migrate it again with --replace"
            )
        files = WorkspaceFiles(db_path)  # the file's own side of the comparison, read-only
        try:
            return _apply_differences(source, ws, files, workspace_id, batch_size, bad)
        finally:
            files.close()


def _apply_differences(
    source: Source, ws: Workspace, files: WorkspaceFiles, workspace_id: str, batch_size: int, bad: _BadRows
) -> WorkspaceSync:
    info = source.info
    position = {"wal_lsn": str(info.snapshot_lsn), "snapshot": str(info.snapshot_xmin)}
    theirs = {t: source.range_checksums(t, workspace_id) for t in CHECKSUM_TABLES}
    changes = {t: differences(source, files, workspace_id, t, theirs[t]) for t in CHECKSUM_TABLES}
    state = {**position, "method": "compare", "synced_at": ""}
    docs_upsert, docs_delete, _ = changes["documents"]
    vecs_upsert, vecs_delete, _ = changes["vectors"]
    if vecs_upsert and ws.dimension is None and info.dimension is not None:
        ws.ensure_dimension(info.dimension)
    for batch in _chunks(sorted(docs_upsert), batch_size):
        rows = list(source.read_documents([workspace_id], bad, ids=batch))
        ws.apply_rows(documents=rows, state={**state, "status": "documents"})
    skipped_documents = bad.ids("documents")  # all documents are read by now
    for batch in _chunks(sorted(vecs_upsert), batch_size):
        vectors: list[tuple[int, int, bytes, str]] = []
        for b in source.read_vectors([workspace_id], batch_size, bad, include_orphans=False, ids=batch):
            raw = np.ascontiguousarray(b.embeddings, dtype="<f4")
            owners = zip(b.ids.tolist(), b.document_ids.tolist(), b.created_at, strict=True)
            for n, (i, d, c) in enumerate(owners):
                if d in skipped_documents:
                    bad(BadRowError("vectors", i, f"its document {d} was skipped"))
                else:
                    vectors.append((i, d, raw[n].tobytes(), c))
        ws.apply_rows(vectors=vectors, state={**state, "status": "vectors"})
    for batch in _chunks(sorted(vecs_delete), batch_size):
        ws.apply_rows(delete_vectors=batch, state={**state, "status": "vectors"})
    for batch in _chunks(sorted(docs_delete), batch_size):
        ws.apply_rows(delete_documents=batch, state={**state, "status": "documents"})
    metadata_changed = _sync_metadata(source, ws, files, theirs)
    ws.apply_rows(state={**state, "status": "done", "synced_at": now_text()})
    in_sync = all(_still_differing(source, files, workspace_id, t, theirs[t]) <= bad.ids(t) for t in CHECKSUM_TABLES)
    if not in_sync:
        raise WorkspaceError(f"workspace {workspace_id!r} still differs from PostgreSQL after sync; run it again")
    tables = tuple(
        TableChanges(t, inserted=len(new - bad.ids(t)), updated=len(upsert - new - bad.ids(t)), deleted=len(delete))
        for t, (upsert, delete, new) in changes.items()
    )
    return WorkspaceSync(workspace_id, str(ws.path), tables, metadata_changed, in_sync)


def _sync_metadata(source: Source, ws: Workspace, files: WorkspaceFiles, theirs: dict[str, dict[int, RangeSum]]) -> int:
    """Source metadata rows as they are now; clawfs' own counts, checksums and snapshot brought up to date."""
    rows = dict(source.read_metadata())
    ours = files.metadata()
    own = CLAWFS_METADATA_KEYS - {"embedding_model"}
    changed = {k: v for k, v in rows.items() if k not in own and ours.get(k) != v}
    if "embedding_model" not in rows and ours.get("embedding_model") != "null":
        changed["embedding_model"] = "null"
    gone = [k for k in ours if k not in own and k not in rows and k != "embedding_model"]
    own_values = dict(
        metadata_entries(
            {
                "document_count": total(theirs["documents"]).rows,
                "vector_count": total(theirs["vectors"]).rows,
                "checksums": checksum_record(theirs),
                "source_snapshot": source.info.snapshot_record(),
            }
        )
    )
    ws.set_metadata({**changed, **own_values}, delete=gone)
    return len(changed) + len(gone)


def _sync_identities(source: Source, layout: Layout, bad: _BadRows) -> tuple[int, int]:
    """Identity files rewritten where their row changed, removed where the row is gone."""
    written = removed = 0
    rows = source.read_identities(bad)
    known = set()
    for row in rows:
        path = layout.agent_file(row.agent_id)
        known.add(path.parent.name)
        try:
            data = identity_bytes(row)
        except ValueError as e:
            bad(BadRowError("agent_identities", row.agent_id, str(e)))
            continue
        if path.is_file() and path.read_bytes() == data:
            continue
        make_private_dir(path.parent)
        tmp = write_private_temp(path, data)
        os.replace(tmp, path)
        written += 1
    agents = layout.root / "agents"
    if agents.is_dir():
        for entry in sorted(os.listdir(agents)):
            if entry not in known and (agents / entry / "identity.json").is_file():
                remove_path(agents / entry)
                removed += 1
    return written, removed


class _BadRows:
    """What sync does with a bad source row: stop (exit 4, the row named) or list it and leave it out."""

    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.rows: list[SkippedRow] = []

    def __call__(self, error: BadRowError) -> None:
        if self.policy == "fail":
            raise SourceError(f"cannot sync a bad row: {error} (--on-bad-row skip leaves such rows out)")
        self.rows.append(SkippedRow(error.table, error.row_id, error.reason))

    def ids(self, table: str) -> set[Any]:
        return {row.id for row in self.rows if row.table == table}


def _still_differing(
    source: Source, files: WorkspaceFiles, workspace_id: str, table: str, theirs: dict[int, RangeSum]
) -> set[int]:
    """Ids whose rows still differ between PostgreSQL and the workspace (none when the checksums agree)."""
    upsert, delete, _ = differences(source, files, workspace_id, table, theirs)
    return upsert | delete


def _chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def follow(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: SyncOptions,
    interval: float,
    on_round: Callable[[SyncReport], None],
    rounds: int | None = None,
) -> None:
    """Sync, wait `interval` seconds, sync again... until interrupted (or `rounds` are done)."""
    done = 0
    while rounds is None or done < rounds:
        on_round(sync(pg_url, root, options))
        done += 1
        if rounds is None or done < rounds:
            time.sleep(interval)
