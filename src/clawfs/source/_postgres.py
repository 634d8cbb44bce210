"""Read an IronClaw store from PostgreSQL: one read-only, point-in-time snapshot for the whole run.

Everything here happens inside one `REPEATABLE READ READ ONLY` transaction, so documents, vectors,
metadata and identities are the same instant of the database. Tables are streamed with
`COPY ... TO STDOUT (FORMAT BINARY)`; nothing is written to PostgreSQL, and `SELECT` is the only
privilege needed.
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.pq import Format

from .._checksum import RangeSum, from_sql
from .._values import format_timestamp, scrub, source_label, url_password
from ..errors import BadRowError, SourceError
from ._checksum_sql import DOCUMENT_ROWS, VECTOR_ROWS, range_sums, rows_in_ranges, timestamp_text
from ._vector_copy import VectorBatch, VectorCopyDecoder

_ROWS = {"documents": DOCUMENT_ROWS, "vectors": VECTOR_ROWS}
RANK_AT_MOST = 1000  # matches of one text that verification will rank with ts_rank_cd

REQUIRED = ("documents", "vectors")
OPTIONAL = ("metadata", "agent_identities")
KNOWN_COLUMNS = {
    "documents": ("id", "workspace_id", "content", "metadata", "created_at", "updated_at"),
    "vectors": ("id", "document_id", "embedding", "created_at"),
    "metadata": ("key", "value"),
    "agent_identities": (
        "agent_id",
        "version",
        "state",
        "memory",
        "history",
        "performance",
        "created_at",
        "updated_at",
        "checksum",
    ),
}
NEEDED_COLUMNS = {
    "documents": ("id", "workspace_id", "content", "metadata", "created_at"),
    "vectors": ("id", "document_id", "embedding", "created_at"),
    "metadata": ("key", "value"),
    "agent_identities": KNOWN_COLUMNS["agent_identities"],
}
_UNPACK_INT64 = struct.Struct(">q").unpack


class _TimestampLoader(Loader):
    """timestamptz in binary: int64 microseconds since 2000-01-01 UTC, infinity as int64 extremes."""

    format = Format.BINARY

    def load(self, data: Any) -> str:
        return format_timestamp(_UNPACK_INT64(data)[0])


# id, workspace_id, content, metadata (jsonb::text), created_at (text of DESIGN §2.2)
DocumentRow = tuple[int, str, str, str | None, str | None]


@dataclass(frozen=True)
class IdentityRow:
    agent_id: str
    version: int
    state: str
    memory: str
    history: str
    performance: str
    created_at: str | None
    updated_at: str | None
    checksum: str


@dataclass(frozen=True)
class SourceInfo:
    """What the source is and what it holds; recorded in reports and in workspace metadata."""

    host: str
    port: int | None
    database: str
    server_version: str
    pgvector_version: str
    snapshot_lsn: str | None
    snapshot_xmin: str
    dimension: int | None
    vector_type: str
    tables_missing: tuple[str, ...]
    extra_tables: tuple[str, ...]
    extra_columns: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def location(self) -> str:
        """host:port/database: where the data came from, never with a password."""
        return f"{self.host}:{self.port}/{self.database}" if self.port else f"{self.host}/{self.database}"

    def snapshot_record(self) -> dict[str, Any]:
        """What workspace metadata records of the snapshot it was copied from (key `source_snapshot`)."""
        return {
            "wal_lsn": self.snapshot_lsn,
            "snapshot": self.snapshot_xmin,
            "server_version": self.server_version,
            "pgvector_version": self.pgvector_version,
        }


def _one_line(error: BaseException, secrets: Sequence[str | None]) -> str:
    """A psycopg error as one line without the password. The SourceError made of it is raised outside
    the `except` block: raised inside, the psycopg error would stay attached as its `__context__` (hidden
    from printing by `from None`, not from code), and that error's `pgconn` holds the password."""
    text = " ".join(str(error).split())
    text = re.sub(r"^connection failed:\s*", "", text)
    return scrub(text, secrets) or type(error).__name__


