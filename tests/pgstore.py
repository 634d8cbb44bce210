"""Test helpers: a fresh IronClaw store (draft §1.1 and §7.1) in its own database, filled with given rows."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def with_database(url: str, dbname: str, user: str | None = None, password: str | None = None) -> str:
    """The same server URL pointing at another database (and optionally another role)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2] if "@" in parts.netloc else parts.netloc
    if user is not None:
        netloc = f"{user}:{password}@{netloc}" if password else f"{user}@{netloc}"
    elif "@" in parts.netloc:
        netloc = parts.netloc
    return urlunsplit((parts.scheme, netloc, "/" + dbname, parts.query, parts.fragment))


def schema_sql(dimension: int | None = 3, vector_type: str = "vector", foreign_key: bool = True) -> str:
    column = f"{vector_type}({dimension})" if dimension else vector_type
    references = "REFERENCES documents(id) ON DELETE CASCADE" if foreign_key else ""
    return f"""
    CREATE TABLE documents (
        id SERIAL PRIMARY KEY,
        workspace_id TEXT NOT NULL,
        content TEXT NOT NULL,
        metadata JSONB,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
        updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
    );
    CREATE INDEX idx_documents_content_gin ON documents USING GIN(to_tsvector('english', content));
    CREATE TABLE vectors (
        id SERIAL PRIMARY KEY,
        document_id INTEGER NOT NULL {references},
        embedding {column} NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW()
    );
    CREATE TABLE metadata (key TEXT PRIMARY KEY, value JSONB NOT NULL);
    CREATE TABLE agent_identities (
        agent_id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        state JSONB NOT NULL,
        memory JSONB NOT NULL,
        history JSONB NOT NULL,
        performance JSONB NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
        updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
        checksum TEXT NOT NULL
    );
    """


@dataclass
class PgStore:
    """One test database. `url` is the owner's connection URL."""

    url: str
    dbname: str
    server_url: str

    def sql(self, query: str | sql.Composable, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn, conn.cursor() as cur:
            cur.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def drop_slots(self) -> None:
        """Drop the replication slots made on this database (it cannot be dropped with one), waiting for a
        reader that is still ending."""
        deadline = time.monotonic() + 30
        while True:
            slots = self.sql("SELECT slot_name, active FROM pg_replication_slots WHERE database = %s", [self.dbname])
            if not slots:
                return
            for name, active in slots:
                if not active:
                    with contextlib.suppress(psycopg.errors.ObjectInUse):  # became active meanwhile
                        self.sql("SELECT pg_drop_replication_slot(%s)", [name])
            assert time.monotonic() < deadline, f"replication slots still in use: {slots}"
            time.sleep(0.05)

    def create_schema(self, dimension: int | None = 3, vector_type: str = "vector", foreign_key: bool = True) -> None:
        self.sql(schema_sql(dimension, vector_type, foreign_key))

    def add_documents(self, rows: Iterable[dict[str, Any]]) -> list[int]:
        """Rows as dicts: id (optional), workspace_id, content, metadata (a JSON text or None), created_at."""
        ids = []
        with psycopg.connect(self.url, autocommit=True) as conn:
            for row in rows:
                columns = list(row)
                query = sql.SQL("INSERT INTO documents ({}) VALUES ({}) RETURNING id").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                )
                ids.append(conn.execute(query, list(row.values())).fetchone()[0])  # type: ignore[index]
        return ids

    def add_vectors(self, rows: Iterable[dict[str, Any]]) -> list[int]:
        """Rows as dicts: document_id, embedding (a list of floats or pgvector text), created_at."""
        ids = []
        with psycopg.connect(self.url, autocommit=True) as conn:
            for row in rows:
                row = dict(row)
                if isinstance(row.get("embedding"), list | tuple):
                    row["embedding"] = "[" + ",".join(repr(float(x)) for x in row["embedding"]) + "]"
                columns = list(row)
                query = sql.SQL("INSERT INTO vectors ({}) VALUES ({}) RETURNING id").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)),
                    sql.SQL(", ").join(sql.Placeholder() * len(columns)),
                )
                ids.append(conn.execute(query, list(row.values())).fetchone()[0])  # type: ignore[index]
        return ids

    def add_metadata(self, entries: dict[str, str]) -> None:
        for key, value in entries.items():
            self.sql("INSERT INTO metadata VALUES (%s, %s::jsonb)", [key, value])

    def add_identity(self, agent_id: str, **fields: Any) -> None:
        row = {
            "agent_id": agent_id,
            "version": 1,
            "state": json.dumps({"current_phase": "P2", "current_task": "A-01", "status": "in_progress"}),
            "memory": json.dumps({"learned_patterns": [], "heuristics": []}),
            "history": json.dumps({"completed_tasks": ["A-01"], "failed_tasks": [], "total_executions": 1}),
            "performance": json.dumps({"avg_execution_time_ms": 2340}),
            "checksum": "sha256:abc123",
        } | fields
        columns = list(row)
        self.sql(
            sql.SQL("INSERT INTO agent_identities ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            ),
            list(row.values()),
        )

    def fingerprint(self) -> dict[str, Any]:
        """Everything a write would change: row contents of every table and the write counters."""
        tables = [r[0] for r in self.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        out: dict[str, Any] = {}
        for t in tables:
            out[t] = self.sql(
                sql.SQL("SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {} x").format(
                    sql.Identifier(t)
                )
            )[0][0]
        out["_writes"] = self.sql(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
        )[0][0]
        return out

    def reader_url(self) -> str:
        """A role that may only SELECT the store's tables (created on first use)."""
        role = f"{self.dbname}_reader"
        if not self.sql("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]):
            self.sql(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        self.sql(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
        return with_database(self.server_url, self.dbname, user=role)
