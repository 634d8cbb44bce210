"""`clawfs backup` / `clawfs restore`: a consistent copy of a workspace, taken while it is in use.

A backup is a directory:

    <backup>/workspace.db      SQLite's online backup of the database: one read snapshot, so writers go on
    <backup>/index.usearch     the index file that snapshot's stamp names (its sha256 is checked)
    <backup>/manifest.json     workspace id, counts, and the size and sha256 of both files

The index file on disk belongs to the stamp in metadata; a writer that saves a new index between the
database copy and the index copy makes them disagree, which the sha256 check sees: the index is then
copied again, and after a few tries built from the backup's own `vectors` table. Changes made after the
index was saved are in the backup's index log and are replayed when the copy is opened. An encrypted
workspace's copy is encrypted with the same key (a salt of its own) and holds its index inside it.

`restore` checks the files against the manifest, copies them under a temporary name in the target root,
opens the copy and checks it (SQLite, FTS5, index against `vectors`), and only then renames it into place.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._values import now_text
from ..errors import UsageError, WorkspaceError
from ._index import file_sha256
from ._index_store import FILE
from ._layout import (
    DB_NAME,
    INDEX_NAME,
    Layout,
    Placement,
    create_private_file,
    fsync_path,
    index_path_for,
    make_private_dir,
    remove_tree,
    write_private,
)
from ._live_index import read_stamp, restamp
from ._sqlite import Error, Key, connect, is_encrypted
from ._workspace import Workspace, open_read_only

FORMAT = "clawfs-backup-v1"
MANIFEST = "manifest.json"
INDEX_COPY_TRIES = 3


@dataclass(frozen=True)
class BackupReport:
    workspace_id: str
    directory: str
    documents: int
    vectors: int
    bytes: int
    index_rebuilt: bool  # the index file kept changing during the copy: built from the backup's vectors
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    workspace_id: str
    database: str
    documents: int
    vectors: int
    replaced: bool
    seconds: float


def backup(
    root: str | os.PathLike[str],
    workspace_id: str | None,
    destination: str | os.PathLike[str],
    key: Key | None = None,
) -> BackupReport:
    """Copy a workspace (of a root, or `root` is its database file when `workspace_id` is None) into the
    new directory `destination`. An encrypted workspace's copy is encrypted with the same `key`."""
    source_db = Layout(Path(root)).workspace_db(workspace_id) if workspace_id is not None else Path(root)
    destination = Path(destination)
    started = time.perf_counter()
    if not source_db.is_file():
        raise WorkspaceError(f"no workspace database at {source_db}")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise UsageError(f"{destination} exists and is not an empty directory")
    if not destination.parent.is_dir():
        raise UsageError(f"{destination.parent} is not a directory")
    staging = destination.with_name(f".{destination.name}.clawfs-backup-{uuid.uuid4().hex[:12]}")
    make_private_dir(staging)
    try:
        db_copy = staging / DB_NAME
        _copy_database(source_db, db_copy, key)
        rebuilt = _copy_index(source_db, staging, key)
        with Workspace.open(db_copy, key=key) as ws:  # replays the index log; refuses a copy it cannot read
            workspace_id = ws.workspace_id
            documents, vectors = _counts(ws.db)
        files: dict[str, dict[str, Any]] = {
            name: {"bytes": (staging / name).stat().st_size, "sha256": file_sha256(staging / name)}
            for name in (DB_NAME, INDEX_NAME)
            if (staging / name).exists()
        }
        manifest = {
            "format": FORMAT,
            "workspace_id": workspace_id,
            "created_at": now_text(),
            "documents": documents,
            "vectors": vectors,
            "files": files,
        }
        text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        write_private(staging / MANIFEST, text.encode("utf-8"))
        fsync_path(staging)
        if destination.exists():
            destination.rmdir()
        staging.rename(destination)
        fsync_path(destination.parent)
    except BaseException:
        remove_tree(staging)
        raise
    size = sum(f["bytes"] for f in files.values())
    return BackupReport(
        workspace_id, str(destination), documents, vectors, size, rebuilt, time.perf_counter() - started
    )


def _copy_database(source_db: Path, target: Path, key: Key | None) -> None:
    """SQLite's online backup in one step: one read transaction, so the copy is one consistent state.
    The copy is encrypted (with the same key, its own salt) exactly when the source is."""
    create_private_file(target)
    src = open_read_only(source_db, key)
    dst = connect(target, key if is_encrypted(source_db) else None)
    try:
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
    except Error as e:
        raise WorkspaceError(f"backing up {source_db} failed: {e}") from None
    finally:
        dst.close()
        src.close()
    fsync_path(target)


