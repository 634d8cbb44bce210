"""Decode PostgreSQL's built-in logical decoding output (`pgoutput`, protocol version 1) into which
rows changed.

clawfs reads a replication slot through the SQL interface (`pg_logical_slot_peek_binary_changes`),
one message per row. It takes from the stream only *which* rows changed (their ids), never their
values: `sync` then reads those rows again with `COPY ... (FORMAT BINARY)` in a fresh snapshot, the
same exact path as `migrate`. That makes applying a change idempotent (a change seen twice is read
twice, harmlessly) and sidesteps TOAST: an UPDATE that leaves a large value unchanged sends it as
"unchanged" ('u'), which only matters to a consumer that takes values from the stream.

Messages (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html):
    B begin   C commit   R relation   I insert   U update   D delete   T truncate
    O origin  Y type     M message (all three ignored)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# Tables whose changed ids are collected; other published tables are only noted as changed.
ROW_TABLES = ("documents", "vectors")
PG_EPOCH_MICROS = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01


class PgoutputError(ValueError):
    """A message clawfs cannot decode (a newer protocol, or bytes that are not pgoutput)."""


@dataclass(frozen=True)
class Relation:
    namespace: str
    name: str
    columns: tuple[str, ...]


@dataclass
class ChangeSet:
    """What a stretch of the slot's stream changed."""

    ids: dict[str, set[int]] = field(default_factory=lambda: {t: set() for t in ROW_TABLES})
    tables: set[str] = field(default_factory=set)  # every table with a change (metadata, agent_identities, ...)
    truncated: set[str] = field(default_factory=set)
    changes: int = 0  # row changes (inserts, updates, deletes)
    transactions: int = 0
    end_lsn: int | None = None  # where the last whole transaction ends
    commit_time_us: int | None = None  # the last transaction's commit time, microseconds since 1970
    more_waiting: bool = False  # the read stopped at its message limit, not at the end of the WAL
    confirm_lsn: int | None = None  # the slot may advance to here once these changes are applied

    @property
    def empty(self) -> bool:
        return self.transactions == 0


class PgoutputDecoder:
    """Feed messages in stream order; `changes` accumulates. Relations are remembered across feeds."""

    def __init__(self) -> None:
        self.relations: dict[int, Relation] = {}
        self.changes = ChangeSet()

    def feed(self, message: bytes) -> None:
        if not message:
            raise PgoutputError("empty pgoutput message")
        kind, reader = message[:1], _Reader(message, 1)
        if kind == b"B":
            reader.int64(), reader.int64(), reader.int32()
        elif kind == b"C":
            reader.int8()
            reader.int64()  # the commit record's LSN
            end_lsn, commit_time = reader.int64(), reader.int64()
            self.changes.transactions += 1
            self.changes.end_lsn = end_lsn
            self.changes.commit_time_us = commit_time + PG_EPOCH_MICROS
        elif kind == b"R":
            relid, namespace, name = reader.int32(), reader.string(), reader.string()
            reader.int8()  # replica identity
            columns = []
            for _ in range(reader.int16()):
                reader.int8()
                columns.append(reader.string())
                reader.int32(), reader.int32()
            self.relations[relid] = Relation(namespace, name, tuple(columns))
        elif kind in (b"I", b"U", b"D"):
            relation = self._relation(reader.int32())
            tags = b""
            while reader.more():
                tag = reader.byte()
                if tag not in (b"N", b"K", b"O"):
                    raise PgoutputError(f"unexpected tuple tag {tag!r} in a {kind.decode()} message")
                self._note_id(relation, reader.tuple())
                tags += tag
            if tags not in {b"I": (b"N",), b"U": (b"N", b"KN", b"ON"), b"D": (b"K", b"O")}[kind]:
                raise PgoutputError(f"a {kind.decode()} message with tuples {tags!r}")
            self.changes.changes += 1
            self.changes.tables.add(relation.name)
        elif kind == b"T":
            count = reader.int32()
            reader.int8()
            for _ in range(count):
                name = self._relation(reader.int32()).name
                self.changes.tables.add(name)
                self.changes.truncated.add(name)
        elif kind not in (b"O", b"Y", b"M"):
            raise PgoutputError(f"unknown pgoutput message {kind!r}")

    def _relation(self, relid: int) -> Relation:
        try:
            return self.relations[relid]
        except KeyError:
            raise PgoutputError(f"a change of relation {relid} came before its relation message") from None

    def _note_id(self, relation: Relation, values: list[bytes | None]) -> None:
        if len(values) != len(relation.columns):
            raise PgoutputError(
                f"a tuple of {len(values)} values for {relation.name} of {len(relation.columns)} columns"
            )
        if relation.name not in self.changes.ids or "id" not in relation.columns:
            return
        value = values[relation.columns.index("id")]
        if value is None:  # a key tuple carries the key, and `id` is the key
            return
        try:
            self.changes.ids[relation.name].add(int(value))
        except ValueError:
            raise PgoutputError(f"{relation.name}.id {value[:40]!r} is not an integer") from None


class _Reader:
    def __init__(self, data: bytes, at: int) -> None:
        self.data = data
        self.at = at

    def more(self) -> bool:
        return self.at < len(self.data)

    def _take(self, fmt: str) -> int:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.data):
            raise PgoutputError("a pgoutput message ended early")
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += size
        return int(value)

    def int8(self) -> int:
        return self._take(">b")

    def int16(self) -> int:
        return self._take(">h")

    def int32(self) -> int:
        return self._take(">i")

    def int64(self) -> int:
        return self._take(">q")

    def byte(self) -> bytes:
        if self.at >= len(self.data):
            raise PgoutputError("a pgoutput message ended early")
        self.at += 1
        return self.data[self.at - 1 : self.at]

    def string(self) -> str:
        end = self.data.find(b"\0", self.at)
        if end < 0:
            raise PgoutputError("a pgoutput string has no terminator")
        text = self.data[self.at : end].decode("utf-8", "replace")
        self.at = end + 1
        return text

    def tuple(self) -> list[bytes | None]:
        """Column values as text bytes; None for NULL, unchanged TOAST ('u') or a binary value."""
        values: list[bytes | None] = []
        for _ in range(self.int16()):
            kind = self.byte()
            if kind in (b"n", b"u"):
                values.append(None)
            elif kind in (b"t", b"b"):
                size = self.int32()
                if size < 0 or self.at + size > len(self.data):
                    raise PgoutputError("a pgoutput value runs past its message")
                values.append(self.data[self.at : self.at + size] if kind == b"t" else None)
                self.at += size
            else:
                raise PgoutputError(f"unknown column kind {kind!r}")
        return values
