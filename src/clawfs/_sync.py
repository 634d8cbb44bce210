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

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._checksum import FORM as CHECKSUM_FORM
from ._checksum import RangeSum, checksum_record, total
from ._compare import differences
from ._migrate import identity_bytes
from ._values import now_text, scrub, source_label, source_secrets
from ._verify import CHECKSUM_TABLES, check_identities_with_key, check_selection, workspaces_on_disk
from .audit import AuditLog, run_id
from .errors import BadRowError, SourceError, UsageError, WorkspaceError
from .progress import NULL_PROGRESS, Progress
from .report import SkippedRow
from .source import ChangeSet, ReplicationSlot, Source, SourceInfo, lsn_text
from .workspace import (
    CLAWFS_METADATA_KEYS,
    Key,
    Layout,
    Workspace,
    WorkspaceFiles,
    make_private_dir,
    metadata_entries,
    remove_path,
    stored_row_hash,
    write_private,
    write_private_temp,
)

log = logging.getLogger("clawfs")

SLOT_RECORD = "replication.json"
MAX_SLOT_CHANGES = 50_000  # messages read from the slot per round (then up to the end of a transaction)
RETAINED_WAL_WARNING = 1 << 30  # bytes of WAL a slot may hold before sync warns
SLOT_INTERVAL = 1.0  # seconds between --follow rounds: reading a slot costs little
COMPARE_INTERVAL = 10.0  # each comparison reads both sides' checksums


@dataclass(frozen=True)
class SyncOptions:
    workspaces: tuple[str, ...] = ()
    all_workspaces: bool = False
    sqlite_path: Path | None = None
    batch_size: int = 1000
    identities: bool = True
    on_bad_row: str = "fail"  # or "skip": bad source rows are listed and left out (as migrate does)
    overwrite_local_writes: bool = False  # sync a workspace written through the API since its last sync
    key: Key | None = None  # of encrypted workspaces

    def __post_init__(self) -> None:
        check_selection("sync", self.workspaces, self.all_workspaces, self.sqlite_path)
        check_identities_with_key(self.key, self.identities)
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
    in_sync: bool | None  # both sides' checksums agree after the changes (None: not compared, a slot's changes)


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
    method: str = "compare"  # or "slot": the changes a replication slot listed (sync setup)
    retained_wal_bytes: int | None = None  # WAL the server keeps for the slot
    more_waiting: bool = False  # the slot had more changes than one round takes: --follow goes on at once

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


