"""Build one workspace under a temporary name, check it, then put it in place (DESIGN §3 "Atomic").

A builder owns a build directory that nobody reads. Rows go into `document_store` and `vectors` one
committed batch at a time (the checkpoints of `migrate --resume`, which reopens an interrupted
build with `resume=True`), the FTS5 index is built once at the end with `rebuild`, and the HNSW
index is filled by the shared `IndexWorker` as the vectors arrive. `install_moves` says how the
finished files go into place; `discard` removes everything.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .._checksum import RangeSum
from ..errors import WorkspaceError
from ._checksums import range_checksums, row_hashes
from ._index import HnswParams, IndexStamp, IndexWorker, new_index
from ._index_store import FILE, store_for
from ._layout import (
    DB_NAME,
    INDEX_NAME,
    create_private_file,
    fsync_path,
    index_path_for,
    make_private_dir,
    remove_path,
    remove_tree,
)
from ._schema import BUILD_PRAGMAS, FINAL_PRAGMAS, SCHEMA
from ._sqlite import DatabaseError, Error, Key, KeyProblem, connect, is_encrypted

# what makes a kept build unusable for `--resume` (it is then built anew)
UNUSABLE: tuple[type[Exception], ...] = (*DatabaseError, WorkspaceError)


class WorkspaceBuilder:
    def __init__(
        self,
        workspace_id: str,
        target_db: Path,
        build_dir: Path,
        dimension: int | None,
        hnsw: HnswParams,
        worker: IndexWorker,
        resume: bool = False,
        key: Key | None = None,
    ) -> None:
        self.workspace_id = workspace_id
        self.target_db = target_db
        self.build_dir = make_private_dir(build_dir)
        self.db_path = build_dir / DB_NAME
        self.index_path = build_dir / INDEX_NAME
        self.dimension = dimension
        self.key = key  # given: the build is encrypted with it (SQLCipher), its index kept inside it
        self.index_store = store_for(self.db_path, key is not None)
        self.worker = worker
        self.index = new_index(dimension, hnsw) if dimension else None
        self.stamp: IndexStamp | None = None
        self.documents = 0
        self.vectors = 0
        self.bytes_written = 0
        self.closed = False
        self.resumed = resume and self._reopen()
        if not self.resumed:
            self.documents = self.vectors = 0
            for leftover in ("", "-journal", "-wal", "-shm"):
                remove_path(self.db_path.with_name(self.db_path.name + leftover))
            create_private_file(self.db_path)
            self.db = connect(self.db_path, key, isolation_level=None, check_same_thread=False)
            # SQLCipher keeps its default page size: another would have to be given with the key at every open
            for pragma in BUILD_PRAGMAS if key is None else BUILD_PRAGMAS[1:]:
                self.db.execute(pragma)
            self.db.executescript(SCHEMA)

    def _reopen(self) -> bool:
        """Open an interrupted build's database (a killed commit rolls back); False if it is unusable."""
        if not self.db_path.is_file() or is_encrypted(self.db_path) != (self.key is not None):
            return False  # (a build encrypted or not, unlike this run: not reused)
        try:
            db = connect(self.db_path, self.key, isolation_level=None, check_same_thread=False)
        except KeyProblem:  # another key
            return False
        try:
            for pragma in BUILD_PRAGMAS[1:]:
                db.execute(pragma)
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise WorkspaceError("quick_check failed")
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"document_store", "vectors", "metadata", "documents"} <= tables:
                raise WorkspaceError("not a workspace build")
            db.execute("DELETE FROM metadata")  # written again at the end, from the new snapshot
            self.documents = db.execute("SELECT count(*) FROM document_store").fetchone()[0]
            self.vectors = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        except UNUSABLE:
            db.close()
            return False
        self.db = db
        return True

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """One committed batch: a checkpoint."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(*Error):
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def add_documents(self, rows: Sequence[tuple[int, str, str, str | None, str | None]]) -> None:
        with self._batch():
            self.db.executemany("INSERT INTO document_store VALUES (?, ?, ?, ?, ?)", rows)
        self.documents += len(rows)

    def delete_rows(self, table: str, ids: Collection[int]) -> None:
        """Drop kept rows that PostgreSQL changed or deleted since (`migrate --resume`)."""
        store = {"documents": "document_store", "vectors": "vectors"}[table]
        with self._batch():
            self.db.executemany(f"DELETE FROM {store} WHERE id = ?", ((i,) for i in ids))
        if table == "documents":
            self.documents -= len(ids)
        else:
            self.vectors -= len(ids)

    def stored_vectors(self, batch_rows: int) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
        """The vectors already in the build, in batches (an interrupted build's, for its new index)."""
        if self.dimension is None:
            return
        cursor = self.db.execute("SELECT id, embedding FROM vectors ORDER BY id")
        while rows := cursor.fetchmany(batch_rows):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            embeddings = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            if self.index is not None:
                self.worker.add(self.index, ids, embeddings)
            self.bytes_written += embeddings.nbytes
            yield ids, embeddings

    def add_vectors(
        self,
        ids: npt.NDArray[np.int64],
        document_ids: npt.NDArray[np.int64],
        embeddings: npt.NDArray[np.float32],
        created_at: list[str],
    ) -> None:
        raw = np.ascontiguousarray(embeddings, dtype="<f4").tobytes()
        width = embeddings.shape[1] * 4
        blobs = (raw[i : i + width] for i in range(0, len(raw), width))
        with self._batch():
            self.db.executemany(
                "INSERT INTO vectors VALUES (?, ?, ?, ?)",
                zip(ids.tolist(), document_ids.tolist(), blobs, created_at, strict=True),
            )
        if self.index is not None:
            self.worker.add(self.index, ids, embeddings)
        self.vectors += len(ids)
        self.bytes_written += len(raw)

    def rebuild_fts(self) -> None:
        with self._batch():
            self.db.execute("INSERT INTO documents(documents) VALUES ('rebuild')")

    def save_index(self) -> IndexStamp:
        """Save the HNSW index (after the worker has finished adding): the file, or inside the database."""
        if self.index is None:
            self.stamp = IndexStamp(vectors=0, bytes=0, sha256="", location=self.index_store.location)
        else:
            prepared = self.index_store.prepare(self.index, 0)
            try:
                with self._batch():
                    self.index_store.put(self.db, prepared)
            finally:
                self.index_store.discard(prepared)
            self.stamp = prepared.stamp
            self.index = None  # saved now: free the memory before verification opens it
        return self.stamp

    def write_metadata(self, entries: Iterable[tuple[str, str]]) -> None:
        with self._batch():
            self.db.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?)", entries)

    def range_checksums(self, table: str) -> dict[int, RangeSum]:
        return range_checksums(self.db, table)

    def row_hashes(self, table: str, ranges: Sequence[int]) -> dict[int, int]:
        return row_hashes(self.db, table, ranges)

    def close(self) -> None:
        """Switch to WAL and flush the file to disk (once)."""
        if self.closed:
            return
        self.closed = True
        for pragma in FINAL_PRAGMAS:
            self.db.execute(pragma)
        self.db.execute("PRAGMA optimize")
        self.db.close()
        fsync_path(self.db_path)
        fsync_path(self.build_dir)
        index_file = self.stamp.bytes if self.stamp and self.stamp.location == FILE else 0
        self.bytes_written = self.db_path.stat().st_size + index_file

    def keep(self) -> None:
        """Stop, leaving the committed batches for `migrate --resume`."""
        with contextlib.suppress(*Error):
            self.db.close()

    def discard(self) -> None:
        with contextlib.suppress(*Error):
            self.db.close()
        remove_tree(self.build_dir)


def check_target_free(target_db: Path, replace: bool, workspace_id: str) -> None:
    if target_db.exists() and not replace:
        raise WorkspaceError(
            f"workspace {workspace_id!r} already exists at {target_db}; use --replace to rebuild it "
            "(the old one stays until the new one is complete)"
        )


def install_moves(build: WorkspaceBuilder, in_own_dir: bool) -> list[tuple[Path | None, Path]]:
    """The renames that put a closed, checked build in place (for `Placement.put_all`)."""
    target_db = build.target_db
    if in_own_dir:
        make_private_dir(target_db.parent.parent)
        return [(build.build_dir, target_db.parent)]
    # a named database file (--sqlite-path): the old database's WAL files step aside with it
    stale = [target_db.with_name(target_db.name + "-wal"), target_db.with_name(target_db.name + "-shm")]
    return [
        *((None, path) for path in stale),
        (build.index_path if build.index_path.exists() else None, index_path_for(target_db)),
        (build.db_path, target_db),
    ]


def metadata_entries(values: dict[str, object]) -> list[tuple[str, str]]:
    """Python values as metadata rows (every value is JSON text, DESIGN §2.2)."""
    return [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()]
