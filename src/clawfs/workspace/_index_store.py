"""Where a workspace's HNSW index is kept (its stamp's `location`):

    file        `index.usearch` beside the database, memory-mapped when opened (plain workspaces)
    database    inside the workspace database, table `clawfs_index_data`, in chunks (encrypted
                workspaces: the index holds every vector, bf16 by default, so it is encrypted with them)

Writing happens inside the caller's write transaction (`put`), together with the stamp: for the
database the index and its stamp are then one commit; for the file, the rename happens while the
write lock is held (see `LiveIndex._install`).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from usearch.index import Index

from ._index import IndexStamp, file_sha256, save_index
from ._layout import fsync_path, index_path_for

FILE, DATABASE = "file", "database"
DATA_TABLE = "clawfs_index_data"
DATA_SCHEMA = f"CREATE TABLE IF NOT EXISTS {DATA_TABLE} (chunk INTEGER PRIMARY KEY, data BLOB NOT NULL)"
CHUNK_BYTES = 16 << 20


@dataclass
class Prepared:
    """An index written out but not yet in place: a temporary file, or the bytes for the table."""

    stamp: IndexStamp
    tmp: Path | None = None
    data: bytes | bytearray | None = None


class FileStore:
    location = FILE

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def present(self, db: sqlite3.Connection) -> bool:
        return self.path.exists()

    def open(self, db: sqlite3.Connection, stamp: IndexStamp) -> tuple[Index | None, str]:
        """The file memory-mapped, if it is the one `stamp` describes; else why not."""
        if not self.path.is_file():
            return None, "is missing"
        if self.path.stat().st_size != stamp.bytes:
            return None, f"is stale ({self.path.stat().st_size} bytes, stamped {stamp.bytes})"
        if not stamp.same_file(self.path):
            return None, "is not the file its stamp names (its sha256 differs): stale, replaced or damaged"
        return _restore(str(self.path), view=True)

    def load(self, db: sqlite3.Connection, stamp: IndexStamp) -> Index | None:
        """A copy in memory that can be changed (to fold changes into)."""
        return Index.restore(str(self.path), view=False)

    def prepare(self, index: Index, position: int) -> Prepared:
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            stamp = save_index(index, tmp, position)
            fsync_path(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return Prepared(stamp, tmp=tmp)

    def put(self, db: sqlite3.Connection, prepared: Prepared) -> None:
        assert prepared.tmp is not None
        os.replace(prepared.tmp, self.path)
        fsync_path(self.path.parent)

    def discard(self, prepared: Prepared) -> None:
        if prepared.tmp is not None:
            prepared.tmp.unlink(missing_ok=True)

    def installed(self, index: Index) -> Index:
        """What to search after `put`: the file, memory-mapped (the built copy's memory is freed)."""
        main = Index.restore(str(self.path), view=True)
        assert main is not None
        return main

    def read(self, db: sqlite3.Connection) -> tuple[int, str, Index | None, str]:
        """(bytes, sha256, index or None, why not) of what is stored, for verification."""
        size, digest = self.path.stat().st_size, file_sha256(self.path)
        return (size, digest, *_restore(str(self.path), view=True))


class DatabaseStore:
    location = DATABASE

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def __str__(self) -> str:
        return f"{self.db_path} (table {DATA_TABLE})"

    def present(self, db: sqlite3.Connection) -> bool:
        return _has_data_table(db)

    def open(self, db: sqlite3.Connection, stamp: IndexStamp) -> tuple[Index | None, str]:
        data = self._data(db)
        if data is None:
            return None, "is missing"
        if len(data) != stamp.bytes or hashlib.sha256(data).hexdigest() != stamp.sha256:
            return None, "is not the index its stamp names: stale or replaced"
        return _restore(data, view=False)

    def load(self, db: sqlite3.Connection, stamp: IndexStamp) -> Index | None:
        index, _ = self.open(db, stamp)
        return index

    def prepare(self, index: Index, position: int) -> Prepared:
        data = index.save()  # without a path: the bytes
        assert data is not None
        digest = hashlib.sha256(data).hexdigest()
        return Prepared(IndexStamp(len(index), len(data), digest, position, location=DATABASE), data=data)

    def put(self, db: sqlite3.Connection, prepared: Prepared) -> None:
        assert prepared.data is not None
        view = memoryview(prepared.data)
        db.execute(DATA_SCHEMA)
        db.execute(f"DELETE FROM {DATA_TABLE}")
        db.executemany(
            f"INSERT INTO {DATA_TABLE} VALUES (?, ?)",
            ((n, view[start : start + CHUNK_BYTES]) for n, start in enumerate(range(0, len(view), CHUNK_BYTES))),
        )

    def discard(self, prepared: Prepared) -> None:
        prepared.data = None

    def installed(self, index: Index) -> Index:
        return index

    def read(self, db: sqlite3.Connection) -> tuple[int, str, Index | None, str]:
        data = self._data(db) or bytearray()
        return (len(data), hashlib.sha256(data).hexdigest(), *_restore(data, view=False))

    def _data(self, db: sqlite3.Connection) -> bytearray | None:
        """The stored bytes, read chunk by chunk into one buffer (the index's size once, not twice)."""
        if not _has_data_table(db):
            return None
        total = db.execute(f"SELECT sum(length(data)) FROM {DATA_TABLE}").fetchone()[0]
        if not total:
            return None
        # (a concurrent install between the sum and the chunks makes the sha256 differ: never used)
        data = bytearray(total)
        position = 0
        own = not db.in_transaction
        if own:
            db.execute("BEGIN")  # the chunks of one install, not of two
        try:
            for (chunk,) in db.execute(f"SELECT data FROM {DATA_TABLE} ORDER BY chunk"):
                data[position : position + len(chunk)] = chunk
                position += len(chunk)
        finally:
            if own:
                db.execute("COMMIT")
        return data


IndexStore = FileStore | DatabaseStore


def store_for(db_path: Path, encrypted: bool) -> IndexStore:
    """An encrypted workspace keeps its index inside its database; a plain one in the file beside it."""
    return DatabaseStore(db_path) if encrypted else FileStore(index_path_for(db_path))


def _restore(source: str | bytes | bytearray, view: bool) -> tuple[Index | None, str]:
    try:
        index = Index.restore(source, view=view)
    except Exception as e:  # usearch raises plain RuntimeError/ValueError on damaged files
        return None, f"is damaged ({e})"
    if index is None:
        return None, "is damaged (usearch cannot read it)"
    return index, ""


def _has_data_table(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (DATA_TABLE,)).fetchone()
    return row is not None
