"""End to end on a real PostgreSQL: every value arrives in ClawFS exactly (DESIGN §2, §2.1-§2.4, §4.1).

One rich IronClaw store per PostgreSQL version is migrated once (with umask 0) and read back by many
tests; stores that need another column type or dimension get a test of their own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from usearch.index import Index, MetricKind

from clawfs import HnswParams, MigrateOptions, MigrationReport, Workspace, migrate
from conftest import PG_VERSIONS, fresh_store
from pgstore import PgStore

pytestmark = pytest.mark.pg

VERSIONS = (0,) if os.environ.get("CLAWFS_TEST_PG_URL") else PG_VERSIONS
TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


# ---------------------------------------------------------------------------------------------
# helpers


def query(db_path: Path, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)) as db:
        return db.execute(text, params).fetchall()


def pg_embeddings(pg: PgStore, where: str = "") -> dict[int, bytes]:
    """Vector id -> the embedding PostgreSQL holds, as little-endian float32 bytes (halfvec widened by PG)."""
    out = {}
    for vid, raw in pg.sql(f"SELECT id, vector_send(embedding::vector) FROM vectors {where}"):
        dimension = int.from_bytes(raw[:2], "big")
        values = np.frombuffer(raw[4:], dtype=">f4")
        assert values.size == dimension
        out[vid] = values.astype("<f4").tobytes()
    return out


def float32_bytes(values: Sequence[float]) -> bytes:
    return np.asarray(values, dtype="<f4").tobytes()


def index_keys(path: Path) -> list[int]:
    index = Index.restore(str(path))
    assert index is not None, f"{path} is not a usearch index"
    return sorted(int(k) for k in index.keys)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


# ---------------------------------------------------------------------------------------------
# the rich store: every kind of value, in workspaces whose ids need encoding

DIM = 6


@dataclass(frozen=True)
class Doc:
    id: int
    workspace: str
    content: str
    metadata: str | None  # JSON text as given to PostgreSQL
    pg_metadata: str | None  # what PostgreSQL prints for metadata::text (written out)
    created_at: str | None  # as given to PostgreSQL
    expected_created_at: str | None  # DESIGN §2.2


@dataclass(frozen=True)
class Vec:
    id: int
    document_id: int
    embedding: tuple[float, ...]
    created_at: str
    expected_created_at: str


UNICODE_CONTENT = (
    "Emoji 🦀🚀 and 中文内容, 日本語のテキスト, 한국어, עברית שלום, العربية مرحبا, "
    "combining e\u0301 and \u0915\u094d\u0937, zero\u200bwidth, full-width ＡＢＣ, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
)
UNICODE_METADATA = json.dumps(
    {"标签": "日本語", "emoji": "🦀", "rtl": "שלום عربي", "combining": "e\u0301"}, ensure_ascii=False
)
ESCAPES_METADATA = json.dumps({"q": 'quote " backslash \\ newline \n tab \t bell \x07', "u": "\u00e9"})
BIG_CONTENT = "".join(f"line {i}: ünïcode 🦀 text of the big document, 中文 {i % 97}\n" for i in range(52_000)) + (
    "needleattheend"
)

DOCS = [
    Doc(
        1,
        "default",
        "Reset your password from the account settings page.",
        '{"topic": "auth", "tags": ["account", "settings"], "n": 1}',
        '{"n": 1, "tags": ["account", "settings"], "topic": "auth"}',
        "2024-02-24 12:34:56.123456+05:30",
        "2024-02-24T07:04:56.123456Z",
    ),
    Doc(
        2,
        "default",
        "Password policy: rotate every password and never reuse an old password.",
        '{"topic": "policy"}',
        '{"topic": "policy"}',
        "2024-01-01 05:00:00+14",
        "2023-12-31T15:00:00.000000Z",
    ),
    Doc(
        3,
        "default",
        "Vectors near the north star.",
        '[1, "two", null, true, {"x": 1.5}]',
        '[1, "two", null, true, {"x": 1.5}]',
        "1969-12-31 23:59:59.999999+00",
        "1969-12-31T23:59:59.999999Z",
    ),
    Doc(4, "default", "", None, None, None, None),
    Doc(
        5,
        "default",
        UNICODE_CONTENT,
        UNICODE_METADATA,
        '{"rtl": "שלום عربي", "emoji": "🦀", "标签": "日本語", "combining": "e\u0301"}',
        "1900-01-01 00:00:00+00",
        "1900-01-01T00:00:00.000000Z",
    ),
    Doc(
        6,
        "default",
        "A search query planner chooses the best plan.",
        '"just a string"',
        '"just a string"',
        "infinity",
        "infinity",
    ),
    Doc(
        7,
        "default",
        "Searching many queries at once is a search feature.",
        "42",
        "42",
        "-infinity",
        "-infinity",
    ),
    Doc(
        8,
        "default",
        "Only search here, nothing else.",
        "1.10",
        "1.10",
        "2000-01-01 00:00:00+00",
        "2000-01-01T00:00:00.000000Z",
    ),
    Doc(
        9,
        "default",
        "Nested metadata document.",
        '{"t": true, "a": {"b": {"c": [1, [2, [3, {"d": null}]]]}}, "big": 12345678901234567890.123456789, "e": 1e-7}',
        '{"a": {"b": {"c": [1, [2, [3, {"d": null}]]]}}, "e": 0.0000001, "t": true,'
        ' "big": 12345678901234567890.123456789}',
        "0001-01-01 00:00:00+00",
        "0001-01-01T00:00:00.000000Z",
    ),
    Doc(
        10,
        "default",
        "Escapes in metadata.",
        ESCAPES_METADATA,
        r'{"q": "quote \" backslash \\ newline \n tab \t bell \u0007", "u": "é"}',
        "1999-12-31 19:00:00.5-05",
        "2000-01-01T00:00:00.500000Z",
    ),
    Doc(
        11,
        "default",
        "JSON null metadata is not SQL NULL.",
        "null",
        "null",
        "9999-12-31 23:59:59.999999+00",
        "9999-12-31T23:59:59.999999Z",
    ),
    Doc(
        12,
        "default",
        "Empty object.",
        "{}",
        "{}",
        "1970-01-01 00:00:00.000001+00",
        "1970-01-01T00:00:00.000001Z",
    ),
    Doc(13, "default", "Empty array.", "[]", "[]", "1969-07-20 20:17:40-04", "1969-07-21T00:17:40.000000Z"),
    Doc(
        14,
        "default",
        "Boolean metadata.",
        "true",
        "true",
        "2024-02-29 23:59:59.999999-00:30",
        "2024-03-01T00:29:59.999999Z",
    ),
    Doc(
        20,
        "team/a.b",
        "Team notes: deploy checklist.",
        '{"team": "a.b"}',
        '{"team": "a.b"}',
        "2024-03-01 00:00:00+00",
        "2024-03-01T00:00:00.000000Z",
    ),
    Doc(
        21,
        "team/a.b",
        "Weird vectors live here.",
        None,
        None,
        "2024-03-01 00:00:00.5+00",
        "2024-03-01T00:00:00.500000Z",
    ),
    Doc(
        30,
        "..",
        "Dot dot workspace has no vectors.",
        '{"ws": ".."}',
        '{"ws": ".."}',
        "2024-03-02 00:00:00+00",
        "2024-03-02T00:00:00.000000Z",
    ),
    Doc(31, "..", "Second document without vectors.", None, None, None, None),
    Doc(
        40,
        "../../x",
        "Escaping attempt stays inside the root.",
        '{"path": "../../x"}',
        '{"path": "../../x"}',
        "2024-03-03 00:00:00+00",
        "2024-03-03T00:00:00.000000Z",
    ),
    Doc(
        50,
        "工作区 🦀 עברית عربي",
        "中文 工作区 document 🦀 שלום",
        '{"名前": "ワークスペース"}',
        '{"名前": "ワークスペース"}',
        "2024-03-04 00:00:00+00",
        "2024-03-04T00:00:00.000000Z",
    ),
    Doc(
        60,
        "big",
        BIG_CONTENT,
        '{"size": "big"}',
        '{"size": "big"}',
        "2024-03-05 00:00:00+00",
        "2024-03-05T00:00:00.000000Z",
    ),
    Doc(70, "cafe\u0301", "Decomposed café.", None, None, "2024-03-06 00:00:00+00", "2024-03-06T00:00:00.000000Z"),
    Doc(71, "caf\u00e9", "Composed café.", None, None, "2024-03-06 00:00:00+00", "2024-03-06T00:00:00.000000Z"),
]

WEIRD_VECTOR = (1e-3, -2.5, 3.25, 1e30, -7e-39, 0.1)
VECS = [
    Vec(1, 1, (1, 0, 0.5, 0, 0, 0), "2024-02-24 12:34:56.123456+05:30", "2024-02-24T07:04:56.123456Z"),
    Vec(2, 1, (0, 0, 0, 1, 0, 0), "1969-07-20 20:17:40+00", "1969-07-20T20:17:40.000000Z"),
    Vec(3, 1, (0, 0, 0, 0, 1, 0), "1960-02-29 12:00:00.000001+00", "1960-02-29T12:00:00.000001Z"),
    Vec(4, 2, (-1, 0, 0, 0, 0, 0), "0001-01-01 00:00:00+00", "0001-01-01T00:00:00.000000Z"),
    Vec(5, 3, (1, 0.1, 0, 0, 0, 0), "9999-12-31 23:59:59.999999+00", "9999-12-31T23:59:59.999999Z"),
    Vec(6, 5, (0.3, 1, 0, 0, 0, 0), "2000-01-01 00:00:00+00", "2000-01-01T00:00:00.000000Z"),
    Vec(7, 6, (0.2, 0, 1, 0, 0, 0), "1999-12-31 23:59:59.999999+00", "1999-12-31T23:59:59.999999Z"),
    Vec(8, 7, (0.1, 0, 0, 1, 0, 0), "2024-01-01 05:00:00+14", "2023-12-31T15:00:00.000000Z"),
    Vec(9, 8, (-0.5, 0, 0, 0, 0, 1), "1970-01-01 00:00:00+00", "1970-01-01T00:00:00.000000Z"),
    Vec(10, 9, (0, 0, 0, 0, 0, 1), "2038-01-19 03:14:08+00", "2038-01-19T03:14:08.000000Z"),
    Vec(20, 20, (0, 0, 0, 0, 0, 0), "infinity", "infinity"),
    Vec(21, 20, (0.5, 0.5, 0.5, 0.5, 0.5, 0.5), "-infinity", "-infinity"),
    Vec(22, 21, (1, 2, 3, 4, 5, 6), "1970-01-01 00:00:00+00", "1970-01-01T00:00:00.000000Z"),
    Vec(23, 21, WEIRD_VECTOR, "2024-02-24 12:34:56.5+00", "2024-02-24T12:34:56.500000Z"),
    Vec(40, 40, (0, 1, 0, 0, 0, 0), "2024-03-03 00:00:00+00", "2024-03-03T00:00:00.000000Z"),
    Vec(50, 50, (0, 0, 1, 0, 0, 0), "2024-03-04 00:00:00+00", "2024-03-04T00:00:00.000000Z"),
    Vec(60, 60, (1, 1, 1, 1, 1, 1), "2024-03-05 00:00:00+00", "2024-03-05T00:00:00.000000Z"),
    Vec(71, 71, (0, 0, 0, 1, 1, 0), "2024-03-06 00:00:00+00", "2024-03-06T00:00:00.000000Z"),
]

WORKSPACE_DIRS = {
    "default": "default",
    "team/a.b": "team%2Fa%2Eb",
    "..": "%2E%2E",
    "../../x": "%2E%2E%2F%2E%2E%2Fx",
    "工作区 🦀 עברית عربي": (
        "%E5%B7%A5%E4%BD%9C%E5%8C%BA%20%F0%9F%A6%80%20%D7%A2%D7%91%D7%A8%D7%99%D7%AA%20%D8%B9%D8%B1%D8%A8%D9%8A"
    ),
    "big": "big",
    "cafe\u0301": "cafe%CC%81",
    "caf\u00e9": "caf%C3%A9",
}

SOURCE_METADATA = {
    "vector_dimension": "6",
    "embedding_model": '"text-embedding-3-small"',
    "ivfflat_lists": "100",
    "note": '{"b": 2, "a": [1, 2.50]}',
    "ünï 🦀": '"日本語"',
}
SOURCE_METADATA_TEXT = {  # what PostgreSQL prints for value::text
    "vector_dimension": "6",
    "embedding_model": '"text-embedding-3-small"',
    "ivfflat_lists": "100",
    "note": '{"a": [1, 2.50], "b": 2}',
    "ünï 🦀": '"日本語"',
}

KERNEL_ENGINE = {
    "version": 3,
    "state": (
        '{"status": "in_progress", "extra": {"nested": [1, 2]}, "current_task": "A-01", "zeta": 1.10,'
        ' "current_phase": "P2"}'
    ),
    "memory": '{"learned_patterns": ["日本語", "🦀"], "heuristics": []}',
    "history": '{"completed_tasks": ["A-01"], "failed_tasks": [], "total_executions": 1, "success_rate": 1.0}',
    "performance": (
        '{"avg_execution_time_ms": 2340, "ratio": 1.10, "big": 12345678901234567890123,'
        ' "last_benchmark": "2024-02-24T18:00:00Z"}'
    ),
    "created_at": "2024-02-24 00:00:00+00",
    "updated_at": "2024-02-24 12:34:56.5+05:30",
    "checksum": "sha256:abc123...",
}
KERNEL_ENGINE_FILE = """\
{
  "agent_id": "kernel-engine",
  "version": 3,
  "created_at": "2024-02-24T00:00:00.000000Z",
  "updated_at": "2024-02-24T07:04:56.500000Z",
  "state": {
    "current_phase": "P2",
    "current_task": "A-01",
    "last_checkpoint": null,
    "status": "in_progress",
    "zeta": 1.10,
    "extra": {
      "nested": [
        1,
        2
      ]
    }
  },
  "memory": {
    "heuristics": [],
    "learned_patterns": [
      "日本語",
      "🦀"
    ]
  },
  "history": {
    "failed_tasks": [],
    "success_rate": 1.0,
    "completed_tasks": [
      "A-01"
    ],
    "total_executions": 1
  },
  "performance": {
    "big": 12345678901234567890123,
    "ratio": 1.10,
    "last_benchmark": "2024-02-24T18:00:00Z",
    "avg_execution_time_ms": 2340
  },
  "checksum": "sha256:abc123..."
}
"""
AGENT_DIRS = {"kernel-engine": "kernel-engine", "team/ops.δ": "team%2Fops%2E%CE%B4", "..": "%2E%2E"}


def fill_rich_store(pg: PgStore) -> None:
    pg.create_schema(dimension=DIM)
    pg.add_documents(
        {
            "id": d.id,
            "workspace_id": d.workspace,
            "content": d.content,
            "metadata": d.metadata,
            "created_at": d.created_at,
        }
        for d in DOCS
    )
    pg.add_vectors(
        {"id": v.id, "document_id": v.document_id, "embedding": list(v.embedding), "created_at": v.created_at}
        for v in VECS
    )
    pg.add_metadata(SOURCE_METADATA)
    pg.add_identity("kernel-engine", **KERNEL_ENGINE)
    pg.add_identity(
        "team/ops.δ",
        state='{"last_checkpoint": "2024-02-24T10:00:00Z", "notes": ["ü", "🦀"], "current_phase": "P3"}',
    )
    pg.add_identity("..")


@dataclass(frozen=True)
class Migrated:
    pg: PgStore
    base: Path  # the directory that holds the root and nothing else
    root: Path
    report: MigrationReport
    modes: dict[Path, int]  # mode of everything under the root, right after migrate

    def db(self, workspace: str) -> Path:
        return self.root / "workspaces" / WORKSPACE_DIRS[workspace] / "workspace.db"

    def index(self, workspace: str) -> Path:
        return self.root / "workspaces" / WORKSPACE_DIRS[workspace] / "index.usearch"

    def agent_file(self, agent_id: str) -> Path:
        return self.root / "agents" / AGENT_DIRS[agent_id] / "identity.json"


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"pg{v}" if v else "pg")
def rich(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Migrated]:
    with fresh_store(request.param) as pg:
        fill_rich_store(pg)
        base = tmp_path_factory.mktemp("rich")
        root = base / "clawfs"
        old_umask = os.umask(0)
        try:
            report = migrate(pg.url, root, MigrateOptions(all_workspaces=True))
        finally:
            os.umask(old_umask)
        modes = {p: mode(p) for p in [root, *root.rglob("*")]}
        yield Migrated(pg, base, root, report, modes)


# ---------------------------------------------------------------------------------------------
# layout: where each workspace and identity lands (DESIGN §2)


def test_every_workspace_lands_in_its_percent_encoded_directory(rich: Migrated) -> None:
    assert sorted(os.listdir(rich.root / "workspaces")) == sorted(WORKSPACE_DIRS.values())
    for workspace, name in WORKSPACE_DIRS.items():
        directory = rich.root / "workspaces" / name
        assert {"workspace.db", "index.usearch"} <= set(os.listdir(directory)), workspace
        assert query(rich.db(workspace), "SELECT DISTINCT workspace_id FROM document_store") == [(workspace,)]
        (value,) = query(rich.db(workspace), "SELECT value FROM metadata WHERE key = 'workspace_id'")[0]
        assert json.loads(value) == workspace


def test_the_report_names_each_workspace_with_its_files_and_counts(rich: Migrated) -> None:
    found = {
        w.workspace_id: (Path(w.database), Path(w.index), w.documents, w.vectors, w.dimension)
        for w in rich.report.workspaces
    }
    expected = {
        ws: (
            rich.db(ws),
            rich.index(ws),
            sum(d.workspace == ws for d in DOCS),
            sum(v.document_id in {d.id for d in DOCS if d.workspace == ws} for v in VECS),
            DIM,
        )
        for ws in WORKSPACE_DIRS
    }
    assert found == expected
    assert expected["default"][2:4] == (14, 10)
    assert expected[".."][2:4] == (2, 0)


def test_no_workspace_id_escapes_the_root(rich: Migrated) -> None:
    assert os.listdir(rich.base) == ["clawfs"]
    assert not (rich.root / "x").exists()
    assert not (rich.root.parent / "x").exists()
    real_root = os.path.realpath(rich.root)
    for path in rich.root.rglob("*"):
        assert not path.is_symlink()
        assert os.path.realpath(path).startswith(real_root + os.sep)
    for workspace in WORKSPACE_DIRS:
        assert os.path.realpath(rich.db(workspace)).startswith(os.path.join(real_root, "workspaces") + os.sep)


def test_every_workspace_opens_by_its_id_and_finds_its_documents(rich: Migrated) -> None:
    for workspace in WORKSPACE_DIRS:
        first = min((d for d in DOCS if d.workspace == workspace), key=lambda d: d.id)
        word = first.content.split()[0].strip(".,:")
        with Workspace.open(rich.root, workspace) as ws:
            assert ws.workspace_id == workspace
            assert ws.dimension == DIM
            assert first.id in [h.document_id for h in ws.search(word)], workspace


def test_every_workspace_opens_by_the_path_of_its_database(rich: Migrated) -> None:
    for workspace in WORKSPACE_DIRS:
        with Workspace.open(rich.db(workspace)) as ws:
            assert ws.workspace_id == workspace


def test_opening_a_workspace_by_id_never_reads_a_database_outside_its_directory(rich: Migrated, tmp_path: Path) -> None:
    name = WORKSPACE_DIRS["../../x"]
    root = tmp_path / "clawfs"
    (root / "workspaces").mkdir(parents=True)
    shutil.copytree(rich.root / "workspaces" / name, root / "workspaces" / name)
    decoy = tmp_path / "x"  # where "<root>/workspaces/../../x" would lead
    decoy.mkdir()
    shutil.copy(rich.db("default"), decoy / "workspace.db")
    with Workspace.open(root, "../../x") as ws:
        assert ws.workspace_id == "../../x"
        assert [h.document_id for h in ws.search("escaping")] == [40]


def test_composed_and_decomposed_ids_stay_two_workspaces(rich: Migrated) -> None:
    assert query(rich.db("cafe\u0301"), "SELECT id, content FROM document_store") == [(70, "Decomposed café.")]
    assert query(rich.db("caf\u00e9"), "SELECT id, content FROM document_store") == [(71, "Composed café.")]


def test_everything_written_is_private_even_with_a_permissive_umask(rich: Migrated) -> None:
    files = {p for p in rich.modes if stat.S_ISREG(os.lstat(p).st_mode)}
    directories = {p for p in rich.modes if stat.S_ISDIR(os.lstat(p).st_mode)}
    assert files | directories == set(rich.modes)
    assert {p: m for p, m in rich.modes.items() if p in files and m != 0o600} == {}
    assert {p: m for p, m in rich.modes.items() if p in directories and m != 0o700} == {}
    for workspace in WORKSPACE_DIRS:
        assert rich.db(workspace) in files
        assert rich.index(workspace) in files
    for agent_id in AGENT_DIRS:
        assert rich.agent_file(agent_id) in files
    assert rich.root in directories
    assert rich.root / "agents" in directories
    assert rich.root / "workspaces" in directories


# ---------------------------------------------------------------------------------------------
# documents (DESIGN §2.1, §2.2)


def test_documents_are_copied_exactly(rich: Migrated) -> None:
    for workspace in WORKSPACE_DIRS:
        got = query(rich.db(workspace), "SELECT id, workspace_id, content, metadata, created_at FROM document_store")
        expected = [
            (d.id, d.workspace, d.content, d.pg_metadata, d.expected_created_at)
            for d in sorted(DOCS, key=lambda d: d.id)
            if d.workspace == workspace
        ]
        assert got == expected, workspace


def test_document_text_is_what_postgresql_holds_byte_for_byte(rich: Migrated) -> None:
    source = {
        i: (ws.encode(), content.encode(), metadata.encode() if metadata is not None else None)
        for i, ws, content, metadata in rich.pg.sql("SELECT id, workspace_id, content, metadata::text FROM documents")
    }
    copied = {}
    for workspace in WORKSPACE_DIRS:
        for i, ws, content, metadata in query(
            rich.db(workspace),
            "SELECT id, CAST(workspace_id AS BLOB), CAST(content AS BLOB), CAST(metadata AS BLOB) FROM document_store",
        ):
            copied[i] = (ws, content, metadata)
    assert copied == source


def test_json_metadata_is_postgresqls_own_text(rich: Migrated) -> None:
    source = dict(rich.pg.sql("SELECT id, metadata::text FROM documents"))
    assert source == {d.id: d.pg_metadata for d in DOCS}  # the written-out expectations are PostgreSQL's text
    copied = {}
    for workspace in WORKSPACE_DIRS:
        copied.update(query(rich.db(workspace), "SELECT id, metadata FROM document_store"))
    assert copied == source


def test_sql_null_and_json_null_metadata_stay_different(rich: Migrated) -> None:
    assert query(
        rich.db("default"), "SELECT id, typeof(metadata), metadata FROM document_store WHERE id IN (4, 11)"
    ) == [
        (4, "null", None),
        (11, "text", "null"),
    ]


def test_empty_content_stays_an_empty_string(rich: Migrated) -> None:
    assert query(rich.db("default"), "SELECT typeof(content), length(content) FROM document_store WHERE id = 4") == [
        ("text", 0)
    ]


def test_document_timestamps_are_utc_with_six_fractional_digits(rich: Migrated) -> None:
    got = {}
    for workspace in WORKSPACE_DIRS:
        got.update(query(rich.db(workspace), "SELECT id, created_at FROM document_store"))
    assert got == {d.id: d.expected_created_at for d in DOCS}
    assert got[1] == "2024-02-24T07:04:56.123456Z"
    assert got[4] is None
    assert got[6] == "infinity"
    assert got[7] == "-infinity"
    for value in got.values():
        assert value is None or value in ("infinity", "-infinity") or TIMESTAMP_TEXT.fullmatch(value)


def test_a_multi_megabyte_document_is_copied_whole_and_is_searchable(rich: Migrated) -> None:
    assert len(BIG_CONTENT.encode()) > 3_000_000
    ((content, size),) = query(rich.db("big"), "SELECT content, length(CAST(content AS BLOB)) FROM document_store")
    assert size == len(BIG_CONTENT.encode())
    assert hashlib.sha256(content.encode()).hexdigest() == hashlib.sha256(BIG_CONTENT.encode()).hexdigest()
    with Workspace.open(rich.root, "big") as ws:
        assert [h.document_id for h in ws.search("needleattheend")] == [60]


# ---------------------------------------------------------------------------------------------
# vectors (DESIGN §2.1, §2.2)


def test_vectors_are_copied_with_their_ids_documents_and_timestamps(rich: Migrated) -> None:
    got = {}
    for workspace in WORKSPACE_DIRS:
        got.update(
            {
                r[0]: r[1:]
                for r in query(rich.db(workspace), "SELECT id, document_id, embedding, created_at FROM vectors")
            }
        )
    assert got == {v.id: (v.document_id, float32_bytes(v.embedding), v.expected_created_at) for v in VECS}


def test_embeddings_are_bit_exact_copies_of_what_postgresql_holds(rich: Migrated) -> None:
    copied = {}
    for workspace in WORKSPACE_DIRS:
        copied.update(query(rich.db(workspace), "SELECT id, embedding FROM vectors"))
    assert copied == pg_embeddings(rich.pg)
    assert np.frombuffer(copied[23], dtype="<f4").tolist() == np.asarray(WEIRD_VECTOR, dtype=np.float32).tolist()
    assert copied[20] == bytes(DIM * 4)  # the zero vector


def test_documents_with_several_vectors_or_none_keep_exactly_theirs(rich: Migrated) -> None:
    per_document = dict(query(rich.db("default"), "SELECT document_id, group_concat(id) FROM vectors GROUP BY 1"))
    assert per_document == {1: "1,2,3", 2: "4", 3: "5", 5: "6", 6: "7", 7: "8", 8: "9", 9: "10"}
    without = query(
        rich.db("default"),
        "SELECT id FROM document_store WHERE id NOT IN (SELECT document_id FROM vectors) ORDER BY id",
    )
    assert without == [(4,), (10,), (11,), (12,), (13,), (14,)]


def test_a_workspace_without_vectors_has_an_empty_vectors_table_and_index(rich: Migrated) -> None:
    assert query(rich.db(".."), "SELECT count(*) FROM vectors") == [(0,)]
    assert query(rich.db(".."), "SELECT count(*) FROM document_store") == [(2,)]
    assert index_keys(rich.index("..")) == []
    with Workspace.open(rich.root, "..") as ws:
        assert sorted(h.document_id for h in ws.search("vectors")) == [30, 31]
        assert ws.search(vector=[1, 0, 0, 0, 0, 0]) == []


# ---------------------------------------------------------------------------------------------
# the HNSW index (DESIGN §2.3)


def test_the_hnsw_index_holds_exactly_the_vector_ids(rich: Migrated) -> None:
    for workspace in WORKSPACE_DIRS:
        ids = [r[0] for r in query(rich.db(workspace), "SELECT id FROM vectors ORDER BY id")]
        expected = sorted(v.id for v in VECS if v.document_id in {d.id for d in DOCS if d.workspace == workspace})
        assert ids == expected
        assert index_keys(rich.index(workspace)) == expected, workspace


def test_the_hnsw_index_is_cosine_with_the_recorded_parameters(rich: Migrated) -> None:
    meta = {k: json.loads(v) for k, v in query(rich.db("default"), "SELECT key, value FROM metadata")}
    index = Index.restore(str(rich.index("default")))
    assert index is not None
    assert index.ndim == DIM
    assert index.metric == MetricKind.Cos
    assert meta["hnsw_metric"] == "cos"
    assert index.connectivity == meta["hnsw_m"] == 16
    assert index.dtype.name.lower() == meta["hnsw_dtype"]


# ---------------------------------------------------------------------------------------------
# the metadata table (DESIGN §2.2)

ALWAYS_KEYS = {
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
}


def test_metadata_has_every_key_of_the_design_with_json_values(rich: Migrated) -> None:
    for workspace in WORKSPACE_DIRS:
        rows = dict(query(rich.db(workspace), "SELECT key, value FROM metadata"))
        assert set(rows) >= ALWAYS_KEYS, workspace
        meta = {k: json.loads(v) for k, v in rows.items()}  # every value is JSON text
        assert meta["vector_dimension"] == DIM
        assert rows["embedding_model"] == '"text-embedding-3-small"'
        assert (meta["hnsw_m"], meta["hnsw_ef_construction"], meta["hnsw_ef_search"]) == (16, 200, 50)
        assert rows["hnsw_metric"] == '"cos"'
        assert meta["hnsw_dtype"] in ("f32", "f16", "bf16", "i8")
        assert rows["hnsw_dtype"] == json.dumps(meta["hnsw_dtype"])
        assert meta["workspace_id"] == workspace
        assert isinstance(meta["migrated_at"], str)
        assert TIMESTAMP_TEXT.fullmatch(meta["migrated_at"])


def test_metadata_records_where_the_data_came_from_without_a_password(rich: Migrated) -> None:
    rows = dict(query(rich.db("default"), "SELECT key, value FROM metadata"))
    source = json.loads(rows["source"])
    assert set(source) == {"host", "port", "database"}
    assert source["database"] == rich.pg.dbname
    assert "password" not in rows["source"]
    assert rows["source_snapshot"] not in ("null", '""', "{}")


def test_metadata_records_row_counts_and_checksums(rich: Migrated) -> None:
    rows = dict(query(rich.db("default"), "SELECT key, value FROM metadata"))
    counts = [json.loads(v) for k, v in rows.items() if "count" in k]
    assert 14 in counts
    assert 10 in counts
    assert [k for k in rows if "checksum" in k], f"no checksum among the metadata keys {sorted(rows)}"


def test_source_metadata_rows_are_copied_as_postgresqls_value_text(rich: Migrated) -> None:
    source = dict(rich.pg.sql("SELECT key, value::text FROM metadata"))
    assert source == SOURCE_METADATA_TEXT
    for workspace in WORKSPACE_DIRS:
        rows = dict(query(rich.db(workspace), "SELECT key, value FROM metadata"))
        for key, value in source.items():
            if key == "vector_dimension":  # clawfs writes its own, which must agree
                assert json.loads(rows[key]) == json.loads(value)
            else:
                assert rows[key] == value, (workspace, key)


# ---------------------------------------------------------------------------------------------
# identity files (DESIGN §2.4)


def test_an_identity_file_has_the_spec_layout_and_keeps_every_value_exactly(rich: Migrated) -> None:
    assert rich.agent_file("kernel-engine").read_text(encoding="utf-8") == KERNEL_ENGINE_FILE


def test_identity_files_land_in_percent_encoded_directories(rich: Migrated) -> None:
    assert sorted(os.listdir(rich.root / "agents")) == sorted(AGENT_DIRS.values())
    for agent_id in AGENT_DIRS:
        assert json.loads(rich.agent_file(agent_id).read_bytes())["agent_id"] == agent_id


def test_identity_state_starts_with_the_spec_keys_and_keeps_the_others(rich: Migrated) -> None:
    text = rich.agent_file("team/ops.δ").read_text(encoding="utf-8")
    doc = json.loads(text)
    assert list(doc) == [
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
    assert list(doc["state"].items()) == [
        ("current_phase", "P3"),
        ("current_task", None),
        ("last_checkpoint", "2024-02-24T10:00:00Z"),
        ("status", None),
        ("notes", ["ü", "🦀"]),
    ]
    assert TIMESTAMP_TEXT.fullmatch(doc["created_at"])
    assert TIMESTAMP_TEXT.fullmatch(doc["updated_at"])


def test_identity_files_are_utf8_with_two_space_indent_and_a_trailing_newline(rich: Migrated) -> None:
    for agent_id in AGENT_DIRS:
        raw = rich.agent_file(agent_id).read_bytes()
        text = raw.decode("utf-8")
        assert "\\u" not in text
        assert text.endswith("}\n")
        if agent_id != "kernel-engine":  # ordinary numbers only: json.dumps gives the same layout
            assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"
    assert '"ü",\n      "🦀"' in rich.agent_file("team/ops.δ").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# the draft's verification queries (spec §8.1, §8.2, §8.4) run unchanged


def test_spec_8_1_row_counts_agree(rich: Migrated) -> None:
    statement = "SELECT COUNT(*) FROM documents WHERE workspace_id = 'default';"
    assert rich.pg.sql(statement) == [(14,)]
    assert query(rich.db("default"), statement) == [(14,)]


def test_spec_8_2_vector_dimensions_agree(rich: Migrated) -> None:
    assert query(rich.db("default"), "SELECT length(embedding) / 4 FROM vectors LIMIT 1;") == [(DIM,)]
    # the draft's PostgreSQL side (array_length on a vector) does not exist in pgvector; vector_dims does
    assert rich.pg.sql("SELECT DISTINCT vector_dims(embedding) FROM vectors") == [(DIM,)]
    for workspace in WORKSPACE_DIRS:
        assert query(rich.db(workspace), "SELECT DISTINCT length(embedding) / 4 FROM vectors") in ([(DIM,)], [])


SPEC_8_4_POSTGRESQL = """
SELECT id, content, ts_rank_cd(to_tsvector('english', content), query) as rank
FROM documents, to_tsquery('english', 'search & query') query
WHERE to_tsvector('english', content) @@ query
ORDER BY rank DESC
LIMIT 10;
"""
SPEC_8_4_SQLITE = """
SELECT id, content, bm25(documents) as rank
FROM documents
WHERE documents MATCH 'search query'
ORDER BY rank
LIMIT 10;
"""


def test_spec_8_4_full_text_search_finds_the_same_documents(rich: Migrated) -> None:
    postgres = {(i, content) for i, content, _ in rich.pg.sql(SPEC_8_4_POSTGRESQL)}
    sqlite = query(rich.db("default"), SPEC_8_4_SQLITE)
    assert (
        {(i, content) for i, content, _ in sqlite}
        == postgres
        == {
            (6, "A search query planner chooses the best plan."),
            (7, "Searching many queries at once is a search feature."),
        }
    )
    ranks = [rank for _, _, rank in sqlite]
    assert ranks == sorted(ranks)


# ---------------------------------------------------------------------------------------------
# Workspace.search (DESIGN §4.1)

QUERY_VECTOR = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_text_search_ranks_by_bm25_best_first(rich: Migrated) -> None:
    with Workspace.open(rich.root, "default") as ws:
        hits = ws.search("password")
    assert [h.document_id for h in hits] == [2, 1]
    assert hits[0].score > hits[1].score
    assert hits[1].content == "Reset your password from the account settings page."
    assert hits[1].metadata == {"n": 1, "tags": ["account", "settings"], "topic": "auth"}


def test_text_search_finds_unicode_words(rich: Migrated) -> None:
    with Workspace.open(rich.root, "default") as ws:
        assert [h.document_id for h in ws.search("שלום")] == [5]
        assert [h.document_id for h in ws.search("مرحبا")] == [5]
        assert [h.document_id for h in ws.search("日本語のテキスト")] == [5]
        assert [h.document_id for h in ws.search("中文内容")] == [5]
    with Workspace.open(rich.root, "工作区 🦀 עברית عربي") as ws:
        assert [h.document_id for h in ws.search("工作区")] == [50]


def test_vector_search_ranks_by_cosine_similarity(rich: Migrated) -> None:
    with Workspace.open(rich.root, "default") as ws:
        hits = ws.search(vector=QUERY_VECTOR, k=3)
    assert [h.document_id for h in hits] == [3, 1, 5]
    assert hits[0].score == pytest.approx(1 / math.sqrt(1.01), abs=2e-3)
    assert hits[1].score == pytest.approx(1 / math.sqrt(1.25), abs=2e-3)
    assert hits[0].content == "Vectors near the north star."


def test_vector_search_returns_each_document_once(rich: Migrated) -> None:
    with Workspace.open(rich.root, "default") as ws:
        hits = ws.search(vector=[0.0, 0.0, 0.0, 1.0, 0.0, 0.0], k=10)
    ids = [h.document_id for h in hits]
    assert len(ids) == len(set(ids)) == 8  # the eight documents of `default` that have vectors
    assert ids[:2] == [1, 7]  # cosine 1 (document 1's second vector), then 0.995
    assert ids.count(1) == 1  # document 1 has three vectors


def test_hybrid_search_fuses_both_rankings_with_reciprocal_rank_fusion(rich: Migrated) -> None:
    # text "password": [2, 1]; vector: [3, 1, 5, 6, 7, 9, 8, 2] -> 1 is second in both lists
    with Workspace.open(rich.root, "default") as ws:
        hits = ws.search("password", vector=QUERY_VECTOR, k=3)
    assert [h.document_id for h in hits] == [1, 2, 3]
    assert [h.score for h in hits] == pytest.approx([1 / 62 + 1 / 62, 1 / 61 + 1 / 68, 1 / 61])


# ---------------------------------------------------------------------------------------------
# column types and dimensions: vector(1), vector(2000), halfvec, unconstrained vector


def special_2000() -> list[float]:
    rng = np.random.default_rng(2000)
    values = rng.normal(size=2000).astype(np.float32)
    values[:6] = [3.4028234663852886e38, -3.4028234663852886e38, 1.1754943508222875e-38, -0.0, 0.0, 1e-20]
    return [float(x) for x in values]


@dataclass(frozen=True)
class ColumnCase:
    column: str  # vectors.embedding type
    dimension: int  # what the workspace records
    vectors: list[list[float]]  # as given to PostgreSQL
    expected: list[list[float]]  # the float32 values the workspace must hold


COLUMN_CASES = {
    "vector(1)": ColumnCase("vector(1)", 1, [[1.0], [-3.5], [0.0], [1e-30]], [[1.0], [-3.5], [0.0], [1e-30]]),
    "vector(2000)": ColumnCase("vector(2000)", 2000, [special_2000(), [0.0] * 2000], [special_2000(), [0.0] * 2000]),
    "halfvec(4)": ColumnCase(
        "halfvec(4)",
        4,
        [[0.1, 1 / 3, 65504.0, -6e-8], [0.0, 0.0, 0.0, 0.0], [1.0, -1.0, 2.5, -0.0]],
        [
            [0.0999755859375, 0.333251953125, 65504.0, -5.960464477539063e-08],
            [0.0, 0.0, 0.0, 0.0],
            [1.0, -1.0, 2.5, -0.0],
        ],
    ),
    "vector (no dimension)": ColumnCase(
        "vector",
        5,
        [[1.0, 2.0, 3.0, 4.0, 5.0], [0.5, -0.25, 0.0, 1e-3, 7.0]],
        [[1, 2, 3, 4, 5], [0.5, -0.25, 0, 1e-3, 7]],
    ),
}


@pytest.mark.parametrize("case", COLUMN_CASES.values(), ids=COLUMN_CASES.keys())
def test_embeddings_of_each_column_type_and_dimension_are_float32_copies(
    pg: PgStore, root: Path, case: ColumnCase
) -> None:
    vector_type, _, dimension = case.column.partition("(")
    pg.create_schema(dimension=int(dimension.rstrip(")")) if dimension else None, vector_type=vector_type)
    (doc,) = pg.add_documents(
        [{"workspace_id": "default", "content": "one document, several vectors", "metadata": None}]
    )
    ids = pg.add_vectors({"document_id": doc, "embedding": v} for v in case.vectors)

    report = migrate(pg.url, root, MigrateOptions(workspaces=("default",)))

    db = root / "workspaces" / "default" / "workspace.db"
    copied = dict(query(db, "SELECT id, embedding FROM vectors"))
    assert copied == {i: float32_bytes(values) for i, values in zip(ids, case.expected, strict=True)}
    assert copied == pg_embeddings(pg)
    assert query(db, "SELECT DISTINCT length(embedding) / 4 FROM vectors") == [(case.dimension,)]
    assert json.loads(query(db, "SELECT value FROM metadata WHERE key = 'vector_dimension'")[0][0]) == case.dimension
    assert report.workspaces[0].dimension == case.dimension
    index = Index.restore(str(root / "workspaces" / "default" / "index.usearch"))
    assert index is not None
    assert index.ndim == case.dimension
    assert sorted(int(k) for k in index.keys) == sorted(ids)


def test_hnsw_parameters_given_are_used_and_recorded(pg: PgStore, root: Path) -> None:
    pg.create_schema(dimension=8)
    docs = pg.add_documents({"workspace_id": "default", "content": f"document {i}"} for i in range(40))
    rng = np.random.default_rng(8)
    pg.add_vectors({"document_id": d, "embedding": rng.normal(size=8).tolist()} for d in docs)
    params = HnswParams(m=8, ef_construction=64, ef_search=24, dtype="f32")

    migrate(pg.url, root, MigrateOptions(workspaces=("default",), hnsw=params))

    db = root / "workspaces" / "default" / "workspace.db"
    meta = dict(query(db, "SELECT key, value FROM metadata WHERE key LIKE 'hnsw%'"))
    assert {k: meta[k] for k in ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "hnsw_metric", "hnsw_dtype")} == {
        "hnsw_m": "8",
        "hnsw_ef_construction": "64",
        "hnsw_ef_search": "24",
        "hnsw_metric": '"cos"',
        "hnsw_dtype": '"f32"',
    }
    index = Index.restore(str(root / "workspaces" / "default" / "index.usearch"))
    assert index is not None
    assert index.connectivity == 8
    assert index.dtype.name == "F32"
    assert index.metric == MetricKind.Cos
    assert len(index) == 40


# ---------------------------------------------------------------------------------------------
# HNSW recall against exact cosine search on a few thousand clustered vectors

RECALL_VECTORS = 3000
RECALL_DIM = 64


@dataclass(frozen=True)
class RecallStore:
    pg: PgStore
    root: Path
    embeddings: np.ndarray  # as given to PostgreSQL, row i = vector id i + 1


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"pg{v}" if v else "pg")
def recall_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecallStore]:
    rng = np.random.default_rng(64)
    centres = rng.normal(size=(40, RECALL_DIM)).astype(np.float32)
    cluster = rng.integers(0, len(centres), RECALL_VECTORS)
    embeddings = (centres[cluster] + rng.normal(scale=0.5, size=(RECALL_VECTORS, RECALL_DIM))).astype(np.float32)
    with fresh_store(request.param) as pg:
        pg.create_schema(dimension=RECALL_DIM)
        with psycopg.connect(pg.url, autocommit=True) as conn, conn.cursor() as cur:
            with cur.copy("COPY documents (id, workspace_id, content) FROM STDIN") as copy:
                for i in range(1, RECALL_VECTORS // 2 + 1):
                    copy.write_row((i, "recall", f"document {i} of cluster {cluster[i - 1]}"))
            with cur.copy("COPY vectors (id, document_id, embedding) FROM STDIN") as copy:
                for i, values in enumerate(embeddings.tolist(), start=1):
                    copy.write_row((i, (i - 1) // 2 + 1, "[" + ",".join(map(repr, values)) + "]"))
        root = tmp_path_factory.mktemp("recall") / "clawfs"
        migrate(pg.url, root, MigrateOptions(workspaces=("recall",), batch_size=256))
        yield RecallStore(pg, root, embeddings)


def test_many_batches_of_vectors_are_copied_bit_exactly(recall_store: RecallStore) -> None:
    db = recall_store.root / "workspaces" / "recall" / "workspace.db"
    copied = dict(query(db, "SELECT id, embedding FROM vectors"))
    assert copied == {i + 1: row.astype("<f4").tobytes() for i, row in enumerate(recall_store.embeddings)}
    assert copied == pg_embeddings(recall_store.pg)


def test_hnsw_top_10_matches_exact_cosine_search(recall_store: RecallStore) -> None:
    path = recall_store.root / "workspaces" / "recall" / "index.usearch"
    index = Index.restore(str(path))
    assert index is not None
    assert sorted(int(k) for k in index.keys) == list(range(1, RECALL_VECTORS + 1))
    db = recall_store.root / "workspaces" / "recall" / "workspace.db"
    (ef_search,) = query(db, "SELECT value FROM metadata WHERE key = 'hnsw_ef_search'")[0]
    index.expansion_search = int(ef_search)

    stored = recall_store.embeddings
    unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
    sample = np.random.default_rng(10).choice(RECALL_VECTORS, size=50, replace=False)
    found = 0
    for row in sample:
        exact = set((np.argsort(-(unit @ unit[row]), kind="stable")[:10] + 1).tolist())
        approximate = {int(k) for k in index.search(stored[row], 10).keys}
        found += len(exact & approximate)
    assert found / (10 * len(sample)) >= 0.95


def test_workspace_vector_search_finds_the_document_of_a_stored_vector(recall_store: RecallStore) -> None:
    with Workspace.open(recall_store.root, "recall") as ws:
        for vector_id in (1, 2, 1500, 2999, 3000):
            hits = ws.search(vector=recall_store.embeddings[vector_id - 1].tolist(), k=5)
            assert hits[0].document_id == (vector_id - 1) // 2 + 1
            assert hits[0].score == pytest.approx(1.0, abs=1e-3)
            assert len({h.document_id for h in hits}) == len(hits) == 5