def _copy_index(source_db: Path, staging: Path, key: Key | None) -> bool:
    """Copy the index file the backup's stamp names; True when it had to be built instead. (An
    encrypted workspace's index is inside its database, copied with it.)"""
    db = connect(staging / DB_NAME, key)
    try:
        stamp = read_stamp(db)
    finally:
        db.close()
    source_index = index_path_for(source_db)
    if stamp is None or stamp.bytes == 0 or stamp.location != FILE or not source_index.exists():
        return False  # no index file (none, or inside the database), or one the copy will rebuild on open
    target = staging / INDEX_NAME
    for _ in range(INDEX_COPY_TRIES):
        if not target.exists():
            create_private_file(target)
        shutil.copyfile(source_index, target)
        if file_sha256(target) == stamp.sha256:
            fsync_path(target)
            return False
    target.unlink()
    with Workspace.open(staging / DB_NAME, key=key) as ws:  # no index file: opening builds it from the copy's vectors
        ws.rebuild_index()
    return True


def restore(
    backup_dir: str | os.PathLike[str], root: str | os.PathLike[str], replace: bool = False, key: Key | None = None
) -> RestoreReport:
    """Restore the backup in `backup_dir` as a workspace of the ClawFS root `root` (an encrypted backup
    needs its `key`; the restored workspace stays encrypted with it)."""
    backup_dir, root = Path(backup_dir), Path(root)
    started = time.perf_counter()
    manifest = _read_manifest(backup_dir)
    workspace_id = manifest["workspace_id"]
    for name, expected in manifest["files"].items():
        path = backup_dir / name
        if not path.is_file():
            raise WorkspaceError(f"the backup {backup_dir} lacks {name}")
        if path.stat().st_size != expected["bytes"] or file_sha256(path) != expected["sha256"]:
            raise WorkspaceError(f"the backup's {name} is not the file its manifest names: it is damaged")
    connect(backup_dir / DB_NAME, key, read_only=True).close()  # an encrypted backup without its key: said here
    layout = Layout(root)
    target_dir = layout.workspace_dir(workspace_id)
    if target_dir.exists() and not replace:
        raise WorkspaceError(
            f"workspace {workspace_id!r} already exists at {target_dir}; use --replace to restore over it"
        )
    build = layout.tmp_dir / f"restore-{uuid.uuid4().hex[:12]}"
    make_private_dir(build)
    try:
        for name in manifest["files"]:
            create_private_file(build / name)
            shutil.copyfile(backup_dir / name, build / name)
            fsync_path(build / name)
        db = connect(build / DB_NAME, key)
        try:
            db.execute("PRAGMA journal_mode = WAL")
        finally:
            db.close()
        restamp(build / DB_NAME, build / INDEX_NAME, key)
        with Workspace.open(build / DB_NAME, key=key) as ws:
            problems = ws.check()
            if ws.workspace_id != workspace_id:
                problems.append(f"it holds workspace {ws.workspace_id!r}, the manifest says {workspace_id!r}")
            documents, vectors = _counts(ws.db)
        if problems:
            raise WorkspaceError(f"the restored copy of {workspace_id!r} is not sound: {'; '.join(problems)}")
        if (documents, vectors) != (manifest["documents"], manifest["vectors"]):
            raise WorkspaceError("the restored copy's counts are not the manifest's")
        fsync_path(build)
        make_private_dir(target_dir.parent)
        placement = Placement(uuid.uuid4().hex[:12])
        replaced = target_dir.exists()
        try:
            placement.put(build, target_dir)
        except BaseException:
            placement.rollback()
            raise
        placement.commit()
    except BaseException:
        remove_tree(build)
        raise
    return RestoreReport(
        workspace_id, str(target_dir / DB_NAME), documents, vectors, replaced, time.perf_counter() - started
    )


def _read_manifest(backup_dir: Path) -> dict[str, Any]:
    path = backup_dir / MANIFEST
    if not path.is_file():
        raise UsageError(f"{backup_dir} is not a clawfs backup (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise WorkspaceError(f"the backup manifest {path} cannot be read: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise WorkspaceError(f"{path} is not a {FORMAT} manifest")
    files = manifest.get("files")
    if (
        not isinstance(manifest.get("workspace_id"), str)
        or not all(isinstance(manifest.get(k), int) for k in ("documents", "vectors"))
        or not isinstance(files, dict)
        or DB_NAME not in files
        or not set(files) <= {DB_NAME, INDEX_NAME}
        or not all(
            isinstance(f, dict) and isinstance(f.get("bytes"), int) and isinstance(f.get("sha256"), str)
            for f in files.values()
        )
    ):
        raise WorkspaceError(f"the backup manifest {path} is incomplete")
    return manifest


def _counts(db: Any) -> tuple[int, int]:
    documents = db.execute("SELECT count(*) FROM document_store").fetchone()[0]
    vectors = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
    return int(documents), int(vectors)
