"""clawfs.source._pgoutput: the decoder of PostgreSQL's `pgoutput` logical decoding messages (protocol 1).

Messages are built here by hand from the format in PostgreSQL's documentation ("Logical Replication
Message Formats"), independently of the decoder; one test decodes what a real server sends. What
the decoder must give: which ids of `documents` and `vectors` changed, which tables changed or were
truncated, the number of row changes and whole transactions, and where the last transaction ends
(and when it committed). Bytes it cannot decode raise PgoutputError, never another exception.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from clawfs.source import ChangeSet, PgoutputDecoder, PgoutputError
from cli_runner import fill_store
from pgstore import PgStore

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01, computed independently below

# -- building messages (PostgreSQL docs, protocol-logicalrep-message-formats) ----------------------------

UNCHANGED = object()  # a value sent as unchanged TOAST ('u'); None is sent as NULL ('n')


def _string(text: str) -> bytes:
    return text.encode() + b"\0"


def begin(final_lsn: int = 0x1000, commit_ts: int = 0, xid: int = 700) -> bytes:
    return b"B" + struct.pack(">qqi", final_lsn, commit_ts, xid)


def commit(end_lsn: int, commit_ts: int = 0, commit_lsn: int | None = None, flags: int = 0) -> bytes:
    return b"C" + struct.pack(">bqqq", flags, end_lsn - 8 if commit_lsn is None else commit_lsn, end_lsn, commit_ts)


def relation(relid: int, name: str, columns: Sequence[str], namespace: str = "public", identity: bytes = b"d") -> bytes:
    out = b"R" + struct.pack(">i", relid) + _string(namespace) + _string(name) + identity
    out += struct.pack(">h", len(columns))
    for n, column in enumerate(columns):
        key = 1 if column == "id" else 0
        out += struct.pack(">b", key) + _string(column) + struct.pack(">ii", 20 if n == 0 else 25, -1)
    return out


def tuple_data(values: Sequence[object]) -> bytes:
    out = struct.pack(">h", len(values))
    for value in values:
        if value is None:
            out += b"n"
        elif value is UNCHANGED:
            out += b"u"
        elif isinstance(value, tuple):  # ("b", raw bytes): a binary-format value
            out += b"b" + struct.pack(">i", len(value[1])) + value[1]
        else:
            data = value if isinstance(value, bytes) else str(value).encode()
            out += b"t" + struct.pack(">i", len(data)) + data
    return out


def insert(relid: int, values: Sequence[object]) -> bytes:
    return b"I" + struct.pack(">i", relid) + b"N" + tuple_data(values)


def update(relid: int, new: Sequence[object], old: Sequence[object] | None = None, old_kind: bytes = b"K") -> bytes:
    out = b"U" + struct.pack(">i", relid)
    if old is not None:
        out += old_kind + tuple_data(old)
    return out + b"N" + tuple_data(new)


def delete(relid: int, old: Sequence[object], old_kind: bytes = b"K") -> bytes:
    return b"D" + struct.pack(">i", relid) + old_kind + tuple_data(old)


def truncate(relids: Sequence[int], options: int = 0) -> bytes:
    return b"T" + struct.pack(">ib", len(relids), options) + b"".join(struct.pack(">i", r) for r in relids)


def origin(name: str = "elsewhere", lsn: int = 0x99) -> bytes:
    return b"O" + struct.pack(">q", lsn) + _string(name)


def type_message(oid: int = 16386, namespace: str = "public", name: str = "vector") -> bytes:
    return b"Y" + struct.pack(">i", oid) + _string(namespace) + _string(name)


def logical_message(prefix: str = "app", content: bytes = b"hello") -> bytes:
    return b"M" + struct.pack(">bq", 1, 0x77) + _string(prefix) + struct.pack(">i", len(content)) + content


DOCS, VECS, META, IDENT, OTHER = 16390, 16400, 16410, 16420, 16430
DOC_COLUMNS = ("id", "workspace_id", "content", "metadata", "created_at", "updated_at")
VEC_COLUMNS = ("id", "document_id", "embedding", "created_at")
RELATIONS = (
    relation(DOCS, "documents", DOC_COLUMNS),
    relation(VECS, "vectors", VEC_COLUMNS),
    relation(META, "metadata", ("key", "value")),
    relation(IDENT, "agent_identities", ("agent_id", "version", "state")),
    relation(OTHER, "notes", ("id", "text")),  # a published table clawfs does not read ids of
)


def doc(i: object, content: object = "text", workspace: str = "default") -> list[object]:
    return [i, workspace, content, None, "2024-01-01 00:00:00+00", "2024-01-01 00:00:00+00"]


def vec(i: int, document: int = 1) -> list[object]:
    return [i, document, "[1,2,3]", "2024-01-01 00:00:00+00"]


def key_only(i: int, width: int) -> list[object]:
    """A key tuple (REPLICA IDENTITY DEFAULT): the id, every other column NULL."""
    return [i] + [None] * (width - 1)


def decode(*messages: bytes, decoder: PgoutputDecoder | None = None) -> ChangeSet:
    decoder = decoder or PgoutputDecoder()
    for message in messages:
        decoder.feed(message)
    return decoder.changes


def micros(when: datetime) -> int:
    """PostgreSQL's commit timestamp: microseconds since 2000-01-01."""
    delta = when - PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def unix_micros(when: datetime) -> int:
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# -- what a stream changed -------------------------------------------------------------------------------


