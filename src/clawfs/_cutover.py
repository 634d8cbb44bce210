"""`cutover`: the end of the migration (draft §4.1 phase 5): optionally stop writes to PostgreSQL, a
final sync, a full verification, then what the application must switch.

Order: writes are stopped first (when asked), so that the final sync sees the last state; sessions
already connected keep their old setting until they reconnect, so the report counts them. Rollback
stays trivial: migrate, verify and sync never wrote to PostgreSQL's tables, and the read-only switch
is undone with one statement (printed in the report).

A replication slot of `sync setup` is dropped once the cutover has verified every workspace it
serves: left behind, it would keep WAL on the server for ever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._sync import SyncOptions, SyncReport, read_slot_record, sync
from ._sync_setup import sync_teardown
from ._verify import VerificationReport, VerifyOptions, check_identities_with_key, check_selection, verify
from .errors import ClawfsError, VerificationError
from .progress import NULL_PROGRESS, Progress
from .source import make_database_read_only
from .workspace import Key, Layout


@dataclass(frozen=True)
class CutoverOptions:
    workspaces: tuple[str, ...] = ()
    all_workspaces: bool = False
    make_source_read_only: bool = False
    identities: bool = True
    sample: int = 100
    overwrite_local_writes: bool = False  # see SyncOptions
    key: Key | None = None  # of encrypted workspaces

    def __post_init__(self) -> None:  # checked before anything is switched
        check_selection("cutover", self.workspaces, self.all_workspaces, None)
        check_identities_with_key(self.key, self.identities)
        VerifyOptions(workspaces=("-",), sample=self.sample)


@dataclass(frozen=True)
class CutoverReport:
    sync: SyncReport
    verification: VerificationReport
    read_only_database: str | None  # the database made read-only, if asked
    sessions_still_connected: int
    workspaces: tuple[tuple[str, str], ...]  # workspace id, database file
    undo: str | None
    slot_dropped: str | None = None  # the replication slot of `sync setup`, dropped after the proof
    notes: tuple[str, ...] = ()

    def asdict(self) -> dict[str, Any]:
        return {
            "sync": self.sync.asdict(),
            "verification": self.verification.asdict(),
            "read_only_database": self.read_only_database,
            "sessions_still_connected": self.sessions_still_connected,
            "workspaces": [{"workspace_id": w, "database": d} for w, d in self.workspaces],
            "undo": self.undo,
            "slot_dropped": self.slot_dropped,
            "notes": list(self.notes),
        }


def cutover(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: CutoverOptions,
    progress: Progress = NULL_PROGRESS,
) -> CutoverReport:
    """Final catch-up and proof; raises VerificationError (exit 3) when the copy is not exact."""
    switch = make_database_read_only(pg_url) if options.make_source_read_only else None
    undo = (
        f'BEGIN READ WRITE; ALTER DATABASE "{switch.database}" RESET default_transaction_read_only; COMMIT'
        if switch is not None
        else None
    )
    try:
        synced = sync(
            pg_url,
            root,
            SyncOptions(
                workspaces=options.workspaces,
                all_workspaces=options.all_workspaces,
                identities=options.identities,
                overwrite_local_writes=options.overwrite_local_writes,
                key=options.key,
            ),
            progress,
        )
        checked = verify(
            pg_url,
            root,
            VerifyOptions(
                workspaces=options.workspaces,
                all_workspaces=options.all_workspaces,
                sample=options.sample,
                identities=options.identities,
                key=options.key,
            ),
            progress,
        )
        if not checked.ok:
            raise VerificationError(
                "after the final sync the workspaces still differ from PostgreSQL: " + "; ".join(checked.errors[:5])
            )
    except ClawfsError as e:
        if switch is not None:  # never leave production read-only without saying so
            e.args = (f"{e} (database {switch.database!r} was made read-only first; to undo: {undo})",)
        raise
    slot_dropped, notes = _drop_slot(pg_url, root, synced)
    return CutoverReport(
        sync=synced,
        verification=checked,
        read_only_database=switch.database if switch else None,
        sessions_still_connected=switch.other_sessions if switch else 0,
        workspaces=tuple((w.workspace_id, w.database) for w in checked.workspaces),
        # the session running the undo is read-only by default too: its transaction asks for READ WRITE
        undo=undo,
        slot_dropped=slot_dropped,
        notes=notes,
    )


def _drop_slot(
    pg_url: str | None, root: str | os.PathLike[str], synced: SyncReport
) -> tuple[str | None, tuple[str, ...]]:
    """Drop this root's replication slot when the final sync read it (so it served every workspace)."""
    record = read_slot_record(Layout(Path(root)))
    if record is None or synced.method != "slot":
        return None, ()
    try:
        sync_teardown(pg_url, root)
    except ClawfsError as e:
        return None, (f"the replication slot {record.slot!r} is still there ({e}): clawfs sync teardown drops it",)
    return record.slot, ()
