"""A logical replication slot on the source, read through the SQL interface (`sync setup` / `teardown`).

`sync setup` creates a publication of the IronClaw tables and a slot with the built-in `pgoutput`
plugin; `sync` then peeks at the slot's stream for which rows changed (clawfs.source._pgoutput),
reads those rows, applies them, and only then advances the slot: a crash in between replays the
same changes, which is harmless (rows are read again, not taken from the stream).

A slot keeps every WAL segment it has not confirmed: a forgotten slot fills the server's disk.
`SlotStatus.retained_bytes` says how much it holds, `sync` warns past a threshold, and
`sync teardown` drops the slot and the publication in one command.

Needs `wal_level = logical`, and a role with the REPLICATION attribute (or a superuser); creating
the publication needs CREATE on the database and ownership of the tables.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from .._values import url_password
from ..errors import SourceError
from ._pgoutput import ChangeSet, PgoutputDecoder, PgoutputError
from ._postgres import _one_line

PUBLISHED = ("documents", "vectors", "metadata", "agent_identities")


def lsn_text(lsn: int) -> str:
    """PostgreSQL's `pg_lsn` text form of a WAL position."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class SlotStatus:
    name: str
    active: bool  # another session is reading it right now
    wal_status: str | None  # reserved / extended / unreserved / lost (a lost slot is useless)
    retained_bytes: int  # WAL the server keeps for this slot
    behind_bytes: int  # WAL written since the position the slot has confirmed


class ReplicationSlot:
    """One connection to the source for a slot's stream (autocommit, never read-only)."""

    def __init__(self, url: str | None, slot: str, publication: str) -> None:
        self.slot = slot
        self.publication = publication
        self._secrets = [url_password(url or "")]
        self.conn = _connect(url, self._secrets)

    def __enter__(self) -> ReplicationSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()

    def status(self) -> SlotStatus | None:
        """The slot as the server sees it, or None when it does not exist (dropped by someone)."""
        row = self._query(
            "SELECT active, wal_status,"
            " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::int8,"
            " coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::int8"
            " FROM pg_replication_slots WHERE slot_name = %s AND database = current_database()",
            [self.slot],
        )
        if not row:
            return None
        active, wal_status, retained, behind = row[0]
        return SlotStatus(self.slot, bool(active), wal_status, int(retained), int(behind))

    def peek(self, max_messages: int) -> ChangeSet:
        """Which rows changed in the transactions committed after the slot's confirmed position and before
        now: at most about `max_messages` messages (a transaction is never cut), the rest next time."""
        # the flushed position: decoding reads no further, so confirming beyond it could skip a commit
        (now,) = self._query("SELECT pg_wal_lsn_diff(pg_current_wal_flush_lsn(), '0/0')::int8", [])[0]
        rows = self._query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, %s::pg_lsn, %s,"
            " 'proto_version', '1', 'publication_names', %s)",
            [self.slot, lsn_text(int(now)), max_messages, self.publication],
        )
        decoder = PgoutputDecoder()
        try:
            for (data,) in rows:
                decoder.feed(bytes(data))
        except PgoutputError as e:
            raise SourceError(f"cannot read replication slot {self.slot!r}: {e}") from None
        changes = decoder.changes
        changes.more_waiting = len(rows) >= max_messages
        # All of the WAL up to `now` was read unless the limit cut it short: confirming `now` also lets the
        # server drop WAL of tables and databases the publication does not cover (pgoutput sends nothing).
        changes.confirm_lsn = changes.end_lsn if changes.more_waiting else max(int(now), changes.end_lsn or 0)
        return changes

    def advance(self, lsn: int) -> None:
        """Confirm everything up to `lsn` (applied): the server may drop the WAL before it."""
        self._query("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", [self.slot, lsn_text(lsn)])

    def _query(self, query: str, params: list[object]) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(query, params).fetchall()
        except psycopg.errors.InsufficientPrivilege as e:
            failure = SourceError(
                f"cannot use replication slot {self.slot!r}: {_one_line(e, self._secrets)} (it takes a role with"
                " REPLICATION; without the slot, sync compares: clawfs sync teardown by a role that may drop it)"
            )
        except psycopg.Error as e:
            lost = isinstance(e, psycopg.OperationalError) and self.conn.broken
            failure = SourceError(
                f"replication slot {self.slot!r}: {_one_line(e, self._secrets)}", connection_lost=lost
            )
        raise failure  # outside `except`: see `_one_line`