def test_a_transaction_of_every_kind_of_row_change() -> None:
    committed = datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    changes = decode(
        begin(commit_ts=micros(committed)),
        *RELATIONS[:2],
        insert(DOCS, doc(11)),
        insert(VECS, vec(21, 11)),
        update(DOCS, doc(12, "new text")),  # no old tuple: the key did not change
        update(DOCS, doc(130), old=key_only(13, len(DOC_COLUMNS))),  # the key changed: old key 13
        update(VECS, vec(22), old=vec(23), old_kind=b"O"),  # REPLICA IDENTITY FULL: the whole old row
        delete(DOCS, key_only(14, len(DOC_COLUMNS))),
        delete(VECS, vec(24), old_kind=b"O"),
        commit(end_lsn=0x2A000, commit_ts=micros(committed)),
    )

    assert changes.ids == {"documents": {11, 12, 13, 14, 130}, "vectors": {21, 22, 23, 24}}
    assert changes.tables == {"documents", "vectors"}
    assert changes.truncated == set()
    assert changes.changes == 7
    assert changes.transactions == 1
    assert changes.end_lsn == 0x2A000
    assert changes.commit_time_us == unix_micros(committed)
    assert not changes.empty


def test_changes_accumulate_over_transactions_and_feeds_the_last_commit_is_the_end() -> None:
    fresh = PgoutputDecoder().changes
    assert fresh.empty and fresh.end_lsn is None and fresh.commit_time_us is None
    decoder = PgoutputDecoder()
    first, second = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    decode(begin(), RELATIONS[0], insert(DOCS, doc(1)), commit(0x100, micros(first)), decoder=decoder)
    assert (decoder.changes.transactions, decoder.changes.end_lsn) == (1, 0x100)
    assert decoder.changes.commit_time_us == unix_micros(first)
    # the relation message came in an earlier feed: it is remembered
    decode(begin(), insert(DOCS, doc(2)), delete(DOCS, key_only(1, 6)), commit(0x200, micros(second)), decoder=decoder)
    changes = decoder.changes
    assert changes.ids == {"documents": {1, 2}, "vectors": set()}
    assert (changes.changes, changes.transactions, changes.end_lsn) == (3, 2, 0x200)
    assert changes.commit_time_us == unix_micros(second)


def test_the_epoch_of_commit_times() -> None:
    assert unix_micros(PG_EPOCH) == PG_EPOCH_US
    assert decode(begin(), commit(0x10, 0)).commit_time_us == PG_EPOCH_US
    assert decode(begin(), commit(0x10, -1)).commit_time_us == PG_EPOCH_US - 1  # before 2000 is negative


def test_a_transaction_without_row_changes_counts_as_a_transaction() -> None:
    changes = decode(begin(), commit(0x500))
    assert (changes.transactions, changes.changes, changes.end_lsn) == (1, 0, 0x500)
    assert changes.tables == set() and changes.ids == {"documents": set(), "vectors": set()}
    assert not changes.empty


