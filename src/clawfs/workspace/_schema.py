"""The workspace.db schema of DESIGN §2.1, exactly; clawfs' own tables are prefixed `clawfs_`."""

from __future__ import annotations

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE document_store (
    id           INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    content      TEXT NOT NULL,
    metadata     TEXT,
    created_at   TEXT
);
CREATE VIRTUAL TABLE documents USING fts5(
    id UNINDEXED, workspace_id UNINDEXED, content, metadata, created_at UNINDEXED,
    content='document_store', content_rowid='id', tokenize='porter unicode61'
);
CREATE TABLE vectors (
    id           INTEGER PRIMARY KEY,
    document_id  INTEGER NOT NULL REFERENCES document_store(id),
    embedding    BLOB NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX vectors_document_id ON vectors(document_id);
CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# While a workspace is being built it lives under a temporary name that nobody reads. Each batch of
# rows is committed (a checkpoint `migrate --resume` continues from); a rollback journal keeps every
# commit whole if the process is killed, and costs little while rows are appended (new pages are not
# journaled). No fsync per batch: a build that a power loss damaged is found by `quick_check`, and
# every kept row is compared with PostgreSQL before use. Once renamed into place: WAL.
BUILD_PRAGMAS = (
    "PRAGMA page_size = 16384",
    "PRAGMA journal_mode = TRUNCATE",
    "PRAGMA synchronous = OFF",
    "PRAGMA cache_size = -65536",
    "PRAGMA temp_store = MEMORY",
)
FINAL_PRAGMAS = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL")

# Metadata keys clawfs always writes (DESIGN §2.2); values are JSON text.
HNSW_KEYS = ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "hnsw_metric", "hnsw_dtype")

# Every metadata key clawfs writes itself; the other keys of a workspace are the source's rows.
CLAWFS_METADATA_KEYS = frozenset(
    {
        "vector_dimension",
        "embedding_model",
        "hnsw_m",
        "hnsw_ef_construction",
        "hnsw_ef_search",
        "hnsw_metric",
        "hnsw_dtype",
        "workspace_id",
        "schema_version",
        "migrated_at",
        "source",
        "source_snapshot",
        "document_count",
        "vector_count",
        "checksums",
        "hnsw_index",
    }
)
