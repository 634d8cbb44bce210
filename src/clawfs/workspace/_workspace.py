"""A migrated workspace, opened for use: full-text, vector and hybrid search (DESIGN §4.1).

- full text: FTS5 with bm25; the user's words are quoted one by one, so no string can be FTS5 syntax
  (all words must match, like PostgreSQL's `plainto_tsquery`); score = -bm25, higher is better.
- vector: the HNSW index (cosine); score = similarity = 1 - cosine distance; a document with several
  vectors appears once, with its best one.
- hybrid: reciprocal rank fusion, score = sum over both lists of 1 / (60 + rank), ranks from 1, each
  list `max(4k, 50)` deep.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

from .._values import blob_to_embedding
from ..errors import UsageError, WorkspaceError
from ._index import HnswParams, IndexStamp
from ._layout import DB_NAME, Layout, index_path_for

RRF_K = 60


@dataclass(frozen=True)
class Hit:
    document_id: int
    score: float
    content: str
    metadata: Any
    created_at: str | None


def fts_query(text: str) -> str | None:
    """User text as a safe FTS5 query: every whitespace-separated word quoted (`"` doubled), NULs dropped."""
    words = text.replace("\x00", " ").split()
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


def open_read_only(db_path: Path) -> sqlite3.Connection:
    """A read-only connection, by URI with the path percent-encoded (workspace directories contain '%')."""
    return sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)


def ranked_matches(db: sqlite3.Connection, text: str, limit: int) -> list[tuple[int, float]]:
    """Full-text search of user text: (document id, -bm25), best first; never an FTS5 syntax error."""
    query = fts_query(text)
    if query is None:
        return []
    rows = db.execute(
        "SELECT rowid, -bm25(documents) FROM documents WHERE documents MATCH ? ORDER BY rank LIMIT ?",
        (query, limit),
    ).fetchall()
    return [(int(r[0]), float(r[1])) for r in rows]


class Workspace:
    """Open with `Workspace.open(root, workspace_id)` or `Workspace.open(path_to_workspace_db)`."""

    def __init__(self, db_path: Path) -> None:
        if not db_path.is_file():
            raise WorkspaceError(f"no workspace database at {db_path}")
        self.path = db_path
        try:
            self.db = open_read_only(db_path)
            self.metadata: dict[str, Any] = {
                k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM metadata")
            }
        except (sqlite3.Error, ValueError) as e:
            raise WorkspaceError(f"{db_path} is not a readable ClawFS workspace: {e}") from None
        self.workspace_id: str = self.metadata.get("workspace_id", "")
        self.dimension: int | None = self.metadata.get("vector_dimension")
        self.hnsw = HnswParams.from_metadata(self.metadata)
        self._index: Index | None = None

    @classmethod
    def open(cls, root: str | Path, workspace_id: str | None = None) -> Workspace:
        if workspace_id is None:
            path = Path(root)
            return cls(path / DB_NAME if path.is_dir() else path)
        return cls(Layout(Path(root)).workspace_db(workspace_id))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def index(self) -> Index:
        """The HNSW index, memory-mapped; refused when it does not match what metadata records."""
        if self._index is None:
            path = index_path_for(self.path)
            stamp = IndexStamp(**self.metadata.get("hnsw_index", {}))
            (count,) = self.db.execute("SELECT count(*) FROM vectors").fetchone()
            if not path.is_file():
                raise WorkspaceError(f"the HNSW index {path} is missing; rebuild it from the vectors table")
            if path.stat().st_size != stamp.bytes or stamp.vectors != count:
                raise WorkspaceError(
                    f"the HNSW index {path} does not match this workspace ({count} vectors in the table, "
                    f"the index was stamped for {stamp.vectors}); rebuild it from the vectors table"
                )
            index = Index.restore(str(path), view=True)
            if index is None or len(index) != count:
                raise WorkspaceError(f"the HNSW index {path} is damaged; rebuild it from the vectors table")
            index.expansion_search = self.hnsw.ef_search  # type: ignore[misc]  # settable at run time
            self._index = index
        return self._index

    def document_vector(self, document_id: int) -> list[float]:
        """The first stored vector of a document (for "more like this" searches)."""
        row = self.db.execute(
            "SELECT embedding FROM vectors WHERE document_id = ? ORDER BY id LIMIT 1", (document_id,)
        ).fetchone()
        if row is None:
            raise UsageError(f"document {document_id} has no vector in workspace {self.workspace_id!r}")
        return [float(x) for x in blob_to_embedding(row[0])]

    def search(self, text: str | None = None, vector: Sequence[float] | None = None, k: int = 10) -> list[Hit]:
        if k < 1:
            raise UsageError("k must be at least 1")
        if text is not None and vector is not None:
            depth = max(4 * k, 50)
            fused: dict[int, float] = {}
            for ranked in (self._fts(text, depth), self._vector(vector, depth)):
                for rank, (doc_id, _) in enumerate(ranked, start=1):
                    fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (RRF_K + rank)
            best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
            return self._hits(best)
        if text is not None:
            return self._hits(self._fts(text, k))
        if vector is not None:
            return self._hits(self._vector(vector, k))
        raise UsageError("search needs text, a vector, or both")

    def _fts(self, text: str, limit: int) -> list[tuple[int, float]]:
        return ranked_matches(self.db, text, limit)

    def _vector(self, vector: Sequence[float], limit: int) -> list[tuple[int, float]]:
        query = np.asarray(vector, dtype=np.float32)
        if self.dimension is None or query.shape != (self.dimension,):
            raise UsageError(f"the query vector has {query.size} dimensions, the workspace {self.dimension}")
        if not np.isfinite(query).all():
            raise UsageError("the query vector has NaN or Inf")
        best: dict[int, float] = {}
        want = limit
        while True:
            matches = self.index.search(query, want)
            keys = [int(key) for key in matches.keys]
            owners = (
                dict(
                    self.db.execute(
                        f"SELECT id, document_id FROM vectors WHERE id IN ({','.join('?' * len(keys))})", keys
                    ).fetchall()
                )
                if keys
                else {}
            )
            best = {}
            for key, distance in zip(keys, matches.distances.tolist(), strict=True):
                doc = owners.get(key)
                if doc is not None and doc not in best:
                    best[doc] = 1.0 - float(distance)
            if len(best) >= limit or len(keys) < want:
                break
            want *= 4
        return sorted(best.items(), key=lambda item: -item[1])[:limit]

    def _hits(self, ranked: list[tuple[int, float]]) -> list[Hit]:
        if not ranked:
            return []
        ids = [doc for doc, _ in ranked]
        marks = ",".join("?" * len(ids))
        query = f"SELECT id, content, metadata, created_at FROM document_store WHERE id IN ({marks})"
        rows = {r[0]: r[1:] for r in self.db.execute(query, ids)}
        return [
            Hit(
                doc,
                score,
                rows[doc][0],
                json.loads(rows[doc][1]) if rows[doc][1] is not None else None,
                rows[doc][2],
            )
            for doc, score in ranked
            if doc in rows
        ]
