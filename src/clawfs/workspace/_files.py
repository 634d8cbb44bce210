"""Read-only access to a workspace's files for verification: plain values out, nothing trusted.

Unlike `Workspace` (which refuses a stale index), this reads whatever is on disk and reports it,
so that verification can say exactly what is wrong.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from usearch.index import Index

from .._checksum import RangeSum
from ..errors import UsageError, WorkspaceError
from ._checksums import range_checksums, row_hashes
from ._index import HnswParams
from ._index_store import store_for
from ._live_index import LiveIndex, log_entries, read_stamp
from ._sqlite import Error, Key, OperationalError, is_encrypted
from ._workspace import fts_integrity, fts_query, open_read_only, ranked_matches


@dataclass(frozen=True)
class IndexFile:
    """What is on disk where the index should be."""

    exists: bool
    bytes: int = 0
    sha256: str = ""
    keys: npt.NDArray[np.uint64] | None = None  # sorted; None when the file cannot be read
    error: str = ""


class WorkspaceFiles:
    def __init__(self, db_path: Path, key: Key | None = None) -> None:
        if not db_path.is_file():
            raise WorkspaceError(f"no workspace database at {db_path}")
        self.db_path = db_path
        self.key = key
        self.encrypted = is_encrypted(db_path)
        self.index_store = store_for(db_path, self.encrypted)
        try:
            self.db = open_read_only(db_path, key)
            # a damaged file may hold text that is not UTF-8: read it anyway, so it can be reported
            self.db.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")
            self.db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except Error as e:
            raise WorkspaceError(f"{db_path} is not a readable SQLite database: {e}") from None
        self._index: Index | None = None
        self._live: LiveIndex | None = None

    def close(self) -> None:
        self.db.close()

    def metadata(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT key, value FROM metadata").fetchall())

    def count(self, table: str) -> int:
        name = {"documents": "document_store", "vectors": "vectors"}[table]
        return int(self.db.execute(f"SELECT count(*) FROM {name}").fetchone()[0])

    def sync_state(self) -> dict[str, str]:
        """The `clawfs_sync` rows (sync's position and state; empty before the first sync or write)."""
        try:
            return dict(self.db.execute("SELECT key, value FROM clawfs_sync").fetchall())
        except OperationalError:  # no such table
            return {}

    def present(self, table: str, ids: Collection[int]) -> set[int]:
        """Which of `ids` the table holds (`documents` means document_store)."""
        return set(self.rows(table, ids))

    def rows(self, table: str, ids: Collection[int]) -> dict[int, tuple[Any, ...]]:
        """The stored rows with those ids, whole (`documents` means document_store)."""
        store = {"documents": "document_store", "vectors": "vectors"}[table]
        return {row[0]: tuple(row) for row in self._where(f"SELECT * FROM {store} WHERE id", ids)}

    def vectors_of(self, document_ids: Collection[int]) -> set[int]:
        """Ids of the vectors of those documents."""
        return {row[0] for row in self._where("SELECT id FROM vectors WHERE document_id", document_ids)}

    def _where(self, query: str, values: Collection[int]) -> Iterator[Any]:
        """Rows of `query` + ` IN (values)`, in chunks that SQLite accepts."""
        wanted = sorted(values)
        for start in range(0, len(wanted), 10_000):
            chunk = wanted[start : start + 10_000]
            yield from self.db.execute(f"{query} IN ({','.join('?' * len(chunk))})", chunk)

    def range_checksums(self, table: str) -> dict[int, RangeSum]:
        return range_checksums(self.db, table)

    def row_hashes(self, table: str, ranges: Sequence[int]) -> dict[int, int]:
        return row_hashes(self.db, table, ranges)

    def vector_ids(self) -> npt.NDArray[np.uint64]:
        ids = [r[0] for r in self.db.execute("SELECT id FROM vectors ORDER BY id")]
        return np.asarray(ids, dtype=np.uint64)

    def pending_index_ids(self) -> set[int]:
        """Vector ids written since the index file was saved (the index log replays them on open)."""
        stamp = read_stamp(self.db)
        return {vector_id for _, vector_id in log_entries(self.db, stamp.log_position if stamp else 0)}

    def fts_integrity(self) -> str | None:
        return fts_integrity(self.db_path, self.key)

    def fts_ranked(self, text: str, limit: int = 10) -> list[int]:
        return [doc_id for doc_id, _ in ranked_matches(self.db, text, limit)]

    def fts_finds(self, text: str, document_id: int) -> bool:
        return self.fts_matching(text, [document_id]) == 1

    def fts_matching(self, text: str, document_ids: Sequence[int]) -> int:
        """How many of the given documents the query matches."""
        query = fts_query(text)
        if query is None or not document_ids:
            return 0
        marks = ",".join("?" * len(document_ids))
        row = self.db.execute(
            f"SELECT count(*) FROM documents WHERE documents MATCH ? AND rowid IN ({marks})", (query, *document_ids)
        ).fetchone()
        return int(row[0])

    def index_file(self) -> IndexFile:
        """What is stored where the index should be (the file, or the encrypted database's table)."""
        if not self.index_store.present(self.db):
            return IndexFile(exists=False)
        size, digest, index, problem = self.index_store.read(self.db)
        if index is None:
            return IndexFile(True, size, digest, None, f"usearch cannot read it: it {problem}")
        self._index = index
        return IndexFile(True, size, digest, np.sort(np.asarray(index.keys, dtype=np.uint64)))

    def _replayed(self) -> LiveIndex | None:
        try:
            meta = {k: json.loads(v) for k, v in self.metadata().items()}
            live = LiveIndex(self.index_store, HnswParams.from_metadata(meta), int(meta["vector_dimension"]))
        except (ValueError, KeyError, TypeError, UsageError):
            return None  # the metadata problem is reported by the metadata check
        live.refresh(self.db, None)
        return live

    def cosine_distances(self, query: npt.NDArray[np.float32], vector_ids: set[int]) -> dict[int, float]:
        """Exact cosine distances from `query` to the given stored vectors (float64)."""
        if not vector_ids:
            return {}
        marks = ",".join("?" * len(vector_ids))
        rows = self.db.execute(f"SELECT id, embedding FROM vectors WHERE id IN ({marks})", sorted(vector_ids))
        q = query.astype(np.float64)
        out = {}
        for vector_id, blob in rows:
            v = np.frombuffer(blob, dtype="<f4").astype(np.float64)
            if v.shape != q.shape:
                continue
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                out[int(vector_id)] = float(1.0 - q @ v / (np.linalg.norm(q) * np.linalg.norm(v)))
        return out

    def index_search(self, vector: npt.NDArray[np.float32], k: int, ef_search: int) -> list[int]:
        """The index's answer: the file's, plus the changes written since it was saved (the index log)."""
        if self._index is None:
            return []
        if self._live is None and self.pending_index_ids():
            self._live = self._replayed()
        if self._live is not None:
            return [key for key, _ in self._live.search(vector, k, ef_search)]
        with contextlib.suppress(AttributeError):
            self._index.expansion_search = ef_search  # type: ignore[misc]  # settable at run time
        return [int(key) for key in self._index.search(vector, k).keys]