def test_other_tables_are_noted_as_changed_without_ids() -> None:
    changes = decode(
        begin(),
        *RELATIONS,
        insert(META, ["team", '"search"']),
        update(META, ["team", '"other"']),
        delete(IDENT, ["agent-1", None, None]),
        insert(OTHER, [5, "a table with an id column, but not one clawfs copies"]),
        commit(0x300),
    )
    assert changes.tables == {"metadata", "agent_identities", "notes"}
    assert changes.ids == {"documents": set(), "vectors": set()}
    assert changes.changes == 4


def test_unchanged_toast_values_are_accepted_and_the_id_still_noted() -> None:
    big = "x" * 200_000
    changes = decode(
        begin(),
        RELATIONS[0],
        insert(DOCS, doc(7, big)),
        update(DOCS, [7, "default", UNCHANGED, '{"a": 1}', None, None]),  # only metadata changed
        update(DOCS, [8, "default", UNCHANGED, UNCHANGED, UNCHANGED, UNCHANGED]),
        commit(0x400),
    )
    assert changes.ids["documents"] == {7, 8}
    assert changes.changes == 3


def test_null_ids_and_binary_values_are_no_ids() -> None:
    changes = decode(
        begin(),
        *RELATIONS[:2],
        delete(DOCS, [None] * 6),  # cannot happen for a key, but a NULL is no id
        insert(VECS, [("b", struct.pack(">q", 5)), 1, None, None]),  # binary mode: the value is not text
        insert(VECS, [6, 1, ("b", b"\x00\x03\x00\x00"), None]),
        commit(0x10),
    )
    assert changes.ids == {"documents": set(), "vectors": {6}}
    assert changes.changes == 3


def test_a_relation_without_an_id_column_and_a_relation_redefined() -> None:
    decoder = PgoutputDecoder()
    decode(begin(), relation(DOCS, "documents", ("doc_id", "content")), insert(DOCS, [3, "x"]), decoder=decoder)
    assert decoder.changes.ids["documents"] == set()
    assert decoder.changes.tables == {"documents"}
    # ALTER TABLE: a new relation message for the same relid replaces the old one
    decode(relation(DOCS, "documents", ("content", "id")), insert(DOCS, ["y", 4]), commit(0x20), decoder=decoder)
    assert decoder.changes.ids["documents"] == {4}
    assert decoder.relations[DOCS].columns == ("content", "id")
    assert decoder.relations[DOCS].namespace == "public"


def test_truncate_names_its_tables() -> None:
    changes = decode(begin(), *RELATIONS, truncate([META, DOCS, VECS], options=1), commit(0x30))
    assert changes.truncated == {"metadata", "documents", "vectors"}
    assert changes.tables == {"metadata", "documents", "vectors"}
    assert changes.changes == 0
    assert changes.ids == {"documents": set(), "vectors": set()}


def test_origin_type_and_logical_messages_are_ignored() -> None:
    changes = decode(
        begin(),
        origin(),
        type_message(),
        RELATIONS[1],
        logical_message(),
        insert(VECS, vec(9)),
        commit(0x40),
    )
    assert changes.ids == {"documents": set(), "vectors": {9}}
    assert (changes.changes, changes.transactions) == (1, 1)


# -- what it cannot decode ----------------------------------------------------------------------------------


def test_a_change_before_its_relation_message_is_an_error() -> None:
    for message in (
        insert(DOCS, doc(1)),
        update(DOCS, doc(1)),
        delete(VECS, key_only(1, 4)),
        truncate([META]),
    ):
        decoder = PgoutputDecoder()
        decoder.feed(begin())
        decoder.feed(RELATIONS[1] if message[:1] != b"D" else RELATIONS[0])  # another relation is known
        with pytest.raises(PgoutputError, match="relation"):
            decoder.feed(message)


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"Z\x00\x00",  # an unknown message type
        b"S" + struct.pack(">ii", 1, 0),  # stream start: protocol 2, which clawfs does not ask for
        b"I" + struct.pack(">i", DOCS) + b"X" + tuple_data(doc(1)),  # an unknown tuple tag
        b"I" + struct.pack(">i", DOCS) + b"N" + struct.pack(">h", 1) + b"z",  # an unknown column kind
        b"I" + struct.pack(">i", DOCS) + b"N" + struct.pack(">hci", 1, b"t", -5),  # a negative length
        b"I" + struct.pack(">i", DOCS) + b"N" + struct.pack(">hci", 1, b"t", 1000) + b"1",  # a value past the end
        b"R" + struct.pack(">i", 5) + b"public",  # a string without its terminator
    ],
    ids=["empty", "unknown", "protocol-2", "tuple-tag", "column-kind", "negative-length", "past-end", "no-nul"],
)
def test_malformed_messages_raise_pgoutput_error(message: bytes) -> None:
    decoder = PgoutputDecoder()
    decoder.feed(RELATIONS[0])
    with pytest.raises(PgoutputError):
        decoder.feed(message)