def create_slot(url: str | None, name: str, publication: str | None = None) -> tuple[list[str], int]:
    """A `pgoutput` slot `name`, reading the publication `publication` (one the tables' owner made) or,
    without one, a publication `name` of the IronClaw tables there are, made here. Returns the tables
    published and the slot's starting WAL position. Nothing is left behind if it fails."""
    secrets = [url_password(url or "")]
    with _connect(url, secrets) as conn:
        level = str(conn.execute("SHOW wal_level").fetchone()[0])  # type: ignore[index]
        if level != "logical":
            raise SourceError(
                f"logical decoding needs wal_level = logical, the server has {level!r}: set it in postgresql.conf"
                " and restart PostgreSQL, or keep using `clawfs sync` without setup (it compares instead)"
            )
        if publication is not None:
            tables = _published(conn, publication)
        else:
            tables = _existing(conn)
            failure = None
            try:
                conn.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
                        sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, tables))
                    )
                )
            except psycopg.Error as e:
                failure = SourceError(
                    f"cannot create publication {name!r}: {_one_line(e, secrets)} (it takes CREATE on the database"
                    " and ownership of the tables; or let their owner create one and give it with --publication)"
                )
            if failure is not None:
                raise failure
        failure = None
        try:
            row = conn.execute(
                "SELECT pg_wal_lsn_diff(lsn, '0/0')::int8 FROM pg_create_logical_replication_slot(%s, 'pgoutput')",
                [name],
            ).fetchone()
        except psycopg.Error as e:
            if publication is None:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
            hint = (
                " (it takes a role with REPLICATION)"
                if isinstance(e, psycopg.errors.InsufficientPrivilege)
                else " (are all of max_replication_slots in use?)"
                if isinstance(e, psycopg.errors.ConfigurationLimitExceeded)
                else ""
            )
            failure = SourceError(f"cannot create replication slot {name!r}: {_one_line(e, secrets)}{hint}")
        if failure is not None:
            raise failure
        assert row is not None
        return tables, int(row[0])


def _published(conn: psycopg.Connection[tuple[Any, ...]], publication: str) -> list[str]:
    """The IronClaw tables an existing publication covers (documents and vectors at least)."""
    rows = conn.execute(
        "SELECT tablename FROM pg_publication_tables WHERE pubname = %s AND schemaname = ANY(current_schemas(false))",
        [publication],
    ).fetchall()
    exists = conn.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s", [publication]).fetchone()
    if not exists or not exists[0]:
        raise SourceError(f"there is no publication {publication!r} in this database")
    tables = [t for t in PUBLISHED if t in {str(r[0]) for r in rows}]
    wanted = [t for t in _existing(conn) if t not in tables]
    if wanted:
        raise SourceError(
            f"publication {publication!r} does not cover {', '.join(wanted)}: its owner can add them"
            f" (ALTER PUBLICATION {publication} ADD TABLE {', '.join(wanted)})"
        )
    return tables


def drop_slot(url: str | None, slot: str, publication: str | None) -> tuple[bool, bool]:
    """Drop the slot and the publication (each only if it exists; None: no publication); returns which
    existed."""
    secrets = [url_password(url or "")]
    try:
        with _connect(url, secrets) as conn:
            had_slot = bool(
                conn.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [slot]).fetchone()[0]  # type: ignore[index]
            )
            if had_slot:
                conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
            if publication is None:
                return had_slot, False
            had_publication = bool(
                conn.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s", [publication]).fetchone()[0]  # type: ignore[index]
            )
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
            return had_slot, had_publication
    except psycopg.errors.ObjectInUse as e:
        failure = SourceError(
            f"cannot drop replication slot {slot!r}: {_one_line(e, secrets)} (stop sync --follow first)"
        )
    except psycopg.Error as e:
        failure = SourceError(f"cannot drop replication slot {slot!r}: {_one_line(e, secrets)}")
    raise failure


def _existing(conn: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%s) AND n.nspname = ANY(current_schemas(false))",
        [list(PUBLISHED)],
    ).fetchall()
    return sorted({str(r[0]) for r in rows}, key=PUBLISHED.index)


def _connect(url: str | None, secrets: list[str | None]) -> psycopg.Connection[tuple[Any, ...]]:
    failure = None
    try:
        conn = psycopg.connect(url or "", application_name="clawfs", connect_timeout=15, autocommit=True)
    except psycopg.Error as e:
        failure = SourceError(f"cannot connect to PostgreSQL: {_one_line(e, secrets)}")
    if failure is not None:
        raise failure
    with contextlib.suppress(psycopg.Error):
        conn.execute("SET default_transaction_read_only = off")  # after `cutover --make-source-read-only`
    return conn
