"""The pure value formats of DESIGN §2 and §2.2, the FTS5 query builder (§5) and the identity serializer (§2.4).

Hypothesis round-trips for everything that has no I/O, plus the examples the design names.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from psycopg.conninfo import conninfo_to_dict

from clawfs._values import (
    INT64_MAX,
    INT64_MIN,
    blob_to_embedding,
    datetime_text,
    decode_id,
    embedding_to_blob,
    encode_id,
    format_timestamp,
    format_timestamps,
    redact_url,
    scrub,
    url_password,
)
from clawfs.workspace import fts_query, identity_document

# ---------------------------------------------------------------------------------------------
# timestamps: PostgreSQL's binary timestamptz (microseconds since 2000-01-01 UTC) -> DESIGN §2.2 text

PG_EPOCH = datetime(2000, 1, 1)
ONE_US = timedelta(microseconds=1)
YEAR_1 = (datetime(1, 1, 1) - PG_EPOCH) // ONE_US  # 0001-01-01T00:00:00.000000
YEAR_10000 = (datetime(9999, 12, 31, 23, 59, 59, 999999) - PG_EPOCH) // ONE_US + 1  # first instant after 9999
TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")

any_int64 = st.integers(INT64_MIN, INT64_MAX)
years_1_to_9999 = st.integers(YEAR_1, YEAR_10000 - 1)
edges = st.sampled_from([INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1, YEAR_1, YEAR_1 - 1, YEAR_10000 - 1, 0, -1])


def python_datetime_text(us: int) -> str:
    return (PG_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


@pytest.mark.parametrize(
    ("microseconds", "text"),
    [
        (0, "2000-01-01T00:00:00.000000Z"),
        (1, "2000-01-01T00:00:00.000001Z"),
        (-1, "1999-12-31T23:59:59.999999Z"),
        (-946_684_800_000_000, "1970-01-01T00:00:00.000000Z"),
        (-946_684_800_000_001, "1969-12-31T23:59:59.999999Z"),
        (762_073_496_123_456, "2024-02-24T07:04:56.123456Z"),
        (YEAR_1, "0001-01-01T00:00:00.000000Z"),
        (YEAR_10000 - 1, "9999-12-31T23:59:59.999999Z"),
        (INT64_MAX, "infinity"),
        (INT64_MIN, "-infinity"),
    ],
)
def test_timestamp_examples(microseconds: int, text: str) -> None:
    assert format_timestamp(microseconds) == text
    assert format_timestamps(np.array([microseconds], dtype=np.int64)) == [text]


@given(any_int64 | edges)
def test_one_timestamp_formats_the_same_alone_and_in_an_array(us: int) -> None:
    assert format_timestamps(np.array([us], dtype=np.int64)) == [format_timestamp(us)]


@given(st.lists(any_int64 | years_1_to_9999 | edges, max_size=30))
def test_an_array_of_timestamps_formats_like_each_one_alone(values: list[int]) -> None:
    assert format_timestamps(np.array(values, dtype=np.int64)) == [format_timestamp(v) for v in values]


@given(st.lists(years_1_to_9999, min_size=1, max_size=30))
def test_an_array_of_common_timestamps_formats_like_each_one_alone(values: list[int]) -> None:
    assert format_timestamps(np.array(values, dtype=np.int64)) == [format_timestamp(v) for v in values]


@given(years_1_to_9999)
@example(YEAR_1)
@example(YEAR_10000 - 1)
def test_timestamps_of_years_1_to_9999_have_six_fractional_digits_and_a_z(us: int) -> None:
    assert TIMESTAMP_TEXT.fullmatch(format_timestamp(us))


@given(years_1_to_9999)
@example(YEAR_1)
@example(YEAR_10000 - 1)
@example(-946_684_800_000_001)
def test_timestamps_of_years_1_to_9999_match_python_datetime(us: int) -> None:
    assert format_timestamp(us) == python_datetime_text(us)


@given(years_1_to_9999, years_1_to_9999)
def test_timestamps_sort_as_text_like_the_instants_they_name(a: int, b: int) -> None:
    ta, tb = format_timestamp(a), format_timestamp(b)
    assert (a < b) == (ta < tb)
    assert (a == b) == (ta == tb)


@given(st.lists(years_1_to_9999, max_size=30))
def test_a_list_of_timestamps_sorted_as_text_is_in_time_order(values: list[int]) -> None:
    texts = format_timestamps(np.array(values, dtype=np.int64))
    assert sorted(texts) == format_timestamps(np.array(sorted(values), dtype=np.int64))


# ---------------------------------------------------------------------------------------------
# embeddings: little-endian float32 blobs

float32_vectors = hnp.arrays(
    dtype=np.float32,
    shape=st.integers(1, 64),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True),
)


@given(float32_vectors)
def test_an_embedding_round_trips_through_its_blob_bit_for_bit(vector: np.ndarray) -> None:
    blob = embedding_to_blob(vector)
    assert len(blob) == vector.size * 4
    assert blob == vector.astype("<f4").tobytes()
    back = blob_to_embedding(blob)
    assert back.dtype == np.float32
    assert back.tobytes() == vector.astype(np.float32).tobytes()


@given(float32_vectors)
def test_an_embedding_given_as_python_floats_makes_the_same_blob(vector: np.ndarray) -> None:
    assert embedding_to_blob([float(x) for x in vector]) == vector.astype("<f4").tobytes()


def test_an_embedding_blob_is_little_endian_float32() -> None:
    assert embedding_to_blob([1.0, -2.0, 0.0]) == b"\x00\x00\x80\x3f" + b"\x00\x00\x00\xc0" + b"\x00\x00\x00\x00"
    assert blob_to_embedding(b"\x00\x00\x80\x3f\x00\x00\x00\xc0").tolist() == [1.0, -2.0]


def test_a_blob_that_is_not_a_whole_number_of_floats_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        blob_to_embedding(b"\x00\x00\x80")


# ---------------------------------------------------------------------------------------------
# ids -> directory names

SAFE_NAME = re.compile(r"[A-Za-z0-9_%-]+")
# 20 characters of at most 4 UTF-8 bytes each encode to at most 240 characters: always a valid name.
ids = st.text(min_size=1, max_size=20)


@pytest.mark.parametrize(
    ("ident", "name"),
    [
        ("default", "default"),
        ("team/a.b", "team%2Fa%2Eb"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("../../x", "%2E%2E%2F%2E%2E%2Fx"),
        ("with space", "with%20space"),
        ("50%", "50%25"),
        ("UPPER_lower-09", "UPPER_lower-09"),
        ("café", "caf%C3%A9"),
        ("cafe\u0301", "cafe%CC%81"),
        ("🦀", "%F0%9F%A6%80"),
        ("a\\b", "a%5Cb"),
        ("\x00", "%00"),
    ],
)
def test_id_examples_encode_to_these_directory_names(ident: str, name: str) -> None:
    assert encode_id(ident) == name
    assert decode_id(name) == ident


@given(ids)
@example("..")
@example("../../x")
@example("%2E")
def test_any_id_round_trips_through_its_directory_name(ident: str) -> None:
    assert decode_id(encode_id(ident)) == ident


@given(ids)
@example(".")
@example("..")
@example("../../x")
@example("/etc/passwd")
@example("a\x00b")
def test_a_directory_name_uses_only_safe_characters_and_cannot_leave_its_parent(ident: str) -> None:
    name = encode_id(ident)
    assert SAFE_NAME.fullmatch(name)
    assert "/" not in name
    assert "\\" not in name
    assert name not in (".", "..")


@given(ids, ids)
def test_different_ids_get_different_directory_names(a: str, b: str) -> None:
    assert (encode_id(a) == encode_id(b)) == (a == b)


def test_an_empty_id_cannot_name_a_directory() -> None:
    with pytest.raises(ValueError):
        encode_id("")


def test_an_id_too_long_for_a_directory_name_is_refused() -> None:
    assert encode_id("x" * 255) == "x" * 255
    with pytest.raises(ValueError, match="too long"):
        encode_id("x" * 256)
    with pytest.raises(ValueError, match="too long"):
        encode_id("/" * 86)  # 258 characters once encoded


# ---------------------------------------------------------------------------------------------
# passwords never shown: redact_url, url_password, scrub

passwords = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), min_size=1, max_size=24)


def dsn_quoted(password: str) -> str:
    """A libpq key=value value in single quotes (backslash escapes `\\` and `'`)."""
    return "'" + password.replace("\\", "\\\\").replace("'", "\\'") + "'"


def dsn_unquoted(password: str) -> str:
    """A libpq key=value value without quotes: whitespace, quotes and backslashes escaped with a backslash."""
    return "".join("\\" + c if c in " \t\n\r\f\v\\'" else c for c in password)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("postgresql://clawfs:s3cret@db.example.com:5432/memory", "postgresql://clawfs:***@db.example.com:5432/memory"),
        ("postgres://u:p%40ss%2Fw0rd@h/db?sslmode=require", "postgres://u:***@h/db?sslmode=require"),
        ("postgresql://u:@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://h/db?password=hunter2&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
        ("postgresql://h/db?sslmode=require&password=hunter2", "postgresql://h/db?sslmode=require&password=***"),
        ("postgresql://h/db?PASSWORD=hunter2", "postgresql://h/db?PASSWORD=***"),
        ("postgresql://u:one@h/db?password=two", "postgresql://u:***@h/db?password=***"),
        ("postgresql:///db?host=/tmp/sock", "postgresql:///db?host=/tmp/sock"),
        ("host=h user=u password=s3cret dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='with space' dbname=d", "host=h password=*** dbname=d"),
        ("host=h password = spaced dbname=d", "host=h password = *** dbname=d"),
        ("host=h password='it\\'s' dbname=d", "host=h password=*** dbname=d"),
        ("host=h password=a\\ b dbname=d", "host=h password=*** dbname=d"),
        ("host=h dbname=d", "host=h dbname=d"),
    ],
)
def test_redact_url_examples(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


@given(passwords)
@example("s3cret")
@example("p@ss/w0rd:?#[]")
@example("%41")
@example("日本語 🦀")
def test_a_url_password_is_never_left_in_the_redacted_url(password: str) -> None:
    url = f"postgresql://clawfs:{quote(password, safe='')}@db.example.com:5432/memory?sslmode=require"
    assert conninfo_to_dict(url)["password"] == password  # the URL says what we mean it to say
    assert redact_url(url) == "postgresql://clawfs:***@db.example.com:5432/memory?sslmode=require"
    assert url_password(url) == password


@given(passwords)
@example("hunter2")
@example("a&b=c")
def test_a_password_in_the_query_string_is_never_left_in_the_redacted_url(password: str) -> None:
    url = f"postgresql://clawfs@db.example.com/memory?password={quote(password, safe='')}&sslmode=require"
    assert conninfo_to_dict(url)["password"] == password
    assert redact_url(url) == "postgresql://clawfs@db.example.com/memory?password=***&sslmode=require"
    assert url_password(url) == password


@given(passwords, st.sampled_from([dsn_quoted, dsn_unquoted]))
@example("s3cret", dsn_unquoted)
@example("with space", dsn_quoted)
@example("with space", dsn_unquoted)
@example("it's", dsn_quoted)
@example("back\\slash", dsn_unquoted)
@example("a\x1cb", dsn_unquoted)
def test_a_key_value_password_is_never_left_in_the_redacted_dsn(password: str, write: Callable[[str], str]) -> None:
    dsn = f"host=db.example.com port=5432 user=clawfs password={write(password)} dbname=memory"
    options = conninfo_to_dict(dsn)
    assert options["password"] == password  # libpq reads the password we wrote
    redacted = redact_url(dsn)
    assert redacted == "host=db.example.com port=5432 user=clawfs password=*** dbname=memory"
    assert conninfo_to_dict(redacted) == options | {"password": "***"}


@given(passwords, st.sampled_from([dsn_quoted, dsn_unquoted]))
@example("it's", dsn_quoted)
@example("with space", dsn_unquoted)
def test_url_password_finds_the_password_libpq_uses_in_a_dsn(password: str, write: Callable[[str], str]) -> None:
    dsn = f"host=db.example.com user=clawfs password={write(password)} dbname=memory"
    assert url_password(dsn) == conninfo_to_dict(dsn)["password"] == password


def test_url_password_is_none_without_a_password() -> None:
    assert url_password("postgresql://u@h/db") is None
    assert url_password("host=h user=u") is None
    assert url_password("") is None


secrets = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="*"), min_size=1, max_size=12)


@given(secrets, st.lists(st.text(max_size=20), min_size=1, max_size=5))
def test_scrub_removes_every_secret_plain_and_url_quoted(secret: str, pieces: list[str]) -> None:
    text = secret.join(pieces) + quote(secret, safe="").join(pieces)
    out = scrub(text, [secret])
    assert secret not in out
    assert quote(secret, safe="") not in out


def test_scrub_examples() -> None:
    message = "could not connect to postgresql://u:p%40ss@h/db as u with password p@ss"
    assert scrub(message, ["p@ss"]) == "could not connect to postgresql://u:***@h/db as u with password ***"
    assert scrub("nothing to hide", [None, ""]) == "nothing to hide"
    assert scrub("two secrets: a1 and b2", ["a1", "b2"]) == "two secrets: *** and ***"


# ---------------------------------------------------------------------------------------------
# fts_query: user text never reaches FTS5 as syntax (DESIGN §5)

WORKSPACE_SCHEMA = """
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
"""
FTS_DOCUMENTS = [
    "Reset your password from the account settings page.",
    'Operators like AND, OR, NOT, NEAR(a b), "quotes", * and ^ are just words here.',
    "Emoji 🦀 and CJK 中文 and RTL שלום مرحبا and full-width ＡＢＣ",
]


@pytest.fixture(scope="module")
def fts() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.executescript(WORKSPACE_SCHEMA)
    db.executemany(
        "INSERT INTO document_store VALUES (?, 'default', ?, NULL, NULL)",
        list(enumerate(FTS_DOCUMENTS, start=1)),
    )
    db.execute("INSERT INTO documents(documents) VALUES ('rebuild')")
    yield db
    db.close()


def search(db: sqlite3.Connection, text: str) -> list[int]:
    query = fts_query(text)
    if query is None:
        return []
    return [r[0] for r in db.execute("SELECT rowid FROM documents WHERE documents MATCH ? ORDER BY rowid", (query,))]


ODD_TEXTS = [
    "",
    " ",
    "\t\n",
    '"',
    '""',
    '"unbalanced',
    "'",
    "NEAR(",
    "NEAR(a b, 2)",
    "NEAR",
    "*",
    "pass*",
    "^",
    "^reset",
    ":",
    "content:reset",
    "metadata : x",
    "(",
    ")",
    "((reset)",
    "reset)",
    "-",
    "-reset",
    "+",
    "{content metadata}: x",
    "\x00",
    "a\x00b",
    "🦀",
    "👩‍👩‍👧‍👦",
    "ＡＢＣ",
    "中文",
    "AND",
    "OR",
    "NOT",
    "reset AND password",
    "reset OR",
    "NOT reset",
    "a AND OR NOT b",
    "\u200b",
    "\u2028",
    "\ufeff",
    "e\u0301",
    "x" * 5000,
    "reset " * 300,
]


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_odd_search_text_is_never_fts5_syntax(fts: sqlite3.Connection, text: str) -> None:
    search(fts, text)


@given(st.text())
def test_any_unicode_search_text_runs_without_an_fts5_error(fts: sqlite3.Connection, text: str) -> None:
    search(fts, text)


@given(st.text())
def test_fts_query_is_none_only_for_text_without_words(text: str) -> None:
    assert (fts_query(text) is None) == (text.replace("\x00", " ").split() == [])


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("reset password", [1]),
        ("RESET", [1]),
        ("resetting passwords", [1]),  # porter stemming
        ("password reset account", [1]),
        ("password missing", []),  # every word must match
        ("NEAR(a", [2]),
        ('"quotes"', [2]),
        ("AND OR NOT", [2]),
        ("^", []),
        ("*", []),
        ("中文", [3]),
        ("שלום", [3]),
        ("مرحبا", [3]),
        ("ＡＢＣ", [3]),
    ],
)
def test_search_text_examples_find_these_documents(fts: sqlite3.Connection, text: str, found: list[int]) -> None:
    assert search(fts, text) == found


# letters of scripts that SQLite's unicode61 tokenizer knows, plus FTS5 operator characters
word_letters = st.sampled_from(list("abcxyzABCXYZ0129éüßøΩλжЯשלוםمرحبا中文日本語한국어"))
operator_characters = st.sampled_from(list("\"*^:()+-{},.'\\"))


@given(
    st.lists(
        st.text(word_letters, min_size=1, max_size=8).flatmap(
            lambda w: st.tuples(st.text(operator_characters, max_size=2), st.text(operator_characters, max_size=2)).map(
                lambda ops: ops[0] + w + ops[1]
            )
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_document_is_found_by_its_own_words_whatever_punctuation_surrounds_them(words: list[str]) -> None:
    text = " ".join(words)
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(WORKSPACE_SCHEMA)
        db.execute("INSERT INTO document_store VALUES (7, 'default', ?, NULL, NULL)", (text,))
        db.execute("INSERT INTO document_store VALUES (8, 'default', 'unrelated words only', NULL, NULL)")
        db.execute("INSERT INTO documents(documents) VALUES ('rebuild')")
        assert search(db, text) == [7]
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------
# identity_document (DESIGN §2.4)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)
state_keys = st.sampled_from(["current_phase", "current_task", "last_checkpoint", "status"]) | st.text(max_size=8)
states = st.dictionaries(state_keys, json_values, max_size=8)
STATE_FIRST = ["current_phase", "current_task", "last_checkpoint", "status"]
TOP_KEYS = [
    "agent_id",
    "version",
    "created_at",
    "updated_at",
    "state",
    "memory",
    "history",
    "performance",
    "checksum",
]


def identity(**overrides: object) -> str:
    fields: dict[str, object] = {
        "agent_id": "kernel-engine",
        "version": 1,
        "created_at": "2024-02-24T00:00:00.000000Z",
        "updated_at": "2024-02-24T12:34:56.000000Z",
        "state": '{"current_phase": "P2", "current_task": "A-01", "status": "in_progress"}',
        "memory": '{"learned_patterns": [], "heuristics": []}',
        "history": '{"completed_tasks": ["A-01"], "failed_tasks": [], "total_executions": 1}',
        "performance": '{"avg_execution_time_ms": 2340}',
        "checksum": "sha256:abc123",
    } | overrides
    return identity_document(**fields).decode("utf-8")  # type: ignore[arg-type]


def test_identity_document_of_the_spec_example() -> None:
    assert identity() == (
        "{\n"
        '  "agent_id": "kernel-engine",\n'
        '  "version": 1,\n'
        '  "created_at": "2024-02-24T00:00:00.000000Z",\n'
        '  "updated_at": "2024-02-24T12:34:56.000000Z",\n'
        '  "state": {\n'
        '    "current_phase": "P2",\n'
        '    "current_task": "A-01",\n'
        '    "last_checkpoint": null,\n'
        '    "status": "in_progress"\n'
        "  },\n"
        '  "memory": {\n'
        '    "learned_patterns": [],\n'
        '    "heuristics": []\n'
        "  },\n"
        '  "history": {\n'
        '    "completed_tasks": [\n'
        '      "A-01"\n'
        "    ],\n"
        '    "failed_tasks": [],\n'
        '    "total_executions": 1\n'
        "  },\n"
        '  "performance": {\n'
        '    "avg_execution_time_ms": 2340\n'
        "  },\n"
        '  "checksum": "sha256:abc123"\n'
        "}\n"
    )


@given(
    agent_id=st.text(min_size=1, max_size=12),
    version=st.integers(-(2**31), 2**31 - 1),
    created_at=st.none() | st.just("2024-02-24T00:00:00.000000Z") | st.just("infinity"),
    updated_at=st.none() | st.just("1969-12-31T23:59:59.999999Z") | st.just("-infinity"),
    state=states,
    memory=json_values,
    history=json_values,
    performance=json_objects,
    checksum=st.text(max_size=20),
)
def test_identity_document_has_the_spec_key_order_and_json_dumps_layout(
    agent_id: str,
    version: int,
    created_at: str | None,
    updated_at: str | None,
    state: dict[str, object],
    memory: object,
    history: object,
    performance: dict[str, object],
    checksum: str,
) -> None:
    out = identity_document(
        agent_id=agent_id,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
        state=json.dumps(state),
        memory=json.dumps(memory),
        history=json.dumps(history),
        performance=json.dumps(performance),
        checksum=checksum,
    ).decode("utf-8")
    expected_state = {key: state.get(key) for key in STATE_FIRST} | {
        k: v for k, v in state.items() if k not in STATE_FIRST
    }
    expected = {
        "agent_id": agent_id,
        "version": version,
        "created_at": created_at,
        "updated_at": updated_at,
        "state": expected_state,
        "memory": memory,
        "history": history,
        "performance": performance,
        "checksum": checksum,
    }
    assert out == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    assert out == json.dumps(json.loads(out), indent=2, ensure_ascii=False) + "\n"
    parsed = json.loads(out)
    assert list(parsed) == TOP_KEYS
    assert list(parsed["state"])[:4] == STATE_FIRST


def test_identity_document_keeps_numbers_exactly_as_their_source_text() -> None:
    out = identity(
        version=7,
        performance='{"ratio": 1.10, "huge": 1e400, "big": 12345678901234567890123, "neg": -0.0, "e": 2.5E-3}',
        memory='{"list": [1.10, 100, 1e400]}',
        state='{"current_phase": "P2", "score": 0.1000}',
    )
    assert '"ratio": 1.10,' in out
    assert '"huge": 1e400,' in out
    assert '"big": 12345678901234567890123,' in out
    assert '"neg": -0.0,' in out
    assert '"e": 2.5E-3\n' in out
    assert "      1.10,\n      100,\n      1e400\n" in out
    assert '"score": 0.1000\n' in out
    assert '"version": 7,' in out


def test_identity_state_starts_with_the_four_spec_keys_then_keeps_every_other_source_key() -> None:
    out = identity(state='{"zeta": 1, "status": "done", "alpha": {"nested": [true]}, "current_task": "B-02"}')
    state = json.loads(out)["state"]
    assert list(state.items()) == [
        ("current_phase", None),
        ("current_task", "B-02"),
        ("last_checkpoint", None),
        ("status", "done"),
        ("zeta", 1),
        ("alpha", {"nested": [True]}),
    ]


def test_identity_document_is_utf8_not_unicode_escapes() -> None:
    out_bytes = identity_document(
        agent_id="агент-🦀",
        version=1,
        created_at=None,
        updated_at=None,
        state='{"current_phase": "日本語", "note": "שלום e\u0301"}',
        memory='{"emoji": "\\ud83e\\udd80"}',
        history="[]",
        performance="{}",
        checksum="sha256:ü",
    )
    out = out_bytes.decode("utf-8")
    assert "\\u" not in out
    assert '"agent_id": "агент-🦀"' in out
    assert '"current_phase": "日本語"' in out
    assert '"note": "שלום e\u0301"' in out
    assert '"emoji": "🦀"' in out
    assert '"checksum": "sha256:ü"' in out
    assert '"created_at": null' in out
    assert '"history": [],\n  "performance": {},' in out
    assert out.endswith("}\n")


@pytest.mark.parametrize("state", ["[]", '"P2"', "1", "null", "true", '[{"current_phase": "P2"}]'])
def test_identity_with_a_state_that_is_not_an_object_is_refused(state: str) -> None:
    with pytest.raises(ValueError):
        identity(state=state)


@given(st.datetimes(timezones=st.just(UTC)))
@example(datetime(1, 1, 1, tzinfo=UTC))
@example(datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
def test_datetime_text_is_the_design_format_with_four_digit_years(value: datetime) -> None:
    text = datetime_text(value)
    assert text == f"{value.year:04d}-" + value.strftime("%m-%dT%H:%M:%S.%fZ")
    assert datetime.fromisoformat(text) == value