def test_a_tuple_with_fewer_values_than_its_relation_has_columns_is_a_pgoutput_error() -> None:
    decoder = PgoutputDecoder()
    decoder.feed(RELATIONS[0])
    with pytest.raises(PgoutputError):
        decoder.feed(insert(DOCS, []))


def test_an_id_that_is_not_an_integer_is_a_pgoutput_error() -> None:
    decoder = PgoutputDecoder()
    decoder.feed(RELATIONS[0])
    with pytest.raises(PgoutputError):
        decoder.feed(insert(DOCS, doc("not-a-number")))


VALID = (
    begin(0x1234, 99, 7),
    commit(0x2A000, 12345),
    *RELATIONS,
    insert(DOCS, doc(11)),
    update(DOCS, doc(12)),
    update(DOCS, doc(130), old=key_only(13, 6)),
    update(VECS, vec(22), old=vec(23), old_kind=b"O"),
    update(DOCS, [7, "default", UNCHANGED, '{"a": 1}', None, None]),
    delete(DOCS, key_only(14, 6)),
    delete(VECS, vec(24), old_kind=b"O"),
    truncate([META, DOCS]),
    origin(),
    type_message(),
)

# messages of a fixed layout: every proper prefix is incomplete (O and Y are skipped unread; I, U and D
# end with tuples, and the decoder reads tuples while bytes remain)
FIXED_LAYOUT = {b"B", b"C", b"R", b"T"}


def loaded_decoder() -> PgoutputDecoder:
    decoder = PgoutputDecoder()
    for message in RELATIONS:
        decoder.feed(message)
    return decoder


def truncations() -> Iterator[tuple[bytes, int]]:
    for message in VALID:
        for size in range(len(message)):
            yield message, size


def test_every_truncation_of_a_valid_message_raises_pgoutput_error_or_decodes() -> None:
    for message, size in truncations():
        decoder = loaded_decoder()
        try:
            decoder.feed(message[:size])
        except PgoutputError:
            continue
        except Exception as e:  # pragma: no cover - the failure message
            raise AssertionError(f"{type(e).__name__} for {message[:size]!r}") from e
        assert message[:1] not in FIXED_LAYOUT, f"a prefix of {size} bytes of {message!r} was decoded"