def sync(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: SyncOptions,
    progress: Progress = NULL_PROGRESS,
) -> SyncReport:
    """Apply what PostgreSQL changed since the workspaces were migrated (or last synced): through the
    replication slot of `sync setup` when there is one for every workspace chosen, else by comparison.
    One sync at a time per root: another waits for it (two rounds overlapping could write older rows
    over newer ones)."""
    layout = Layout(Path(root))
    if options.sqlite_path is None and not layout.root.is_dir():
        raise WorkspaceError(f"there is no ClawFS root at {layout.root}: migrate first (or check --root)")
    if options.sqlite_path is not None and not options.sqlite_path.is_file():
        raise WorkspaceError(f"no workspace at {options.sqlite_path}: migrate it first")
    # the lock: the named database file itself (flock does not touch SQLite's own fcntl locks), or the root's
    with _exclusive(options.sqlite_path or make_private_dir(layout.state_dir) / "sync.lock"):
        return _sync(pg_url, layout, options, progress)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` for as long as the block runs (released by the kernel if killed)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _sync(pg_url: str | None, layout: Layout, options: SyncOptions, progress: Progress) -> SyncReport:
    started = time.perf_counter()
    where = source_label(pg_url)
    audit = AuditLog(layout.audit_log, run_id(), "sync", where)
    audit.record("start", options={"workspaces": list(options.workspaces), "all": options.all_workspaces})
    notes: list[str] = []
    results = []
    bad = _BadRows(options.on_bad_row)
    record = _slot_for(layout, options, notes)
    slot = changes = status = None
    try:
        if record is not None:
            slot = ReplicationSlot(pg_url, record.slot, record.publication)
            if slot.status() is None:
                notes.append(
                    f"replication slot {record.slot!r} no longer exists in PostgreSQL: compared instead "
                    "(clawfs sync teardown, then clawfs sync setup, makes a new one)"
                )
                slot.close()
                slot = None
            elif record.ready:
                changes = slot.peek(MAX_SLOT_CHANGES)  # before the snapshot below, which then sees them all
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
            paths = {ws: options.sqlite_path or layout.workspace_db(ws) for ws in chosen}
            states: dict[str, dict[str, str]] = {}
            for ws, db in paths.items():
                if not db.is_file():
                    raise WorkspaceError(f"no workspace {ws!r} at {db}: migrate it first")
                states[ws] = _sync_state(ws, db, options.overwrite_local_writes, options.key)
            marks = {ws: state.get("checksums_stale", "") for ws, state in states.items()}
            # a workspace the slot has not followed yet (just migrated, or replaced since) is compared once:
            # the slot's stream holds only what changed after its last round
            method = "slot" if record is not None else "compare"
            followed = {ws: db for ws, db in paths.items() if states[ws].get("method") == "slot"}
            progress.start("sync", len(chosen), unit="workspaces")
            compared = paths
            if changes is not None and not changes.truncated:
                if followed:
                    results = _apply_slot_changes(
                        source, followed, changes, options.batch_size, bad, marks, options.key
                    )
                    progress.advance("sync", len(followed))
                compared = {ws: db for ws, db in paths.items() if ws not in followed}
            for ws, db in compared.items():
                results.append(_sync_workspace(source, db, ws, options.batch_size, bad, method, marks[ws], options.key))
                progress.advance("sync", 1)
            for result in results:
                audit.record(
                    "workspace",
                    result="ok",
                    workspace=result.workspace_id,
                    **{t.table: asdict(t) for t in result.tables},
                )
            written = removed = 0
            if options.identities and options.sqlite_path is None and (changes is None or _identities_changed(changes)):
                written, removed = _sync_identities(source, layout, bad)
            info = source.info
            lag_wal_bytes = source.wal_behind()
        if slot is not None and record is not None:
            if changes is not None and changes.confirm_lsn is not None:
                slot.advance(changes.confirm_lsn)
            if not record.ready:
                write_slot_record(layout, replace(record, ready=True))  # compared once after the slot was made
            status = slot.status()
            if status is not None:
                lag_wal_bytes = status.behind_bytes
                if status.retained_bytes > RETAINED_WAL_WARNING:
                    notes.append(
                        f"replication slot {record.slot!r} holds {status.retained_bytes / 2**20:,.0f} MiB of WAL "
                        "on the server: keep syncing, or remove it with clawfs sync teardown"
                    )
    except BaseException as e:
        audit.record("end", result="failed", error=scrub(str(e), source_secrets(pg_url)))
        raise
    finally:
        progress.finish("sync")
        if slot is not None:
            slot.close()
    seconds = time.perf_counter() - started
    applied = sum(t.changed for w in results for t in w.tables) + sum(w.metadata_changed for w in results)
    method = "slot" if changes is not None and not changes.truncated else "compare"
    audit.record("end", result="ok", seconds=round(seconds, 3), changes=applied, method=method)
    return SyncReport(
        source=info.location,
        snapshot={"wal_lsn": info.snapshot_lsn, "snapshot": info.snapshot_xmin},
        workspaces=tuple(results),
        identities_written=written,
        identities_removed=removed,
        notes=tuple(notes),
        skipped=tuple(bad.rows),
        seconds=seconds,
        changes=applied + written + removed,
        lag_wal_bytes=lag_wal_bytes,
        lag_seconds=time.perf_counter() - started,
        method=method,
        retained_wal_bytes=status.retained_bytes if status is not None else None,
        more_waiting=changes is not None and changes.more_waiting,
    )


# -- through a replication slot --------------------------------------------------------------------


@dataclass(frozen=True)
class SlotRecord:
    """`<root>/.clawfs/replication.json`: the slot this root follows (made by `sync setup`)."""

    slot: str
    publication: str
    source: str  # where, redacted
    created_at: str
    ready: bool  # the workspaces were compared once after the slot was made: its stream covers the rest
    own_publication: bool = True  # made by setup (and dropped by teardown), or the tables' owner's


def read_slot_record(layout: Layout) -> SlotRecord | None:
    path = layout.state_dir / SLOT_RECORD
    try:
        return SlotRecord(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise WorkspaceError(
            f"{path} is damaged ({e}): clawfs sync teardown --slot NAME removes a slot by name"
        ) from None


def write_slot_record(layout: Layout, record: SlotRecord) -> None:
    make_private_dir(layout.state_dir)
    write_private(layout.state_dir / SLOT_RECORD, json.dumps(asdict(record), indent=2).encode())


def _slot_for(layout: Layout, options: SyncOptions, notes: list[str]) -> SlotRecord | None:
    """The slot to read, if this root has one and the sync covers every workspace the slot serves (it
    advances only once all of them have the changes)."""
    record = read_slot_record(layout)
    if record is None:
        return None
    if options.sqlite_path is not None or (
        not options.all_workspaces and set(options.workspaces) != workspaces_on_disk(layout)
    ):
        notes.append(
            f"replication slot {record.slot!r} serves every workspace of this root: "
            "a sync of some of them compares instead (use --all-workspaces)"
        )
        return None
    return record


def _identities_changed(changes: ChangeSet) -> bool:
    return "agent_identities" in changes.tables


def _apply_slot_changes(
    source: Source,
    paths: dict[str, Path],
    changes: ChangeSet,
    batch_size: int,
    bad: _BadRows,
    marks: dict[str, str],
    key: Key | None,
) -> list[WorkspaceSync]:
    """Read again the rows the slot says changed, in this snapshot, and make each workspace agree on
    exactly those rows (a document that moved to another workspace takes its vectors along)."""
    info = source.info
    chosen = list(paths)
    documents: dict[str, dict[int, Any]] = {ws: {} for ws in chosen}
    for ids in _chunks(sorted(changes.ids["documents"]), 50_000):
        for row in source.read_documents(chosen, bad, ids=ids):
            documents[row[1]][row[0]] = row
    listed_vectors = sorted(changes.ids["vectors"])
    changed_documents = sorted(changes.ids["documents"])
    results = []
    with contextlib.ExitStack() as stack:
        spaces = {ws: stack.enter_context(_open_workspace(info, db, ws, key)) for ws, db in paths.items()}
        files = {ws: stack.enter_context(contextlib.closing(WorkspaceFiles(db, key))) for ws, db in paths.items()}
        bases = {ws: _recorded_totals(files[ws]) for ws in chosen}  # read before anything is applied
        local_documents = {ws: files[ws].rows("documents", changed_documents) for ws in chosen}
        # the vectors to make equal: those the slot listed, and all of the changed documents' (a document that
        # moved between workspaces takes its vectors along; one that left takes them away)
        local_vectors = {
            ws: files[ws].rows("vectors", set(listed_vectors) | files[ws].vectors_of(changed_documents))
            for ws in chosen
        }
        vectors: dict[str, dict[int, StoredVector]] = {ws: {} for ws in chosen}
        reads = [{"ids": ids} for ids in _chunks(listed_vectors, 50_000)]
        reads += [{"document_ids": ids} for ids in _chunks(changed_documents, 50_000)]
        for read in reads:
            for i, vector in _stored_vectors(source, chosen, batch_size, bad, **read):
                vectors[chosen[i]][vector[0]] = vector
        state = {
            "wal_lsn": lsn_text(changes.end_lsn) if changes.end_lsn is not None else "",
            "snapshot": str(info.snapshot_xmin),
            "method": "slot",
        }
        for ws in chosen:
            results.append(
                _apply_rows_of(
                    spaces[ws],
                    info.dimension,
                    documents[ws],
                    local_documents[ws],
                    vectors[ws],
                    local_vectors[ws],
                    state,
                    batch_size,
                )
            )
        if "metadata" in changes.tables or any(r.tables[0].changed or r.tables[1].changed for r in results):
            for i, ws in enumerate(chosen):
                before = {"documents": local_documents[ws], "vectors": local_vectors[ws]}
                after = {"documents": documents[ws], "vectors": vectors[ws]}
                basis = bases[ws]
                if basis is not None:
                    totals = _updated_totals(basis, before, after)
                else:
                    totals = {t: files[ws].range_checksums(t) for t in CHECKSUM_TABLES}
                changed = _sync_metadata(source, spaces[ws], files[ws], totals)
                results[i] = replace(results[i], metadata_changed=changed)
        for ws in chosen:  # last: a sync cut short before here leaves a status that is not "done"
            spaces[ws].finish_sync({**state, "status": "done", "synced_at": now_text()}, marks[ws])
    return results


def _recorded_totals(files: WorkspaceFiles) -> dict[str, RangeSum] | None:
    """The whole-table checksums metadata records, if they describe the file: no sync was cut short
    since, nothing was written through the API, no bad row was left out (`checksums_stale`)."""
    state = files.sync_state()
    if state.get("status", "done") != "done" or state.get("checksums_stale"):
        return None
    try:
        recorded = json.loads(files.metadata().get("checksums", "null"))
        if recorded["form"] != CHECKSUM_FORM:
            return None
        return {t: RangeSum(int(recorded[t]["rows"]), int(recorded[t]["sum"], 16)) for t in CHECKSUM_TABLES}
    except (TypeError, KeyError, ValueError):
        return None


def _updated_totals(
    totals: dict[str, RangeSum], before: dict[str, dict[int, Any]], after: dict[str, dict[int, Any]]
) -> dict[str, dict[int, RangeSum]]:
    """Whole-table checksums after a slot's changes: the recorded ones, less the rows compared as they
    were, plus the same rows as they are (row sums add up), so a round costs what it changed, not a pass
    over the file."""
    out = {}
    for table in CHECKSUM_TABLES:
        gone = sum(stored_row_hash(table, row) for row in before[table].values())
        came = sum(stored_row_hash(table, row) for row in after[table].values())
        rows = totals[table].rows - len(before[table]) + len(after[table])
        out[table] = {0: RangeSum(rows, (totals[table].sum - gone + came) % (1 << 64))}
    return out


def _apply_rows_of(
    ws: Workspace,
    dimension: int | None,
    documents: dict[int, Any],
    local_documents: dict[int, tuple[Any, ...]],
    vectors: dict[int, StoredVector],
    local_vectors: dict[int, tuple[Any, ...]],
    state: dict[str, str],
    batch_size: int,
) -> WorkspaceSync:
    """Make one workspace hold exactly `documents` and `vectors` of the rows it was compared on (the
    local copies given); a row equal to the local copy is not written again."""
    gone_documents = sorted(set(local_documents) - set(documents))
    gone_vectors = sorted(set(local_vectors) - set(vectors))
    documents = {i: row for i, row in documents.items() if local_documents.get(i) != tuple(row)}
    vectors = {i: row for i, row in vectors.items() if local_vectors.get(i) != tuple(row)}
    if vectors and ws.dimension is None and dimension is not None:
        ws.ensure_dimension(dimension)
    for batch in _chunks(sorted(documents), batch_size):
        ws.apply_rows(documents=[documents[i] for i in batch], state={**state, "status": "documents"})
    for batch in _chunks(sorted(vectors), batch_size):
        ws.apply_rows(vectors=[vectors[i] for i in batch], state={**state, "status": "vectors"})
    for batch in _chunks(gone_vectors, batch_size):
        ws.apply_rows(delete_vectors=batch, state={**state, "status": "vectors"})
    for batch in _chunks(gone_documents, batch_size):
        ws.apply_rows(delete_documents=batch, state={**state, "status": "documents"})
    tables = tuple(
        TableChanges(
            table,
            inserted=len(set(new) - set(local)),
            updated=len(set(new) & set(local)),
            deleted=len(gone),
        )
        for table, new, local, gone in (
            ("documents", documents, local_documents, gone_documents),
            ("vectors", vectors, local_vectors, gone_vectors),
        )
    )
    return WorkspaceSync(ws.workspace_id, str(ws.path), tables, 0, None)


def _sync_workspace(
    source: Source,
    db_path: Path,
    workspace_id: str,
    batch_size: int,
    bad: _BadRows,
    method: str,
    mark: str,
    key: Key | None,
) -> WorkspaceSync:
    """Sync one workspace by comparison (`method` is what its state records: "slot" once a slot follows)."""
    with _open_workspace(source.info, db_path, workspace_id, key) as ws:
        files = WorkspaceFiles(db_path, key)  # the file's own side of the comparison, read-only
        try:
            return _apply_differences(source, ws, files, workspace_id, batch_size, bad, method, mark)
        finally:
            files.close()


def _sync_state(workspace_id: str, db_path: Path, overwrite: bool, key: Key | None) -> dict[str, str]:
    """The workspace's `clawfs_sync` state as this sync found it. Sync makes rows equal to PostgreSQL's:
    a workspace the agent wrote to since its last sync (`checksums_stale` says "written ...") would lose
    those writes (or, through a slot, keep them beside PostgreSQL's rows, whose ids may collide), so it
    is refused unless `overwrite`."""
    files = WorkspaceFiles(db_path, key)
    try:
        state = files.sync_state()
    finally:
        files.close()
    mark = state.get("checksums_stale", "")
    if mark.startswith("written") and not overwrite:
        raise WorkspaceError(
            f"workspace {workspace_id!r} was {mark.split(' (')[0]} through the API, after its last sync: a sync "
            "would overwrite those writes with PostgreSQL's rows. If PostgreSQL is still the source of truth, sync "
            "with --overwrite-local-writes"
        )
    return state


def _open_workspace(info: SourceInfo, db_path: Path, workspace_id: str, key: Key | None) -> Workspace:
    ws = Workspace.open(db_path, key=key)
    try:
        if ws.workspace_id != workspace_id:
            raise WorkspaceError(f"{db_path} holds workspace {ws.workspace_id!r}, not {workspace_id!r}")
        if info.dimension is not None and ws.dimension not in (None, info.dimension):
            raise WorkspaceError(
                f"workspace {workspace_id!r} has vectors of {ws.dimension} dimensions, PostgreSQL {info.dimension}: "
                "migrate it again with --replace"
            )
    except BaseException:
        ws.close()
        raise
    return ws


def _apply_differences(
    source: Source,
    ws: Workspace,
    files: WorkspaceFiles,
    workspace_id: str,
    batch_size: int,
    bad: _BadRows,
    method: str,
    mark: str,
) -> WorkspaceSync:
    info = source.info
    position = {"wal_lsn": str(info.snapshot_lsn), "snapshot": str(info.snapshot_xmin)}
    theirs = {t: source.range_checksums(t, workspace_id) for t in CHECKSUM_TABLES}
    changes = {t: differences(source, files, workspace_id, t, theirs[t]) for t in CHECKSUM_TABLES}
    state = {**position, "method": method, "synced_at": ""}
    docs_upsert, docs_delete, _ = changes["documents"]
    vecs_upsert, vecs_delete, _ = changes["vectors"]
    if vecs_upsert and ws.dimension is None and info.dimension is not None:
        ws.ensure_dimension(info.dimension)
    for batch in _chunks(sorted(docs_upsert), batch_size):
        rows = list(source.read_documents([workspace_id], bad, ids=batch))
        ws.apply_rows(documents=rows, state={**state, "status": "documents"})
    for batch in _chunks(sorted(vecs_upsert), batch_size):  # all documents are read by now
        vectors = [row for _, row in _stored_vectors(source, [workspace_id], batch_size, bad, ids=batch)]
        ws.apply_rows(vectors=vectors, state={**state, "status": "vectors"})
    for batch in _chunks(sorted(vecs_delete), batch_size):
        ws.apply_rows(delete_vectors=batch, state={**state, "status": "vectors"})
    for batch in _chunks(sorted(docs_delete), batch_size):
        ws.apply_rows(delete_documents=batch, state={**state, "status": "documents"})
    metadata_changed = _sync_metadata(source, ws, files, theirs)
    stale = "rows left out (--on-bad-row skip)" if bad.rows else ""  # then PostgreSQL's sums are not the file's
    ws.finish_sync({**state, "status": "done", "synced_at": now_text()}, mark, stale)
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


StoredVector = tuple[int, int, bytes, str]  # id, document_id, embedding (float32 LE), created_at (DESIGN §2.2)


def _stored_vectors(
    source: Source, workspaces: list[str], batch_size: int, bad: _BadRows, **only: Any
) -> Iterator[tuple[int, StoredVector]]:
    """Vectors read from PostgreSQL (`only`: ids= or document_ids=) in their stored form, each with the
    index of its workspace; one whose document was left out as a bad row is left out too (call it once
    the documents are read)."""
    skipped_documents = bad.ids("documents")
    for b in source.read_vectors(workspaces, batch_size, bad, include_orphans=False, **only):
        raw = np.ascontiguousarray(b.embeddings, dtype="<f4")
        owners = zip(b.ids.tolist(), b.document_ids.tolist(), b.created_at, strict=True)
        for n, (i, d, c) in enumerate(owners):
            if d in skipped_documents:
                bad(BadRowError("vectors", i, f"its document {d} was skipped"))
            else:
                yield b.workspace, (i, d, raw[n].tobytes(), c)


def _chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def follow(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: SyncOptions,
    interval: float | None,
    on_round: Callable[[SyncReport], None],
    rounds: int | None = None,
) -> None:
    """Sync, wait, sync again... until interrupted (or `rounds` are done). The wait is `interval`
    seconds, by default 1 s when a replication slot lists the changes and 10 s when each round
    compares checksums; none while the slot has more waiting than one round takes."""
    done = 0
    while rounds is None or done < rounds:
        report = sync(pg_url, root, options)
        on_round(report)
        done += 1
        if (rounds is None or done < rounds) and not report.more_waiting:
            time.sleep(
                interval if interval is not None else SLOT_INTERVAL if report.method == "slot" else COMPARE_INTERVAL
            )
