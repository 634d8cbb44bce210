"""`sync setup` / `sync teardown`: the replication slot that lets `sync` read changes instead of
comparing (clawfs.source._replication has the PostgreSQL side, clawfs._sync the applying).

Setup makes a publication of the IronClaw tables and a `pgoutput` slot, both named
`clawfs_<12 hex>`, records them in `<root>/.clawfs/replication.json`, and compares the migrated
workspaces once more: changes made before the slot existed are not in its stream. Teardown drops
both and the record; `--slot NAME` drops a slot whose root is lost.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ._sync import SLOT_RECORD, SlotRecord, SyncOptions, SyncReport, read_slot_record, sync, write_slot_record
from ._values import now_text, scrub, source_label, source_secrets
from ._verify import workspaces_on_disk
from .audit import AuditLog, run_id
from .errors import ClawfsError, UsageError, WorkspaceError
from .source import create_slot, drop_slot
from .workspace import Layout, WorkspaceFiles, remove_path


@dataclass(frozen=True)
class SetupReport:
    slot: str
    publication: str
    tables: tuple[str, ...]
    start_lsn: int
    synced: SyncReport | None  # the comparison made right after (None: no workspace migrated yet)

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TeardownReport:
    slot: str
    publication: str
    dropped_slot: bool
    dropped_publication: bool

    def asdict(self) -> dict[str, Any]:
        return asdict(self)


def sync_setup(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: SyncOptions | None = None,
    publication: str | None = None,
) -> SetupReport:
    """Create the publication (unless the tables' owner made one: `publication`) and the slot this root's
    `sync` will read, then compare once."""
    layout = Layout(Path(root))
    if not layout.root.is_dir():
        raise WorkspaceError(f"there is no ClawFS root at {layout.root}: migrate first (or check --root)")
    existing = read_slot_record(layout)
    if existing is not None:
        raise UsageError(
            f"{layout.root} already follows replication slot {existing.slot!r}: clawfs sync teardown removes it"
        )
    where = source_label(pg_url)
    audit = AuditLog(layout.audit_log, run_id(), "sync setup", where)
    name = f"clawfs_{uuid.uuid4().hex[:12]}"
    on_disk = workspaces_on_disk(layout)
    base = options or SyncOptions(all_workspaces=True)
    for workspace_id in sorted(on_disk):  # an encrypted one without its key fails here, before any slot
        WorkspaceFiles(layout.workspace_db(workspace_id), base.key).close()
    # the record first: killed after it, a slot it names but that was never made is noticed by the next sync
    # and cleared by teardown; killed before it, no slot was made. A slot nobody records cannot happen.
    record = SlotRecord(name, publication or name, where, now_text(), False, publication is None)
    write_slot_record(layout, record)
    try:
        try:
            tables, start = create_slot(pg_url, name, publication)
        except BaseException:
            remove_path(layout.state_dir / SLOT_RECORD)
            raise
        if not on_disk:  # nothing migrated yet: every later migrate's snapshot is newer than the slot
            write_slot_record(
                layout, SlotRecord(name, publication or name, where, now_text(), True, publication is None)
            )
        synced = None
        if on_disk:
            try:
                synced = sync(pg_url, root, SyncOptions(**{**vars(base), "workspaces": (), "all_workspaces": True}))
            except ClawfsError as e:
                e.args = (
                    f"{e} (the replication slot {name!r} stays and holds WAL: clawfs sync completes the set-up, "
                    "clawfs sync teardown removes it)",
                )
                raise
    except BaseException as e:
        audit.record("end", result="failed", error=scrub(str(e), source_secrets(pg_url)))
        raise
    audit.record("end", result="ok", slot=name, tables=tables, start_lsn=start)
    return SetupReport(name, publication or name, tuple(tables), start, synced)


def sync_teardown(pg_url: str | None, root: str | os.PathLike[str], slot: str | None = None) -> TeardownReport:
    """Drop the slot of this root (or the slot named `slot`) and the publication setup made for it (one
    the tables' owner made is theirs, and stays), and the record."""
    layout = Layout(Path(root))
    publication: str | None
    if slot is not None:
        name = publication = slot
    elif (record := read_slot_record(layout)) is not None:
        name, publication = record.slot, record.publication if record.own_publication else None
    else:
        raise UsageError(
            f"{layout.root} follows no replication slot (clawfs sync teardown --slot NAME drops one by name)"
        )
    audit = AuditLog(layout.audit_log, run_id(), "sync teardown", source_label(pg_url))
    try:
        dropped_slot, dropped_publication = drop_slot(pg_url, name, publication)
    except BaseException as e:
        audit.record("end", result="failed", error=scrub(str(e), source_secrets(pg_url)))
        raise
    try:
        mine = read_slot_record(layout)
    except WorkspaceError:
        mine = None  # damaged: it named this slot or none usable
        remove_path(layout.state_dir / SLOT_RECORD)
    if mine is not None and mine.slot == name:
        remove_path(layout.state_dir / SLOT_RECORD)
    audit.record("end", result="ok", slot=name, dropped_slot=dropped_slot, dropped_publication=dropped_publication)
    return TeardownReport(name, publication or "", dropped_slot, dropped_publication)