def test_every_valid_message_decodes() -> None:
    decoder = loaded_decoder()
    for message in VALID:
        decoder.feed(message)
    assert decoder.changes.transactions == 1


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
@example(b"I" + struct.pack(">i", DOCS) + b"N" + struct.pack(">h", 0))
def test_random_bytes_raise_only_pgoutput_error(data: bytes) -> None:
    decoder = loaded_decoder()
    with contextlib.suppress(PgoutputError):
        decoder.feed(data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(min_value=0, max_value=10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_altered_valid_messages_raise_only_pgoutput_error(message: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(message)
    for at, value in edits:
        data[at % len(data)] = value
    decoder = loaded_decoder()
    with contextlib.suppress(PgoutputError):
        decoder.feed(bytes(data))


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([DOCS, VECS]),
    st.sampled_from([b"I", b"U", b"D"]),
    st.sampled_from([b"N", b"K", b"O"]),
    st.lists(
        st.one_of(
            st.none(),
            st.just(UNCHANGED),
            st.binary(max_size=8),
            st.integers(min_value=-(2**63), max_value=2**63 - 1),
        ),
        max_size=8,
    ),
)
def test_changes_with_any_tuple_raise_only_pgoutput_error(
    relid: int, kind: bytes, tag: bytes, values: list[object]
) -> None:
    """Tuples of any width and any values: decoded (an integer id noted) or refused with PgoutputError."""
    message = kind + struct.pack(">i", relid) + tag + tuple_data(values)
    decoder = loaded_decoder()
    try:
        decoder.feed(message)
    except PgoutputError:
        return
    table = "documents" if relid == DOCS else "vectors"
    if values and isinstance(values[0], int):
        assert decoder.changes.ids[table] == {values[0]}


# -- what a real server sends ----------------------------------------------------------------------------------


def peek(conn: psycopg.Connection[tuple[Any, ...]], slot: str, publication: str) -> list[bytes]:
    rows = conn.execute(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
        " 'proto_version', '1', 'publication_names', %s)",
        [slot, publication],
    ).fetchall()
    return [bytes(r[0]) for r in rows]


def test_messages_of_a_real_server_decode(pg: PgStore) -> None:
    fill_store(pg, workspaces=("default", "ops"), documents=3)  # documents 1-6, vectors 1-6
    big = " ".join(f"{n:x}{n * 7919 % 65521:x}" for n in range(30_000))  # > 100 kB, poorly compressible
    (toasted,) = pg.add_documents([{"workspace_id": "default", "content": big, "metadata": None}])
    pg.sql("CREATE TABLE unpublished (x int)")
    pg.sql("CREATE PUBLICATION test_pub FOR TABLE documents, vectors, metadata, agent_identities")
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot('test_slot', 'pgoutput')")
        try:
            started = datetime.now(UTC)
            with conn.transaction():
                conn.execute("INSERT INTO documents (id, workspace_id, content) VALUES (100, 'default', 'new')")
                conn.execute("INSERT INTO vectors (id, document_id, embedding) VALUES (200, 100, '[1,2,3]')")
                conn.execute("UPDATE documents SET content = 'changed' WHERE id = 2")
                conn.execute("UPDATE documents SET content = 'changed again' WHERE id = 2")
            conn.execute("UPDATE documents SET metadata = '{\"big\": true}' WHERE id = %s", [toasted])
            conn.execute("UPDATE vectors SET id = 300 WHERE id = 3")  # the key changes: old key 3
            conn.execute("DELETE FROM documents WHERE id = 4")  # and its vector 4, by cascade
            with conn.transaction():
                conn.execute("UPDATE documents SET content = 'rolled back' WHERE id = 5")
                conn.execute("DELETE FROM vectors WHERE id = 5")
                raise psycopg.Rollback()
            conn.execute("INSERT INTO unpublished VALUES (1)")  # not in the publication: not sent
            conn.execute("""UPDATE metadata SET value = '"model-9"'""")
            conn.execute("UPDATE agent_identities SET version = 2")
            messages = peek(conn, "test_slot", "test_pub")
            row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8").fetchone()
            assert row is not None
            current = row[0]

            changes = decode(*messages)

            assert changes.ids == {"documents": {100, 2, toasted, 4}, "vectors": {200, 3, 300, 4}}
            assert changes.tables == {"documents", "vectors", "metadata", "agent_identities"}
            assert changes.truncated == set()
            assert changes.changes == 10  # 4 + 1 + 1 + 2 (the cascade) + 1 + 1
            assert changes.transactions == 6
            assert changes.end_lsn is not None and 0 < changes.end_lsn <= current
            assert changes.commit_time_us is not None
            assert abs(changes.commit_time_us - unix_micros(datetime.now(UTC))) < 60_000_000
            assert changes.commit_time_us >= unix_micros(started) - 1_000_000
            assert [m[:1] for m in messages].count(b"B") == 6
            # the large value was left unchanged by its update: sent as 'u', the message is small
            toast_update = [m for m in messages if m[:1] == b"U" and len(m) < 2000 and b"big" in m]
            assert len(toast_update) == 1 and big[:20].encode() not in toast_update[0]

            # advanced to the end: nothing more, then one truncate
            conn.execute("SELECT pg_replication_slot_advance('test_slot', %s::pg_lsn)", [lsn_text(changes.end_lsn)])
            assert peek(conn, "test_slot", "test_pub") == []
            conn.execute("TRUNCATE metadata")
            truncated = decode(*peek(conn, "test_slot", "test_pub"))
            assert (truncated.truncated, truncated.tables, truncated.changes) == ({"metadata"}, {"metadata"}, 0)
            assert truncated.end_lsn is not None and truncated.end_lsn > changes.end_lsn
        finally:
            conn.execute("SELECT pg_drop_replication_slot('test_slot')")


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
