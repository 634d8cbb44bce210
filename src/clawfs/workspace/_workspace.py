"""A migrated workspace, opened for use: search and writes (DESIGN §4.1).

Search:
- full text: FTS5 with bm25; the user's words are quoted one by one, so no string can be FTS5 syntax
  (all words must match, like PostgreSQL's `plainto_tsquery`); score = -bm25, higher is better.
  `raw=True` passes FTS5 query syntax through (a syntax error is then a UsageError).
- vector: the HNSW index (cosine); score = similarity = 1 - cosine distance; a document with several
  vectors appears once, with its best one; `ef_search` defaults to the workspace's `hnsw_ef_search`.
- hybrid: reciprocal rank fusion, score = sum over both lists of 1 / (60 + rank), ranks from 1, each
  list `max(4k, 50)` deep; a document found by one list only gets that list's term.

Writes (`add`, `update`, `delete`) change `document_store`, the FTS5 index, `vectors` and the index log
in one SQLite transaction; the HNSW index follows from the log (see `_live_index`). Reads are safe from
several threads (one read connection per thread); writes are serialised.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .._values import blob_to_embedding, datetime_text, now_text
from ..errors import UsageError, WorkspaceError
from ._index import HnswParams, IndexStamp
from ._index_store import store_for
from ._layout import DB_NAME, Layout, index_path_for
from ._live_index import LOG_SCHEMA, LOG_TABLE, LiveIndex
from ._sqlite import DatabaseError, Error, Key, KeyProblem, OperationalError, connect, is_encrypted

log = logging.getLogger("clawfs")

RRF_K = 60
SYNC_SCHEMA = "CREATE TABLE IF NOT EXISTS clawfs_sync (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
SCHEMA_RETRIES = 3
# a query vector needs a length whose square is a normal float32 (HNSW and pgvector compute in float32)
NORM_RANGE = (1e-18, 1e18)


def usable(norms: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which vector lengths (in float64) give a direction that float32 cosine arithmetic can use."""
    return np.isfinite(norms) & (norms > NORM_RANGE[0]) & (norms < NORM_RANGE[1])


# a workspace file that is not a readable ClawFS workspace; an index that could not follow a write
UNREADABLE: tuple[type[Exception], ...] = (*Error, ValueError, KeyError)
INDEX_CATCH_UP: tuple[type[Exception], ...] = (*Error, OSError, RuntimeError)

SNIPPET_MARKS = ("**", "**")  # around matched terms in `Hit.snippet`
SNIPPET_TOKENS = 16
# pending index changes that make `close` fold them into the index file (else they are replayed on open)
AUTO_SAVE_CHANGES = 1000


@dataclass(frozen=True)
class Hit:
    document_id: int
    score: float
    content: str
    metadata: Any
    created_at: str | None
    snippet: str = ""