class Source:
    """A read-only snapshot of an IronClaw store. Use as a context manager."""

    def __init__(self, url: str | None, snapshot: str | None = None) -> None:
        """Open a snapshot of the store; with `snapshot` (from `export_snapshot`), join that one."""
        self.url = url or ""
        self._secrets = [url_password(self.url)]
        self.redacted_url = source_label(self.url)
        failure = None
        try:
            self.conn = psycopg.connect(self.url, application_name="clawfs", connect_timeout=15)
        except psycopg.Error as e:
            failure = SourceError(f"cannot connect to PostgreSQL: {_one_line(e, self._secrets)}")
        if failure is not None:  # raised outside `except`: see `_one_line`
            raise failure
        try:
            self.conn.read_only = True
            self.conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            self.conn.adapters.register_loader("timestamptz", _TimestampLoader)
            if snapshot is not None:
                self.conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            self.conn.execute("SET TIME ZONE 'UTC'")
            self.info = self._inspect()
        except BaseException:
            self.conn.close()
            raise

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the read-only transaction; a connection the server already dropped just closes (the work
        was done, or the error that matters was raised already)."""
        if not self.conn.closed:
            with contextlib.suppress(psycopg.Error):
                self.conn.rollback()
            self.conn.close()

    def wal_behind(self) -> int | None:
        """Bytes of WAL written since this snapshot was taken (None where the server cannot say)."""
        if self.info.snapshot_lsn is None:
            return None
        try:
            row = self._query(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::int8", [self.info.snapshot_lsn]
            )
        except SourceError:
            return None
        return int(row[0][0]) if row and row[0][0] is not None else None

    def export_snapshot(self) -> str:
        """An id other connections can join (`Source(url, snapshot=id)`) while this one stays open."""
        return str(self._query("SELECT pg_export_snapshot()")[0][0])

    def _error(self, what: str, e: BaseException) -> SourceError:
        lost = isinstance(e, psycopg.OperationalError) and self.conn.broken
        return SourceError(f"{what}: {_one_line(e, self._secrets)}", connection_lost=lost)

    def _query(self, query: str | sql.Composed, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor(binary=True) as cur:
                cur.execute(query, params)
                return cur.fetchall()
        except psycopg.Error as e:
            failure = self._error("PostgreSQL refused a query", e)
        raise failure

    # -- schema ---------------------------------------------------------------------------

    def _inspect(self) -> SourceInfo:
        (snapshot, lsn, version, database, host, port) = self._query(
            "SELECT pg_current_snapshot()::text,"
            " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,"
            " current_setting('server_version'), current_database(),"
            " coalesce(host(inet_server_addr()), 'local socket'), inet_server_port()"
        )[0]
        ext = self._query("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        if not ext:
            raise SourceError(f"pgvector is not installed in database {database!r} (CREATE EXTENSION vector)")
        self.tables = self._tables()
        missing_required = [t for t in REQUIRED if t not in self.tables]
        if missing_required:
            raise SourceError(
                f"database {database!r} has no table {', '.join(missing_required)} "
                "(is this an IronClaw store? is search_path right?)"
            )
        for table, columns in self.tables.items():
            needed = [c for c in NEEDED_COLUMNS[table] if c not in columns]
            if needed:
                raise SourceError(f"table {table} has no column {', '.join(needed)}")
            if not self._query("SELECT has_table_privilege(%s::regclass, 'SELECT')", [table])[0][0]:
                raise SourceError(f"permission denied: the role cannot SELECT from table {table}")
        embedding_type = self.tables["vectors"]["embedding"]
        m = re.fullmatch(r"(vector|halfvec)(?:\((\d+)\))?", embedding_type)
        if not m:
            raise SourceError(f"vectors.embedding has type {embedding_type}, expected vector or halfvec")
        self.vector_type = m.group(1)
        declared = int(m.group(2)) if m.group(2) else None
        return SourceInfo(
            host=host,
            port=port,
            database=database,
            server_version=version,
            pgvector_version=ext[0][0],
            snapshot_lsn=lsn,
            snapshot_xmin=snapshot,
            dimension=self._dimension(declared),
            vector_type=self.vector_type,
            tables_missing=tuple(t for t in OPTIONAL if t not in self.tables),
            extra_tables=self._extra_tables(),
            extra_columns={
                t: tuple(c for c in cols if c not in KNOWN_COLUMNS[t])
                for t, cols in self.tables.items()
                if any(c not in KNOWN_COLUMNS[t] for c in cols)
            },
        )

    def _tables(self) -> dict[str, dict[str, str]]:
        rows = self._query(
            "SELECT t.name, a.attname::text, format_type(a.atttypid, a.atttypmod)"
            " FROM unnest(%s::text[]) AS t(name)"
            " JOIN pg_attribute a ON a.attrelid = to_regclass(t.name)"
            " WHERE a.attnum > 0 AND NOT a.attisdropped ORDER BY t.name, a.attnum",
            [list(REQUIRED + OPTIONAL)],
        )
        tables: dict[str, dict[str, str]] = {}
        for table, column, type_name in rows:
            tables.setdefault(table, {})[column] = type_name
        return tables

    def _extra_tables(self) -> tuple[str, ...]:
        rows = self._query(
            "SELECT c.relname::text FROM pg_class c"
            " WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = to_regclass('documents'))"
            " AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND c.relname <> ALL(%s::text[])"
            " ORDER BY 1",
            [list(REQUIRED + OPTIONAL)],
        )
        return tuple(r[0] for r in rows)

    def _dimension(self, declared: int | None) -> int | None:
        recorded: int | None = None
        if "metadata" in self.tables:
            rows = self._query("SELECT value::text FROM metadata WHERE key = 'vector_dimension'")
            if rows:
                try:
                    recorded = int(str(rows[0][0]).strip('"'))
                except ValueError:
                    raise SourceError(f"metadata.vector_dimension is not a number: {rows[0][0]}") from None
        if declared is not None:
            if recorded is not None and recorded != declared:
                raise SourceError(
                    f"metadata.vector_dimension says {recorded} but vectors.embedding is {self.vector_type}({declared})"
                )
            return declared
        if recorded is not None:
            return recorded
        rows = self._query("SELECT vector_dims(embedding) FROM vectors WHERE embedding IS NOT NULL LIMIT 1")
        return int(rows[0][0]) if rows else None

    # -- content ----------------------------------------------------------------------------

    def workspace_ids(self) -> list[str]:
        rows = self._query("SELECT DISTINCT workspace_id FROM documents WHERE workspace_id IS NOT NULL ORDER BY 1")
        return [r[0] for r in rows]

    def counts(self, workspaces: Sequence[str]) -> dict[str, tuple[int, int]]:
        """Documents and vectors per workspace, in the snapshot."""
        rows = self._query(
            "SELECT d.workspace_id, count(DISTINCT d.id), count(v.id)"
            " FROM documents d LEFT JOIN vectors v ON v.document_id = d.id"
            " WHERE d.workspace_id = ANY(%s::text[]) GROUP BY 1",
            [list(workspaces)],
        )
        found = {r[0]: (int(r[1]), int(r[2])) for r in rows}
        return {ws: found.get(ws, (0, 0)) for ws in workspaces}

    def read_documents(
        self,
        workspaces: Sequence[str],
        on_bad_row: Callable[[BadRowError], None],
        ids: Sequence[int] | None = None,
    ) -> Iterator[DocumentRow]:
        """Documents of the given workspaces (only those with the given ids, when `ids` is not None)."""
        query = sql.SQL(
            "COPY (SELECT id::int8, workspace_id, content, metadata::text, created_at::timestamptz"
            " FROM documents WHERE workspace_id = ANY({}){}) TO STDOUT (FORMAT BINARY)"
        ).format(sql.Literal(list(workspaces)), _only(ids, "id"))
        failure = None
        try:
            with self.conn.cursor(binary=True) as cur, cur.copy(query) as copy:
                copy.set_types(["int8", "text", "text", "text", "timestamptz"])
                for row in copy.rows():
                    if row[2] is None:
                        on_bad_row(BadRowError("documents", row[0], "content is NULL"))
                        continue
                    yield row
        except psycopg.Error as e:
            failure = self._error("reading documents failed", e)
        if failure is not None:
            raise failure

    def documents_without_workspace(self) -> list[int]:
        return [r[0] for r in self._query("SELECT id::int8 FROM documents WHERE workspace_id IS NULL ORDER BY 1")]

    def read_vectors(
        self,
        workspaces: Sequence[str],
        batch_rows: int,
        on_bad_row: Callable[[BadRowError], None],
        include_orphans: bool,
        ids: Sequence[int] | None = None,
        document_ids: Sequence[int] | None = None,
    ) -> Iterator[VectorBatch]:
        """Vectors of the given workspaces as decoded batches; `VectorBatch.workspace` indexes `workspaces`.

        With `include_orphans`, vectors whose document does not exist are reported as bad rows. With
        `ids`, only the vectors with those ids; with `document_ids`, only the vectors of those documents.
        """
        dimension = self.info.dimension
        if dimension is None:
            return
        join = "LEFT JOIN" if include_orphans else "JOIN"
        query = sql.SQL(
            "COPY (SELECT array_position({ws}::text[], d.workspace_id)::int4 - 1, v.id::int8,"
            " v.document_id::int8, v.embedding, v.created_at::timestamptz"
            " FROM vectors v {join} documents d ON d.id = v.document_id"
            " WHERE {where}{only}{of}) TO STDOUT (FORMAT BINARY)"
        ).format(
            ws=sql.Literal(list(workspaces)),
            join=sql.SQL(join),
            where=sql.SQL("true" if include_orphans else "d.workspace_id = ANY({})").format(
                sql.Literal(list(workspaces))
            ),
            only=_only(ids, "v.id"),
            of=_only(document_ids, "v.document_id"),
        )

        def orphan_reason(document_id: int | None) -> str:
            if document_id is None:
                return "document_id is NULL"
            return f"its document {document_id} does not exist"

        decoder = VectorCopyDecoder(
            dimension=dimension,
            halfvec=self.vector_type == "halfvec",
            batch_rows=batch_rows,
            on_bad_row=on_bad_row,
            orphan_reason=orphan_reason,
        )
        self.vector_bytes_read = 0
        failure = None
        try:
            with self.conn.cursor() as cur, cur.copy(query) as copy:
                yield from decoder.decode(copy)
        except psycopg.Error as e:
            failure = self._error("reading vectors failed", e)
        finally:
            self.vector_bytes_read = decoder.bytes_read
        if failure is not None:
            raise failure

    def read_metadata(self) -> list[tuple[str, str]]:
        if "metadata" not in self.tables:
            return []
        return [(k, v) for k, v in self._query("SELECT key, value::text FROM metadata ORDER BY key")]

    def read_identities(self, on_bad_row: Callable[[BadRowError], None]) -> list[IdentityRow]:
        if "agent_identities" not in self.tables:
            return []
        rows = self._query(
            "SELECT agent_id, version::int8, state::text, memory::text, history::text, performance::text,"
            " created_at::timestamptz, updated_at::timestamptz, checksum FROM agent_identities ORDER BY agent_id"
        )
        out = []
        for row in rows:
            nulls = [
                name
                for name, value in zip(NEEDED_COLUMNS["agent_identities"], row, strict=True)
                if value is None and name not in ("created_at", "updated_at")
            ]
            if nulls:
                on_bad_row(BadRowError("agent_identities", row[0], f"{', '.join(nulls)} is NULL"))
                continue
            out.append(IdentityRow(*row))
        return out

    # -- checksums (clawfs._checksum), computed by PostgreSQL --------------------------------

    def range_checksums(self, table: str, workspace: str) -> dict[int, RangeSum]:
        """Per-range checksums of a workspace's documents or vectors, computed inside PostgreSQL."""
        return from_sql(self._query(range_sums(_ROWS[table]), {"workspace": workspace}))

    def row_hashes(self, table: str, workspace: str, ranges: Sequence[int]) -> dict[int, int]:
        rows = self._query(rows_in_ranges(_ROWS[table]), {"workspace": workspace, "ranges": list(ranges)})
        return {int(i): int(h) for i, h in rows}

    # -- search checks (draft §8.4, §8.5) and identities, for verification ------------------

    def sample_documents(self, workspace: str, n: int) -> list[tuple[int, str]]:
        """A reproducible sample: the n documents whose md5(id) sorts first."""
        return [
            (int(i), c)
            for i, c in self._query(
                "SELECT id::int8, content FROM documents WHERE workspace_id = %s ORDER BY md5(id::text) LIMIT %s",
                [workspace, n],
            )
        ]

    def fts_answers(self, workspace: str, texts: Sequence[str], ranked: bool, limit: int = 10) -> list[list[int]]:
        """PostgreSQL's own full-text answers to plainto_tsquery('english', text): with `ranked`, the top
        `limit` by ts_rank_cd; without, the first `limit` matching ids (cheap: no ranking of every match).

        With the draft's GIN index on to_tsvector('english', content), one indexed query per text;
        without it, one scan answers all texts (a scan per text would cost seconds each)."""
        if not texts:
            return []
        order = "ts_rank_cd({tsv}, q.t) DESC, id" if ranked else "id"
        if self._has_fts_index():
            return [self._indexed_fts_answer(workspace, text, ranked, limit) for text in texts]
        rows = self._query(
            "WITH q AS (SELECT n, plainto_tsquery('english', w) AS t FROM unnest(%(texts)s::text[])"
            " WITH ORDINALITY AS u(w, n)),"
            " d AS MATERIALIZED (SELECT id::int8 AS id, to_tsvector('english', content) AS tsv"
            " FROM documents WHERE workspace_id = %(ws)s)"
            " SELECT n, id FROM (SELECT q.n, d.id, row_number() OVER"
            f" (PARTITION BY q.n ORDER BY {order.format(tsv='d.tsv')}) AS r"
            " FROM d JOIN q ON d.tsv @@ q.t) x WHERE r <= %(limit)s ORDER BY n, r",
            {"texts": list(texts), "ws": workspace, "limit": limit},
        )
        answers: list[list[int]] = [[] for _ in texts]
        for n, doc_id in rows:
            answers[int(n) - 1].append(int(doc_id))
        return answers

    def _indexed_fts_answer(self, workspace: str, text: str, ranked: bool, limit: int) -> list[int]:
        """Unranked, any `limit` matches will do: without ORDER BY the bitmap heap scan stops after `limit`
        rows instead of visiting every match. Ranked, ts_rank_cd must parse every match again, which
        costs seconds for common words (16k matches: 1.8 s), so a text with more than RANK_AT_MOST
        matches gets no ranked answer ([])."""
        matches = (
            "SELECT id::int8 AS id, content FROM documents, (SELECT plainto_tsquery('english', %(q)s) AS t) q"
            " WHERE workspace_id = %(ws)s AND to_tsvector('english', content) @@ q.t"
        )
        params = {"q": text, "ws": workspace, "limit": limit, "most": RANK_AT_MOST}
        if not ranked:
            return [int(r[0]) for r in self._query(f"{matches} LIMIT %(limit)s", params)]
        rows = self._query(
            f"WITH m AS MATERIALIZED ({matches} LIMIT %(most)s + 1)"
            " SELECT id FROM m, (SELECT plainto_tsquery('english', %(q)s) AS t) q"
            " WHERE (SELECT count(*) FROM m) <= %(most)s"
            " ORDER BY ts_rank_cd(to_tsvector('english', content), q.t) DESC, id LIMIT %(limit)s",
            params,
        )
        return [int(r[0]) for r in rows]

    def _has_fts_index(self) -> bool:
        return bool(
            self._query(
                "SELECT 1 FROM pg_index i WHERE i.indrelid = 'documents'::regclass"
                " AND pg_get_indexdef(i.indexrelid) ILIKE %s LIMIT 1",
                ["%to_tsvector('english'::regconfig, content)%"],
            )
        )

    def sample_vectors(self, workspace: str, n: int) -> list[tuple[int, str]]:
        """A reproducible sample of (vector id, embedding as pgvector text), zero vectors left out.
        Ids are drawn first (by md5(id)), so only the drawn embeddings are read."""
        rows = self._query(
            "WITH drawn AS (SELECT v.id FROM vectors v JOIN documents d ON d.id = v.document_id"
            " WHERE d.workspace_id = %(ws)s ORDER BY md5(v.id::text) LIMIT %(draw)s)"
            " SELECT v.id::int8, v.embedding::vector::text FROM vectors v JOIN drawn USING (id)"
            " WHERE vector_dims(v.embedding::vector) = %(dim)s AND vector_norm(v.embedding::vector) > 0"
            " ORDER BY md5(v.id::text) LIMIT %(n)s",
            {"ws": workspace, "draw": 2 * n + 10, "dim": self.info.dimension, "n": n},
        )
        return [(int(i), t) for i, t in rows]

    def exact_neighbours(self, workspace: str, vector_texts: Sequence[str], k: int = 10) -> list[list[int]]:
        """Exact cosine top-k of each vector by pgvector's own distance (`<=>`), all in one sequential
        scan: every row's distance to every query is computed by PostgreSQL, ordered (distance, id) here."""
        if not vector_texts:
            return []
        distances = sql.SQL(", ").join(
            sql.SQL("v.embedding <=> {}::{}").format(sql.Literal(text), sql.Identifier(self.vector_type))
            for text in vector_texts
        )
        query = sql.SQL(
            "SELECT v.id::int8, {} FROM vectors v JOIN documents d ON d.id = v.document_id"
            " WHERE d.workspace_id = %s AND vector_dims(v.embedding::vector) = %s"
        ).format(distances)
        rows = self._query(query, [workspace, self.info.dimension])
        if not rows:
            return [[] for _ in vector_texts]
        table = np.asarray(rows, dtype=np.float64)  # NaN (zero vectors) sorts last, as in PostgreSQL
        ids = table[:, 0].astype(np.int64)
        return [ids[np.lexsort((ids, table[:, 1 + n]))[:k]].tolist() for n in range(len(vector_texts))]

    def identities_for_verify(self) -> list[tuple[Any, ...]]:
        """Identity rows with the timestamps formatted by PostgreSQL itself (DESIGN §2.2 text)."""
        if "agent_identities" not in self.tables:
            return []
        return self._query(
            "SELECT agent_id, version::int8, state::text, memory::text, history::text, performance::text,"
            f" {timestamp_text('created_at::timestamptz')}, {timestamp_text('updated_at::timestamptz')}, checksum"
            " FROM agent_identities ORDER BY agent_id"
        )