class _Keep:
    """`update(..., metadata=KEEP)`: leave the value as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


def sqlite_text(text: str) -> str:
    """Text SQLite can take: lone surrogates (what Python makes of bytes that are not UTF-8) become U+FFFD."""
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


def fts_query(text: str) -> str | None:
    """User text as a safe FTS5 query: every whitespace-separated word quoted (`"` doubled), NULs dropped."""
    words = sqlite_text(text).replace("\x00", " ").split()
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def open_read_only(db_path: Path, key: Key | None = None) -> sqlite3.Connection:
    """A read-only connection, by URI with the path percent-encoded (workspace directories contain '%')."""
    return connect(db_path, key, read_only=True, check_same_thread=False)


def fts_integrity(db_path: Path, key: Key | None = None) -> str | None:
    """None when FTS5's index agrees with its content table, else SQLite's message. The check is an
    INSERT command, so it runs on a writable handle of its own."""
    db = connect(db_path, key)
    try:
        db.execute("INSERT INTO documents(documents, rank) VALUES ('integrity-check', 1)")
        return None
    except DatabaseError as e:
        return str(e)
    finally:
        db.close()


def ranked_matches(db: sqlite3.Connection, text: str, limit: int, raw: bool = False) -> list[tuple[int, float]]:
    """Full-text search: (document id, -bm25), best first. User text is quoted word by word and never
    an FTS5 syntax error; with `raw`, `text` is FTS5 query syntax and an invalid one is a UsageError."""
    query = sqlite_text(text) if raw else fts_query(text)
    if query is None or not query.strip():
        return []
    try:
        rows = db.execute(
            "SELECT rowid, -bm25(documents) FROM documents WHERE documents MATCH ? ORDER BY rank LIMIT ?",
            (query, limit),
        ).fetchall()
    except OperationalError as e:
        if raw:
            raise UsageError(f"not a valid FTS5 query: {e}") from None
        raise
    return [(int(r[0]), float(r[1])) for r in rows]


class Workspace:
    """Open with `Workspace.open(root, workspace_id)` or `Workspace.open(path_to_workspace_db)`; an
    encrypted workspace needs its `key` (a `clawfs.Key`)."""

    def __init__(self, db_path: Path, key: Key | None = None) -> None:
        if not db_path.is_file():
            raise WorkspaceError(f"no workspace database at {db_path}")
        self.path = db_path
        self.key = key
        self.encrypted = is_encrypted(db_path)
        self.index_store = store_for(db_path, self.encrypted)
        self.index_path = index_path_for(db_path)  # the plain workspaces' index file
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._writer: sqlite3.Connection | None = None
        self._live: LiveIndex | None = None
        try:
            self.metadata: dict[str, Any] = {
                k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM metadata")
            }
            self.hnsw = HnswParams.from_metadata(self.metadata)
        except KeyProblem:
            self.close()
            raise
        except UNREADABLE as e:
            self.close()
            raise WorkspaceError(f"{db_path} is not a readable ClawFS workspace: {e}") from None
        self.workspace_id: str = self.metadata.get("workspace_id", "")
        self.dimension: int | None = self.metadata.get("vector_dimension")
        if self.dimension:
            self._live = LiveIndex(self.index_store, self.hnsw, self.dimension)
            self._refresh_index(repair=True)  # a stale or missing index file is rebuilt here, not used

    @classmethod
    def open(
        cls, root: str | os.PathLike[str], workspace_id: str | None = None, *, key: Key | None = None
    ) -> Workspace:
        if workspace_id is None:
            path = Path(root)
            return cls(path / DB_NAME if path.is_dir() else path, key)
        return cls(Layout(Path(root)).workspace_db(workspace_id), key)

    # -- connections ----------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's read-only connection."""
        conn: sqlite3.Connection | None = getattr(self._local, "db", None)
        if conn is None:
            try:
                conn = open_read_only(self.path, self.key)
            except Error as e:
                raise WorkspaceError(f"cannot open {self.path}: {e}") from None
            self._local.db = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _write_db(self) -> sqlite3.Connection:
        if self._writer is None:
            if not os.access(self.path, os.W_OK) or not os.access(self.path.parent, os.W_OK):
                raise WorkspaceError(f"the workspace {self.path} is read-only here (no write permission)")
            try:
                writer = connect(self.path, self.key, isolation_level=None, check_same_thread=False, timeout=30)
                writer.execute("PRAGMA synchronous = NORMAL")
                if not _has_tables(writer, (LOG_TABLE, "clawfs_sync")):  # one schema change, before any write
                    writer.executescript(f"BEGIN IMMEDIATE; {LOG_SCHEMA}; {SYNC_SCHEMA}; COMMIT;")
            except Error as e:
                raise WorkspaceError(f"cannot write to {self.path}: {e}") from None
            self._writer = writer
        return self._writer

    def _writable(self) -> bool:
        return os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)

    def close(self) -> None:
        """Fold many pending index changes into the index file, then close every connection."""
        try:
            with self._write_lock:
                if self._live is not None and self._writer is not None and self._live.pending >= AUTO_SAVE_CHANGES:
                    self._live.save(self._writer)  # on failure the changes stay in the log: nothing is lost
        finally:
            with self._write_lock:
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            with self._readers_lock:
                for conn in self._readers:
                    conn.close()
                self._readers.clear()
            self._local = threading.local()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the index ----------------------------------------------------------------------------

    def _refresh_index(self, repair: bool = False) -> LiveIndex:
        if self._live is None:
            raise UsageError(f"workspace {self.workspace_id!r} has no vectors")
        if repair and self._writable():
            with self._write_lock:
                self._live.refresh(self.db, self._write_db)  # a writer is opened only for a repair
        else:
            self._live.refresh(self.db, None)
        return self._live

    def save_index(self) -> IndexStamp:
        """Fold the changes made since the index file was written into a new file."""
        with self._write_lock:
            live = self._refresh_index()
            return live.save(self._write_db())

    def rebuild_index(self) -> IndexStamp:
        """Build the index file anew from the `vectors` table (`clawfs index rebuild`)."""
        with self._write_lock:
            if self._live is None:
                raise UsageError(f"workspace {self.workspace_id!r} has no vectors: there is no index to build")
            return self._live.rebuild(self.db, self._write_db())

    # -- search -------------------------------------------------------------------------------

    def document_vector(self, document_id: int) -> list[float]:
        """The first stored vector of a document (for "more like this" searches)."""
        row = self.db.execute(
            "SELECT embedding FROM vectors WHERE document_id = ? ORDER BY id LIMIT 1", (document_id,)
        ).fetchone()
        if row is None:
            raise UsageError(f"document {document_id} has no vector in workspace {self.workspace_id!r}")
        return [float(x) for x in blob_to_embedding(row[0])]

    def search(
        self,
        text: str | None = None,
        vector: Sequence[float] | npt.NDArray[np.floating] | None = None,
        k: int = 10,
        *,
        raw: bool = False,
        ef_search: int | None = None,
        marks: tuple[str, str] = SNIPPET_MARKS,
    ) -> list[Hit]:
        if k < 1:
            raise UsageError("k must be at least 1")
        if ef_search is not None and ef_search < 1:
            raise UsageError("ef_search must be at least 1")
        for attempt in range(SCHEMA_RETRIES):
            try:
                return self._search(text, vector, k, raw, ef_search, marks)
            except OperationalError as e:
                # Another connection changed the schema (a writer's first write makes clawfs' own tables):
                # FTS5 can fail to reconnect its table in the middle of that. Asking again succeeds.
                if "vtable constructor failed" not in str(e) or attempt == SCHEMA_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _search(
        self,
        text: str | None,
        vector: Sequence[float] | npt.NDArray[np.floating] | None,
        k: int,
        raw: bool,
        ef_search: int | None,
        marks: tuple[str, str],
    ) -> list[Hit]:
        if text is not None and vector is not None:
            depth = max(4 * k, 50)
            fused: dict[int, float] = {}
            for ranked in (self._fts(text, depth, raw), self._vector(vector, depth, ef_search)):
                for rank, (doc_id, _) in enumerate(ranked, start=1):
                    fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank)
            best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
            return self._hits(best, text, raw, marks)
        if text is not None:
            return self._hits(self._fts(text, k, raw), text, raw, marks)
        if vector is not None:
            return self._hits(self._vector(vector, k, ef_search), None, raw, marks)
        raise UsageError("search needs text, a vector, or both")

    def _fts(self, text: str, limit: int, raw: bool) -> list[tuple[int, float]]:
        return ranked_matches(self.db, text, limit, raw)

    def _query_vector(self, vector: Sequence[float] | npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        try:
            with np.errstate(over="ignore"):  # a number beyond float32 becomes Inf, refused below
                query = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError):
            raise UsageError("the query vector must be a sequence of numbers") from None
        if self.dimension is None:
            raise UsageError(f"workspace {self.workspace_id!r} has no vectors")
        if query.shape != (self.dimension,):
            raise UsageError(f"the query vector has {query.size} dimensions, the workspace {self.dimension}")
        if not np.isfinite(query).all():
            raise UsageError("the query vector has NaN or Inf (or a number too large for float32)")
        norm = float(np.linalg.norm(query.astype(np.float64)))
        if not usable(np.array([norm]))[0]:
            raise UsageError(
                "the query vector has no direction (its length is zero, or too small or large for float32)"
            )
        return query

    def _vector(
        self, vector: Sequence[float] | npt.NDArray[np.floating], limit: int, ef_search: int | None
    ) -> list[tuple[int, float]]:
        query = self._query_vector(vector)
        live = self._refresh_index()
        best: dict[int, float] = {}
        want = limit
        while True:
            found = live.search(query, want, ef_search)
            keys = [key for key, _ in found]
            owners = self._owners(keys)
            best = {}
            for key, distance in found:
                doc = owners.get(key)
                if doc is not None and doc not in best:
                    best[doc] = 1.0 - float(distance)
            if len(best) >= limit or len(found) < want:
                break
            want *= 4
        return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:limit]

    def _owners(self, vector_ids: list[int]) -> dict[int, int]:
        if not vector_ids:
            return {}
        marks = ",".join("?" * len(vector_ids))
        return dict(self.db.execute(f"SELECT id, document_id FROM vectors WHERE id IN ({marks})", vector_ids))

    def _hits(self, ranked: list[tuple[int, float]], text: str | None, raw: bool, marks: tuple[str, str]) -> list[Hit]:
        if not ranked:
            return []
        ids = [doc for doc, _ in ranked]
        placeholders = ",".join("?" * len(ids))
        query = f"SELECT id, content, metadata, created_at FROM document_store WHERE id IN ({placeholders})"
        rows = {r[0]: r[1:] for r in self.db.execute(query, ids)}
        snippets = self._snippets(ids, text, raw, marks) if text is not None else {}
        return [
            Hit(
                doc,
                score,
                rows[doc][0],
                json.loads(rows[doc][1]) if rows[doc][1] is not None else None,
                rows[doc][2],
                snippets.get(doc) or _lead(rows[doc][0]),
            )
            for doc, score in ranked
            if doc in rows
        ]

    def _snippets(self, ids: list[int], text: str, raw: bool, marks: tuple[str, str]) -> dict[int, str]:
        """FTS5's snippet() of each matching document: the best few words, matched terms marked."""
        query = sqlite_text(text) if raw else fts_query(text)
        if query is None or not query.strip():
            return {}
        placeholders = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT rowid, snippet(documents, -1, ?, ?, '…', {SNIPPET_TOKENS}) FROM documents"
            f" WHERE documents MATCH ? AND rowid IN ({placeholders})",
            (marks[0], marks[1], query, *ids),
        )
        return {int(r[0]): " ".join(str(r[1]).split()) for r in rows}

    # -- writes -------------------------------------------------------------------------------

    def add(
        self,
        content: str,
        *,
        metadata: Any = None,
        vectors: Sequence[Sequence[float]] | npt.NDArray[np.floating] = (),
        document_id: int | None = None,
        created_at: datetime | None = None,
    ) -> int:
        """Add a document (and its vectors); returns its id (the next free one unless given)."""
        _check_content(content)
        meta = _metadata_text(metadata)
        blobs = self._blobs(vectors)
        stamp = _timestamp(created_at)
        with self._transaction(local=True) as db:
            if document_id is None:
                document_id = int(db.execute("SELECT coalesce(max(id), 0) + 1 FROM document_store").fetchone()[0])
            elif db.execute("SELECT 1 FROM document_store WHERE id = ?", (document_id,)).fetchone():
                raise UsageError(f"document {document_id} already exists in workspace {self.workspace_id!r}")
            row = (document_id, self.workspace_id, content, meta, stamp)
            db.execute("INSERT INTO document_store VALUES (?, ?, ?, ?, ?)", row)
            _fts_insert(db, row)
            self._insert_vectors(db, document_id, blobs)
        return document_id

    def update(
        self,
        document_id: int,
        *,
        content: str | None = None,
        metadata: Any = KEEP,
        vectors: Sequence[Sequence[float]] | npt.NDArray[np.floating] | None = None,
    ) -> None:
        """Change a document's content and/or metadata; `vectors` (when given) replace all of its vectors."""
        if content is not None:
            _check_content(content)
        meta = None if metadata is KEEP else _metadata_text(metadata)
        blobs = self._blobs(vectors) if vectors is not None else None
        with self._transaction(local=True) as db:
            old = self._document(db, document_id)
            new = (
                document_id,
                old[1],
                old[2] if content is None else content,
                old[3] if metadata is KEEP else meta,
                old[4],
            )
            if new != old:
                _fts_delete(db, old)
                db.execute(
                    "UPDATE document_store SET content = ?, metadata = ? WHERE id = ?", (new[2], new[3], document_id)
                )
                _fts_insert(db, new)
            if blobs is not None:
                self._delete_vectors(db, document_id)
                self._insert_vectors(db, document_id, blobs)

    def delete(self, document_id: int) -> None:
        """Delete a document and its vectors."""
        with self._transaction(local=True) as db:
            old = self._document(db, document_id)
            self._delete_vectors(db, document_id)
            _fts_delete(db, old)
            db.execute("DELETE FROM document_store WHERE id = ?", (document_id,))

    def apply_rows(
        self,
        *,
        documents: Sequence[tuple[int, str, str, str | None, str | None]] = (),
        delete_documents: Sequence[int] = (),
        vectors: Sequence[tuple[int, int, bytes, str]] = (),
        delete_vectors: Sequence[int] = (),
        state: dict[str, str] | None = None,
    ) -> None:
        """Make rows equal to the given ones (values in the stored format of DESIGN §2.2), in one
        transaction together with `state` (clawfs_sync); used by sync, which finds what differs."""
        with self._transaction() as db:
            for row in documents:
                old = db.execute(
                    "SELECT id, workspace_id, content, metadata, created_at FROM document_store WHERE id = ?", (row[0],)
                ).fetchone()
                if old is not None:
                    _fts_delete(db, tuple(old))
                db.execute("INSERT OR REPLACE INTO document_store VALUES (?, ?, ?, ?, ?)", row)
                _fts_insert(db, row)
            for document_id in delete_documents:
                old = db.execute(
                    "SELECT id, workspace_id, content, metadata, created_at FROM document_store WHERE id = ?",
                    (document_id,),
                ).fetchone()
                if old is not None:
                    _fts_delete(db, tuple(old))
                    db.execute("DELETE FROM document_store WHERE id = ?", (document_id,))
            if vectors:
                db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", vectors)
            if delete_vectors:
                db.executemany("DELETE FROM vectors WHERE id = ?", [(i,) for i in delete_vectors])
            touched = [(v[0],) for v in vectors] + [(i,) for i in delete_vectors]
            db.executemany(f"INSERT INTO {LOG_TABLE}(vector_id) VALUES (?)", touched)
            if state:
                db.executemany("INSERT OR REPLACE INTO clawfs_sync VALUES (?, ?)", list(state.items()))

    def finish_sync(self, state: dict[str, str], seen_mark: str, stale: str = "") -> None:
        """The last state of a sync, in one transaction. `checksums_stale` becomes `stale`, unless an API
        write marked the workspace after the sync read `seen_mark`: that write's mark stays."""
        with self._transaction() as db:
            row = db.execute("SELECT value FROM clawfs_sync WHERE key = 'checksums_stale'").fetchone()
            current = str(row[0]) if row else ""
            final = {**state, "checksums_stale": stale if current == seen_mark else current}
            db.executemany("INSERT OR REPLACE INTO clawfs_sync VALUES (?, ?)", list(final.items()))

    def set_metadata(self, values: dict[str, str], delete: Sequence[str] = ()) -> None:
        """Metadata rows as JSON text (DESIGN §2.2), set and deleted in one transaction."""
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?)", list(values.items()))
            db.executemany("DELETE FROM metadata WHERE key = ?", [(k,) for k in delete])
        for key, value in values.items():
            self.metadata[key] = json.loads(value)
        for key in delete:
            self.metadata.pop(key, None)

    def _document(self, db: sqlite3.Connection, document_id: int) -> tuple[Any, ...]:
        row = db.execute(
            "SELECT id, workspace_id, content, metadata, created_at FROM document_store WHERE id = ?", (document_id,)
        ).fetchone()
        if row is None:
            raise UsageError(f"document {document_id} does not exist in workspace {self.workspace_id!r}")
        return tuple(row)

    def _blobs(self, vectors: Sequence[Sequence[float]] | npt.NDArray[np.floating]) -> list[bytes]:
        try:
            with np.errstate(over="ignore"):  # a number beyond float32 becomes Inf, refused below
                array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError):
            raise UsageError("vectors must be a list of equally long lists of numbers") from None
        if array.size == 0:
            return []
        if array.ndim == 1:
            raise UsageError("vectors must be a list of vectors (a list of lists), not one vector")
        if array.ndim != 2:
            raise UsageError("vectors must be a list of equally long lists of numbers")
        if self.dimension is not None and array.shape[1] != self.dimension:
            raise UsageError(f"a vector has {array.shape[1]} dimensions, the workspace {self.dimension}")
        if not np.isfinite(array).all():
            raise UsageError("a vector has NaN or Inf")
        if self.dimension is None:
            self.ensure_dimension(array.shape[1])
        return [row.astype("<f4").tobytes() for row in array]

    def ensure_dimension(self, dimension: int) -> None:
        """The first vector of a workspace that had none fixes its dimension."""
        if self.dimension is not None:
            if self.dimension != dimension:
                raise UsageError(f"a vector has {dimension} dimensions, the workspace {self.dimension}")
            return
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO metadata VALUES ('vector_dimension', ?)", (json.dumps(dimension),))
        self.dimension = dimension
        self.metadata["vector_dimension"] = dimension
        self._live = LiveIndex(self.index_store, self.hnsw, dimension)

    def _insert_vectors(self, db: sqlite3.Connection, document_id: int, blobs: list[bytes]) -> None:
        if not blobs:
            return
        first = int(db.execute("SELECT coalesce(max(id), 0) + 1 FROM vectors").fetchone()[0])
        ids = list(range(first, first + len(blobs)))
        created = now_text()
        db.executemany(
            "INSERT INTO vectors VALUES (?, ?, ?, ?)",
            [(i, document_id, b, created) for i, b in zip(ids, blobs, strict=True)],
        )
        db.executemany(f"INSERT INTO {LOG_TABLE}(vector_id) VALUES (?)", [(i,) for i in ids])

    def _delete_vectors(self, db: sqlite3.Connection, document_id: int) -> None:
        ids = [r[0] for r in db.execute("SELECT id FROM vectors WHERE document_id = ?", (document_id,))]
        db.execute("DELETE FROM vectors WHERE document_id = ?", (document_id,))
        db.executemany(f"INSERT INTO {LOG_TABLE}(vector_id) VALUES (?)", [(i,) for i in ids])

    def _transaction(self, local: bool = False) -> _Transaction:
        return _Transaction(self, local)

    def _after_commit(self) -> None:
        """The index follows the committed write. A failure here must not look like a failed write (a
        retry would add the document twice): the log holds the change, the next search replays it."""
        if self._live is None or self._writer is None:
            return
        try:
            if self._live.main is None and self._live.stamp is None:
                self._live.refresh(self._writer, self._writer)  # a workspace's first vectors: write its index
            else:
                self._live.refresh(self._writer, None)
        except INDEX_CATCH_UP as e:
            log.warning("the write is committed; the HNSW index will catch up on the next search (%s)", e)

    # -- consistency --------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Problems found in the workspace on its own: SQLite, FTS5 and the HNSW index against `vectors`."""
        problems: list[str] = []
        db = self.db
        result = db.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            problems.append(f"sqlite: {result}")
        if (problem := fts_integrity(self.path, self.key)) is not None:
            problems.append(f"fts: FTS5 integrity-check failed: {problem}")
        orphans = db.execute(
            "SELECT count(*) FROM vectors WHERE document_id NOT IN (SELECT id FROM document_store)"
        ).fetchone()[0]
        if orphans:
            problems.append(f"vectors: {orphans} vector(s) belong to no document")
        if self.dimension is not None:
            wrong = db.execute("SELECT count(*) FROM vectors WHERE length(embedding) != ?", (4 * self.dimension,))
            if (n := wrong.fetchone()[0]) != 0:
                problems.append(f"vectors: {n} embedding(s) are not {self.dimension} float32 values")
        ids = {r[0] for r in db.execute("SELECT id FROM vectors")}
        if self._live is not None:
            keys = self._refresh_index().keys()
            if ids - keys:
                problems.append(f"index: {len(ids - keys)} vector(s) missing from the HNSW index")
            if keys - ids:
                problems.append(f"index: {len(keys - ids)} id(s) in the HNSW index are not in the vectors table")
        elif ids:
            problems.append("vectors: the workspace has vectors but no vector_dimension")
        return problems


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT` on the writer (rolled back on any error), then the index follows.

    `local`: a write of the API's own (not sync's), noted in `clawfs_sync` (key `checksums_stale`): the
    counts and checksums in metadata no longer describe the file, and sync knows not to build on them."""

    def __init__(self, ws: Workspace, local: bool) -> None:
        self.ws = ws
        self.local = local

    def __enter__(self) -> sqlite3.Connection:
        self.ws._write_lock.acquire()
        try:
            db = self.ws._write_db()
            db.execute("BEGIN IMMEDIATE")
            if self.local:
                mark = f"written {now_text()} ({uuid.uuid4().hex[:8]})"  # each write its own mark
                db.execute("INSERT OR REPLACE INTO clawfs_sync VALUES ('checksums_stale', ?)", (mark,))
        except BaseException:
            self.ws._write_lock.release()
            raise
        self.db = db
        return db

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            if kind is None:
                self.db.execute("COMMIT")
                self.ws._after_commit()
            else:
                self.db.execute("ROLLBACK")
        finally:
            self.ws._write_lock.release()


def _has_tables(db: sqlite3.Connection, names: tuple[str, ...]) -> bool:
    found = db.execute(
        f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({','.join('?' * len(names))})", names
    ).fetchone()[0]
    return bool(found == len(names))


def _check_content(content: object) -> None:
    if not isinstance(content, str):
        raise UsageError(f"content must be text, not {type(content).__name__}")
    try:
        content.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("content is not valid Unicode (it has lone surrogates)") from None


def _metadata_text(metadata: Any) -> str | None:
    if metadata is None:
        return None
    try:
        return json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise UsageError(f"metadata must be JSON: {e}") from None


def _timestamp(value: datetime | None) -> str:
    if value is None:
        return now_text()
    if value.tzinfo is None:
        raise UsageError("created_at must be a timezone-aware datetime")
    return datetime_text(value)


def _fts_insert(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    db.execute(
        "INSERT INTO documents(rowid, id, workspace_id, content, metadata, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (row[0], *row),
    )


def _fts_delete(db: sqlite3.Connection, row: tuple[Any, ...]) -> None:
    """FTS5 with an external content table forgets a row only when told its old values."""
    db.execute(
        "INSERT INTO documents(documents, rowid, id, workspace_id, content, metadata, created_at)"
        " VALUES ('delete', ?, ?, ?, ?, ?, ?)",
        (row[0], *row),
    )


def _lead(content: str, words: int = SNIPPET_TOKENS) -> str:
    parts = content.split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")