def _only(ids: Sequence[int] | None, column: str) -> sql.Composable:
    """` AND <column> = ANY(ids)`, or nothing when `ids` is None."""
    if ids is None:
        return sql.SQL("")
    return sql.SQL(" AND {} = ANY({}::int8[])").format(sql.SQL(column), sql.Literal([int(i) for i in ids]))


@dataclass(frozen=True)
class ReadOnlySwitch:
    database: str
    other_sessions: int  # sessions connected before the switch: they keep their setting until they reconnect


def make_database_read_only(url: str | None) -> ReadOnlySwitch:
    """`ALTER DATABASE <current> SET default_transaction_read_only = on` (the draft's "Disable PostgreSQL
    writes"), only when asked (`cutover`); besides `sync setup`'s publication and slot, the only thing
    clawfs ever writes to PostgreSQL.
    Undo (from a session that is itself read-only by default now):
    `BEGIN READ WRITE; ALTER DATABASE <db> RESET default_transaction_read_only; COMMIT`."""
    secrets = [url_password(url or "")]
    try:
        with psycopg.connect(url or "", application_name="clawfs", connect_timeout=15, autocommit=True) as conn:
            database = str(conn.execute("SELECT current_database()").fetchone()[0])  # type: ignore[index]
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(sql.Identifier(database))
            )
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND backend_type = 'client backend'"
            ).fetchone()
            return ReadOnlySwitch(database, int(row[0]) if row else 0)
    except psycopg.errors.InsufficientPrivilege as e:
        failure = SourceError(
            f"cannot make the database read-only: {_one_line(e, secrets)} (it takes the database owner or a superuser)"
        )
    except psycopg.Error as e:
        failure = SourceError(f"cannot make the database read-only: {_one_line(e, secrets)}")
    raise failure
