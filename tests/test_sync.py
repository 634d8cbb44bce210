"""clawfs sync (DESIGN §3 "In sync until cutover", §4; issue 5): what PostgreSQL changed after the migration
reaches the workspaces — inserts, updates, deletes (with ON DELETE CASCADE), embedding, metadata and identity
changes — once or with --follow, with a SELECT-only role, and safely when killed or cut off mid-way.

After every sync the copy is compared exactly: `verify` (row checksums, metadata, identities, search) finds
nothing, the document and vector rows of each workspace.db equal PostgreSQL's (content, metadata text,
created_at text, embedding bytes, all formatted here independently of clawfs), the source metadata rows are
there, search finds new content and not deleted content, and `Workspace.check()` is clean.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql

from clawfs import (
    MigrateOptions,
    SyncOptions,
    SyncReport,
    VerifyOptions,
    Workspace,
    migrate,
    sync,
    sync_setup,
    sync_teardown,
    verify,
)
from clawfs._checksum import checksum_record, total
from clawfs.errors import WorkspaceError
from clawfs.workspace import CLAWFS_METADATA_KEYS, WorkspaceFiles
from cli_runner import (
    ERROR_PREFIX,
    Result,
    ctrl_c_interrupts,
    files_under,
    fill_large_store,
    fill_store,
    quiet_fingerprint,
    run_cli,
)
from pgstore import PgStore, with_database

SECRET_MARK = "s3cr3t"
PASSWORD = "Zx7-pw-s3cr3t-sync"
REPORT_KEYS = {
    "method",
    "retained_wal_bytes",
    "more_waiting",
    "source",
    "snapshot",
    "workspaces",
    "identities_written",
    "identities_removed",
    "notes",
    "seconds",
    "changes",
    "lag_wal_bytes",
    "lag_seconds",
    "skipped",
}

# -- exact comparison of PostgreSQL and the workspaces ----------------------------------------------------


def ts_text(column: str) -> str:
    """DESIGN §2.2's timestamp text, formatted by PostgreSQL here (independently of clawfs' own SQL)."""
    return (
        f"CASE WHEN {column} = 'infinity' THEN 'infinity' WHEN {column} = '-infinity' THEN '-infinity'"
        f" ELSE to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') END"
    )


def pg_query(pg: PgStore, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """A binary-format query: float4 arrays arrive as exact floats."""
    with psycopg.connect(pg.url, autocommit=True) as conn, conn.cursor(binary=True) as cur:
        cur.execute(query, params)  # type: ignore[arg-type]
        return [tuple(r) for r in cur.fetchall()]


def pg_documents(pg: PgStore, workspace: str) -> list[tuple[Any, ...]]:
    return pg_query(
        pg,
        f"SELECT id::int8, workspace_id, content, metadata::text, {ts_text('created_at')}"
        " FROM documents WHERE workspace_id = %s ORDER BY id",
        [workspace],
    )


def pg_vectors(pg: PgStore, workspace: str) -> list[tuple[Any, ...]]:
    rows = pg_query(
        pg,
        f"SELECT v.id::int8, v.document_id::int8, v.embedding::real[], {ts_text('v.created_at')}"
        " FROM vectors v JOIN documents d ON d.id = v.document_id WHERE d.workspace_id = %s ORDER BY v.id",
        [workspace],
    )
    return [(i, d, np.asarray(e, dtype="<f4").tobytes(), c) for i, d, e, c in rows]


def pg_workspaces(pg: PgStore) -> list[str]:
    return [r[0] for r in pg.sql("SELECT DISTINCT workspace_id FROM documents ORDER BY 1")]


def ws_db(root: Path, workspace: str) -> Path:
    return root / "workspaces" / workspace / "workspace.db"


def sqlite_rows(db: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(query)]
    finally:
        conn.close()


def ws_documents(db: Path) -> list[tuple[Any, ...]]:
    return sqlite_rows(db, "SELECT id, workspace_id, content, metadata, created_at FROM document_store ORDER BY id")


def ws_vectors(db: Path) -> list[tuple[Any, ...]]:
    return sqlite_rows(db, "SELECT id, document_id, embedding, created_at FROM vectors ORDER BY id")


def assert_rows_equal(pg: PgStore, db: Path, workspace: str) -> None:
    assert ws_documents(db) == pg_documents(pg, workspace), f"documents of {workspace!r} differ"
    assert ws_vectors(db) == pg_vectors(pg, workspace), f"vectors of {workspace!r} differ"
    source = dict(pg.sql("SELECT key, value::text FROM metadata"))
    ours = dict(sqlite_rows(db, "SELECT key, value FROM metadata"))
    assert {k: v for k, v in ours.items() if k not in CLAWFS_METADATA_KEYS} == {
        k: v for k, v in source.items() if k not in CLAWFS_METADATA_KEYS
    }
    assert ours["embedding_model"] == source.get("embedding_model", "null")


def assert_in_sync(pg: PgStore, root: Path) -> None:
    """verify finds nothing; rows equal PostgreSQL's; every workspace passes its own check."""
    checked = verify(pg.url, root, VerifyOptions(all_workspaces=True))
    assert checked.errors == ()
    for workspace in pg_workspaces(pg):
        db = ws_db(root, workspace)
        assert_rows_equal(pg, db, workspace)
        with Workspace.open(db) as ws:
            assert ws.check() == []
        files = WorkspaceFiles(db)  # the counts and checksums the workspace records are its own
        try:
            recorded = files.metadata()
            ranges = {t: files.range_checksums(t) for t in ("documents", "vectors")}
            assert json.loads(recorded["checksums"]) == checksum_record(ranges)
            assert json.loads(recorded["document_count"]) == total(ranges["documents"]).rows
            assert json.loads(recorded["vector_count"]) == total(ranges["vectors"]).rows
        finally:
            files.close()


def sync_all(url: str, root: Path, **options: Any) -> SyncReport:
    return sync(url, root, SyncOptions(all_workspaces=True, **options))


def counts(report: SyncReport) -> dict[str, dict[str, tuple[int, int, int]]]:
    """workspace -> table -> (inserted, updated, deleted), as the report gives them."""
    return {w.workspace_id: {t.table: (t.inserted, t.updated, t.deleted) for t in w.tables} for w in report.workspaces}


def none_changed(*workspaces: str) -> dict[str, dict[str, tuple[int, int, int]]]:
    return {w: {"documents": (0, 0, 0), "vectors": (0, 0, 0)} for w in workspaces}


def metadata_changed(report: SyncReport) -> dict[str, int]:
    return {w.workspace_id: w.metadata_changed for w in report.workspaces}


def text_hits(root: Path, workspace: str, text: str) -> list[int]:
    with Workspace.open(root, workspace) as ws:
        return [h.document_id for h in ws.search(text, k=20)]


def vector_hits(root: Path, workspace: str, vector: list[float], k: int = 20) -> list[int]:
    with Workspace.open(root, workspace) as ws:
        return [h.document_id for h in ws.search(vector=vector, k=k)]


def migrated_store(pg: PgStore, root: Path, documents: int = 5) -> None:
    """Workspaces `default` (documents 1..5, vectors 1..5) and `ops` (6..10), agents agent-1 and agent-2."""
    fill_store(pg, workspaces=("default", "ops"), documents=documents, identities=("agent-1", "agent-2"))
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))


# -- 1. every kind of change ----------------------------------------------------------------------------


def test_inserts_updates_deletes_embeddings_metadata_and_identities_are_applied_exactly(
    pg: PgStore, root: Path
) -> None:
    migrated_store(pg, root)

    # inserts: documents with one, two and no vectors
    zebra, bare = pg.add_documents(
        [
            {"workspace_id": "default", "content": "zebra crossing at dawn", "metadata": '{"tag": "new"}'},
            {"workspace_id": "default", "content": "walrus without vectors", "metadata": None},
        ]
    )
    (okapi,) = pg.add_documents([{"workspace_id": "ops", "content": "okapi sighting report", "metadata": None}])
    pg.add_vectors(
        [
            {"document_id": zebra, "embedding": [9.0, 9.0, 1.0]},
            {"document_id": okapi, "embedding": [-5.0, 2.0, 7.0]},
            {"document_id": okapi, "embedding": [-5.0, 2.0, 8.0]},
        ]
    )
    report = sync_all(pg.url, root)
    assert counts(report) == {
        "default": {"documents": (2, 0, 0), "vectors": (1, 0, 0)},
        "ops": {"documents": (1, 0, 0), "vectors": (2, 0, 0)},
    }
    assert metadata_changed(report) == {"default": 0, "ops": 0}
    assert (report.identities_written, report.identities_removed, report.changes) == (0, 0, 6)
    assert all(w.in_sync for w in report.workspaces)
    assert_in_sync(pg, root)
    assert text_hits(root, "default", "zebra") == [zebra]
    assert text_hits(root, "default", "walrus") == [bare]
    assert text_hits(root, "ops", "okapi") == [okapi]
    assert vector_hits(root, "default", [9.0, 9.0, 1.0], k=1) == [zebra]
    assert vector_hits(root, "ops", [-5.0, 2.0, 7.5], k=1) == [okapi]
    assert vector_hits(root, "ops", [-5.0, 2.0, 7.5]).count(okapi) == 1  # two vectors, one hit

    # updates: content, metadata (to other JSON and to NULL), created_at; updated_at alone is no change
    pg.sql("UPDATE documents SET content = 'giraffe neck stretch' WHERE id = 2")
    pg.sql("""UPDATE documents SET metadata = '{"n": 2, "label": "relabelled"}' WHERE id = 3""")
    pg.sql("UPDATE documents SET created_at = '2001-02-03 04:05:06.789012+00' WHERE id = 4")
    pg.sql("UPDATE documents SET metadata = NULL WHERE id = 7")
    pg.sql("UPDATE documents SET updated_at = now() + interval '1 day' WHERE id = 8")
    report = sync_all(pg.url, root)
    assert counts(report) == {
        "default": {"documents": (0, 3, 0), "vectors": (0, 0, 0)},
        "ops": {"documents": (0, 1, 0), "vectors": (0, 0, 0)},
    }
    assert report.changes == 4
    assert_in_sync(pg, root)
    assert text_hits(root, "default", "giraffe") == [2]
    assert sorted(text_hits(root, "default", "password")) == [1, 3, 4, 5]  # doc 2's old text is gone
    assert sqlite_rows(ws_db(root, "default"), "SELECT created_at FROM document_store WHERE id = 4") == [
        ("2001-02-03T04:05:06.789012Z",)
    ]
    assert sqlite_rows(ws_db(root, "ops"), "SELECT metadata FROM document_store WHERE id = 7") == [(None,)]

    # embeddings: one changed, one vector moved to another document, a document given two more vectors
    pg.sql("UPDATE vectors SET embedding = '[0.1, 7.0, 3.0]' WHERE id = 1")
    pg.sql("UPDATE vectors SET document_id = 2 WHERE id = 3")  # doc 3's vector [1.0, 2.5, 0.25] now doc 2's
    pg.add_vectors([{"document_id": 5, "embedding": [-3.0, -3.0, 9.0]}, {"document_id": 5, "embedding": [-3, -2, 9]}])
    report = sync_all(pg.url, root)
    assert counts(report) == {"default": {"documents": (0, 0, 0), "vectors": (2, 2, 0)}, **none_changed("ops")}
    assert_in_sync(pg, root)
    assert vector_hits(root, "default", [0.1, 7.0, 3.0], k=1) == [1]
    assert vector_hits(root, "default", [-3.0, -3.0, 9.0], k=1) == [5]
    assert vector_hits(root, "default", [-3.0, -2.5, 9.0]).count(5) == 1
    assert vector_hits(root, "default", [1.0, 2.5, 0.25], k=1) == [2]
    assert 3 not in vector_hits(root, "default", [1.0, 2.5, 0.25])  # doc 3 has no vector any more

    # deletes: a lone vector, documents whose vectors go with them (ON DELETE CASCADE), one without vectors
    pg.sql("DELETE FROM vectors WHERE id = 4")
    pg.sql("DELETE FROM documents WHERE id = 2")  # cascades to vectors 2 and 3
    pg.sql("DELETE FROM documents WHERE id = %s", [bare])
    pg.sql("DELETE FROM documents WHERE id = %s", [okapi])  # cascades to its two vectors
    assert pg.sql("SELECT count(*) FROM vectors WHERE document_id IN (2, %s) OR id = 3", [okapi]) == [(0,)]
    report = sync_all(pg.url, root)
    assert counts(report) == {
        "default": {"documents": (0, 0, 2), "vectors": (0, 0, 3)},
        "ops": {"documents": (0, 0, 1), "vectors": (0, 0, 2)},
    }
    assert report.changes == 8
    assert_in_sync(pg, root)
    assert text_hits(root, "default", "giraffe") == []
    assert text_hits(root, "default", "walrus") == []
    assert text_hits(root, "ops", "okapi") == []
    assert okapi not in vector_hits(root, "ops", [-5.0, 2.0, 7.5])
    assert not {2, 4} & set(vector_hits(root, "default", [1.0, 2.0, 0.25]))
    assert text_hits(root, "default", "zebra") == [zebra]

    # metadata rows: added and changed, then removed and changed
    pg.add_metadata({"team": '"search"', "limits": '{"max": 10}'})
    pg.sql("""UPDATE metadata SET value = '"model-2"' WHERE key = 'embedding_model'""")
    report = sync_all(pg.url, root)
    assert counts(report) == none_changed("default", "ops")
    assert metadata_changed(report) == {"default": 3, "ops": 3}
    assert_in_sync(pg, root)
    pg.sql("DELETE FROM metadata WHERE key IN ('team', 'embedding_model')")
    pg.sql("""UPDATE metadata SET value = '{"max": 20}' WHERE key = 'limits'""")
    report = sync_all(pg.url, root)
    assert metadata_changed(report) == {"default": 3, "ops": 3}
    assert_in_sync(pg, root)
    for workspace in ("default", "ops"):
        with Workspace.open(root, workspace) as ws:
            assert "team" not in ws.metadata
            assert ws.metadata["limits"] == {"max": 20}
            assert ws.metadata["embedding_model"] is None

    # identity rows: one added (an id that needs encoding), one changed, one removed
    pg.add_identity("team/a.b", version=3)
    pg.sql(
        """UPDATE agent_identities SET version = 7, state = state || '{"mood": "calm"}' WHERE agent_id = 'agent-1'"""
    )
    pg.sql("DELETE FROM agent_identities WHERE agent_id = 'agent-2'")
    report = sync_all(pg.url, root)
    assert counts(report) == none_changed("default", "ops")
    assert (report.identities_written, report.identities_removed, report.changes) == (2, 1, 3)
    assert_in_sync(pg, root)
    agents = root / "agents"
    assert sorted(os.listdir(agents)) == ["agent-1", "team%2Fa%2Eb"]
    one = json.loads((agents / "agent-1" / "identity.json").read_text("utf-8"))
    assert (one["version"], one["state"]["mood"]) == (7, "calm")
    new = agents / "team%2Fa%2Eb" / "identity.json"
    assert json.loads(new.read_text("utf-8"))["agent_id"] == "team/a.b"
    assert stat.S_IMODE(new.stat().st_mode) == 0o600

    assert sync_all(pg.url, root).changes == 0


# -- 2. transactions, moves, odd values ----------------------------------------------------------------------


def test_a_row_changed_twice_in_one_transaction_ends_as_committed(pg: PgStore, root: Path) -> None:
    migrated_store(pg, root, documents=3)
    with psycopg.connect(pg.url) as conn:  # one transaction, committed on leaving the block
        conn.execute("UPDATE documents SET content = 'first draft about lemons' WHERE id = 1")
        conn.execute("UPDATE documents SET content = 'second draft about kiwis' WHERE id = 1")
        conn.execute("UPDATE vectors SET embedding = '[5, 5, 5]' WHERE id = 1")
        conn.execute("UPDATE vectors SET embedding = '[6, -1, 2]' WHERE id = 1")
        gone = conn.execute(
            "INSERT INTO documents (workspace_id, content) VALUES ('default', 'short lived') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO vectors (document_id, embedding) VALUES (%s, '[1, 1, 1]')", [gone])
        conn.execute("DELETE FROM documents WHERE id = %s", [gone])
        mango = conn.execute(
            "INSERT INTO documents (workspace_id, content) VALUES ('default', 'unripe papaya') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE documents SET content = 'ripe mango' WHERE id = %s", [mango])

    report = sync_all(pg.url, root)

    assert counts(report) == {"default": {"documents": (1, 1, 0), "vectors": (0, 1, 0)}, **none_changed("ops")}
    assert_in_sync(pg, root)
    assert text_hits(root, "default", "kiwis") == [1]
    assert text_hits(root, "default", "lemons") == []
    assert text_hits(root, "default", "short lived") == []
    assert text_hits(root, "default", "papaya") == []
    assert text_hits(root, "default", "mango") == [mango]
    assert vector_hits(root, "default", [6.0, -1.0, 2.0], k=1) == [1]


def test_a_rolled_back_transaction_changes_nothing(pg: PgStore, root: Path) -> None:
    migrated_store(pg, root, documents=3)
    before = {w: (ws_documents(ws_db(root, w)), ws_vectors(ws_db(root, w))) for w in ("default", "ops")}
    with psycopg.connect(pg.url) as conn:
        conn.execute("UPDATE documents SET content = 'rolled back text' WHERE id = 2")
        conn.execute("UPDATE vectors SET embedding = '[3, 3, 3]' WHERE id = 2")
        conn.execute("DELETE FROM documents WHERE id = 3")
        conn.execute("INSERT INTO documents (workspace_id, content) VALUES ('ops', 'phantom row')")
        conn.execute("DELETE FROM agent_identities")
        conn.execute("""INSERT INTO metadata VALUES ('phantom', '"yes"')""")
        conn.rollback()

    report = sync_all(pg.url, root)

    assert counts(report) == none_changed("default", "ops")
    assert report.changes == 0
    assert_in_sync(pg, root)
    assert {w: (ws_documents(ws_db(root, w)), ws_vectors(ws_db(root, w))) for w in ("default", "ops")} == before
    assert text_hits(root, "default", "rolled") == []
    assert text_hits(root, "ops", "phantom") == []


def test_a_document_moved_to_another_workspace_takes_its_vectors(pg: PgStore, root: Path) -> None:
    migrated_store(pg, root, documents=3)
    pg.add_vectors([{"document_id": 2, "embedding": [-4.0, 4.0, 4.0]}])  # doc 2: vectors [1, 1.5, .25] and this
    pg.sql("UPDATE documents SET workspace_id = 'ops', content = 'moved document about otters' WHERE id = 2")

    report = sync_all(pg.url, root)

    assert counts(report) == {
        "default": {"documents": (0, 0, 1), "vectors": (0, 0, 1)},
        "ops": {"documents": (1, 0, 0), "vectors": (2, 0, 0)},
    }
    assert_in_sync(pg, root)
    assert text_hits(root, "ops", "otters") == [2]
    assert text_hits(root, "default", "otters") == []
    assert vector_hits(root, "ops", [-4.0, 4.0, 4.0], k=1) == [2]
    assert vector_hits(root, "ops", [1.0, 1.5, 0.25], k=1) == [2]
    assert 2 not in vector_hits(root, "default", [1.0, 1.5, 0.25]) + vector_hits(root, "default", [-4.0, 4.0, 4.0])
    assert sqlite_rows(ws_db(root, "default"), "SELECT count(*) FROM vectors WHERE document_id = 2") == [(0,)]


def test_unicode_null_metadata_and_infinite_timestamps(pg: PgStore, root: Path) -> None:
    migrated_store(pg, root, documents=3)
    texts = {
        "greeting": "Grüße aus Köln — naïve café, ﬁne ligatures",
        "cjk": "東京タワー の 夜景 🦀 crab",
        "rtl": "שלום עולם and مرحبا بالعالم",
        "combining": "cafe\u0301 with a combining accent, zero\u200bwidth space",
    }
    ids = pg.add_documents(
        [
            {"workspace_id": "default", "content": texts["greeting"], "metadata": '{"ключ": "значение", "e": "🦀"}'},
            {"workspace_id": "default", "content": texts["cjk"], "metadata": None, "created_at": "infinity"},
            {"workspace_id": "ops", "content": texts["rtl"], "metadata": "null", "created_at": "-infinity"},
            {"workspace_id": "ops", "content": texts["combining"], "metadata": '"just a string"', "created_at": None},
        ]
    )
    pg.add_vectors(
        [
            {"document_id": ids[0], "embedding": [0.5, -0.5, 2.0], "created_at": "infinity"},
            {"document_id": ids[2], "embedding": [1e-7, 12345.5, -1.5], "created_at": "-infinity"},
        ]
    )
    pg.sql("UPDATE documents SET metadata = NULL, created_at = 'infinity' WHERE id = 1")
    pg.sql("UPDATE vectors SET created_at = '-infinity' WHERE id = 2")

    report = sync_all(pg.url, root)

    assert counts(report) == {
        "default": {"documents": (2, 1, 0), "vectors": (1, 1, 0)},
        "ops": {"documents": (2, 0, 0), "vectors": (1, 0, 0)},
    }
    assert_in_sync(pg, root)
    docs = {r[0]: r for r in ws_documents(ws_db(root, "default")) + ws_documents(ws_db(root, "ops"))}
    assert docs[ids[0]][2:] == (texts["greeting"], '{"e": "🦀", "ключ": "значение"}', docs[ids[0]][4])
    assert docs[ids[1]][3:] == (None, "infinity")
    assert docs[ids[2]][3:] == ("null", "-infinity")  # JSON null is not SQL NULL
    assert docs[ids[3]][3:] == ('"just a string"', None)
    assert docs[1][3:] == (None, "infinity")
    assert text_hits(root, "default", "Grüße") == [ids[0]]
    assert text_hits(root, "default", "東京タワー") == [ids[1]]
    assert text_hits(root, "ops", "שלום") == [ids[2]]
    assert text_hits(root, "ops", "مرحبا") == [ids[2]]
    assert vector_hits(root, "default", [0.5, -0.5, 2.0], k=1) == [ids[0]]

    pg.sql(
        "UPDATE documents SET content = 'plain again', created_at = '2020-01-01 00:00:00+00' WHERE id = %s", [ids[1]]
    )
    report = sync_all(pg.url, root)
    assert counts(report)["default"] == {"documents": (0, 1, 0), "vectors": (0, 0, 0)}
    assert_in_sync(pg, root)
    assert text_hits(root, "default", "東京タワー") == []


@pytest.mark.parametrize("selection", ["all-workspaces", "workspace-id"])
def test_a_workspace_whose_documents_were_all_deleted_is_emptied(pg: PgStore, root: Path, selection: str) -> None:
    migrated_store(pg, root, documents=3)
    pg.sql("DELETE FROM documents WHERE workspace_id = 'ops'")  # and, by cascade, its vectors

    if selection == "all-workspaces":
        sync_all(pg.url, root)
    else:
        sync(pg.url, root, SyncOptions(workspaces=("default", "ops")))

    assert ws_documents(ws_db(root, "ops")) == []
    assert ws_vectors(ws_db(root, "ops")) == []
    assert text_hits(root, "ops", "note") == []
    with Workspace.open(root, "ops") as ws:
        assert ws.check() == []
    assert_rows_equal(pg, ws_db(root, "default"), "default")


def test_a_workspace_migrated_without_vectors_gets_its_first_ones(pg: PgStore, root: Path) -> None:
    fill_store(pg, workspaces=("default",), documents=2)
    pg.add_documents([{"workspace_id": "plain", "content": f"plain note {i}", "metadata": None} for i in range(3)])
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    assert ws_vectors(ws_db(root, "plain")) == []
    pg.sql(
        "INSERT INTO vectors (document_id, embedding)"
        " SELECT id, ('[' || id || ', 1, -1]')::vector FROM documents WHERE workspace_id = 'plain'"
    )

    report = sync_all(pg.url, root)

    assert counts(report)["plain"] == {"documents": (0, 0, 0), "vectors": (3, 0, 0)}
    assert_in_sync(pg, root)
    (last,) = pg.sql("SELECT max(id) FROM documents WHERE workspace_id = 'plain'")[0]
    assert vector_hits(root, "plain", [float(last), 1.0, -1.0], k=1) == [last]


def test_a_bad_source_row_stops_the_sync_naming_it(pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    migrated_store(pg, root, documents=2)
    (bad,) = pg.add_vectors([{"document_id": 1, "embedding": [1.0, 2.0, 3.0], "created_at": None}])

    result = run_cli(capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces")

    line = assert_one_error_line(result, 4)
    assert "vectors" in line and str(bad) in line and "created_at" in line
    for workspace in ("default", "ops"):
        with Workspace.open(root, workspace) as ws:
            assert ws.check() == []
    pg.sql("UPDATE vectors SET created_at = '2024-05-06 07:08:09+00' WHERE id = %s", [bad])
    assert run_cli(capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces").code == 0
    assert_in_sync(pg, root)


def test_a_workspace_database_named_with_sqlite_path_is_synced(
    pg: PgStore, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, workspaces=("default",), documents=3)
    db = tmp_path / "single" / "memory.db"
    migrate(pg.url, root, MigrateOptions(workspaces=("default",), sqlite_path=db))
    pg.sql("UPDATE documents SET content = 'heron by the lake' WHERE id = 1")
    pg.sql("DELETE FROM documents WHERE id = 3")
    pg.sql("UPDATE agent_identities SET version = 9")

    result = run_cli(
        capsys, "sync", "--pg-url", pg.url, "--root", root, "--workspace-id", "default", "--sqlite-path", db, "--json"
    )

    assert result.code == 0, result.stderr
    report = result.json()
    assert report["workspaces"][0]["database"] == str(db)
    assert (report["identities_written"], report["changes"]) == (0, 3)  # identity files are not synced here
    checked = verify(pg.url, root, VerifyOptions(workspaces=("default",), sqlite_path=db, identities=False))
    assert checked.errors == ()
    assert_rows_equal(pg, db, "default")
    with Workspace.open(db) as ws:
        assert [h.document_id for h in ws.search("heron")] == [1]
        assert ws.check() == []


# -- 3. idempotence ---------------------------------------------------------------------------------------------


def workspace_tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a workspace.db (FTS5 shadow tables and clawfs' own included), rows sorted."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY 1"
            )
        ]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        conn.close()


def test_a_second_sync_without_changes_reports_none_and_rewrites_nothing(pg: PgStore, root: Path) -> None:
    migrated_store(pg, root, documents=4)

    first = sync_all(pg.url, root)  # right after the migration: nothing to do either
    assert counts(first) == none_changed("default", "ops")
    assert metadata_changed(first) == {"default": 0, "ops": 0}
    assert (first.changes, first.identities_written, first.identities_removed) == (0, 0, 0)

    pg.sql("UPDATE documents SET content = 'changed once' WHERE id = 1")
    pg.sql("DELETE FROM documents WHERE id = 7")
    pg.add_vectors([{"document_id": 2, "embedding": [0.0, 1.0, -1.0]}])
    pg.sql("UPDATE agent_identities SET version = 2 WHERE agent_id = 'agent-1'")
    pg.add_metadata({"extra": "[1, 2, 3]"})
    assert sync_all(pg.url, root).changes == 7  # 3 rows, 1 vector by cascade, 1 identity, 1 key x 2
    dbs = {w: ws_db(root, w) for w in ("default", "ops")}
    tables = {w: workspace_tables(db) for w, db in dbs.items()}
    indexes = {w: (db.parent / "index.usearch").read_bytes() for w, db in dbs.items()}
    identities = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted((root / "agents").rglob("identity.json"))}

    again = sync_all(pg.url, root)

    assert counts(again) == none_changed("default", "ops")
    assert metadata_changed(again) == {"default": 0, "ops": 0}
    assert (again.changes, again.identities_written, again.identities_removed) == (0, 0, 0)
    for w, db in dbs.items():
        now = workspace_tables(db)
        assert now.keys() == tables[w].keys()
        changed = {name for name in now if now[name] != tables[w][name]}
        assert changed <= {"clawfs_sync", "metadata"}, f"{w}: {sorted(changed)} rewritten"
        old_meta, new_meta = dict(tables[w]["metadata"]), dict(now["metadata"])
        assert {k for k in new_meta.keys() | old_meta.keys() if new_meta.get(k) != old_meta.get(k)} <= {
            "source_snapshot"
        }
        assert (db.parent / "index.usearch").read_bytes() == indexes[w]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in identities} == identities
    assert_in_sync(pg, root)


# -- 4. crash safety ----------------------------------------------------------------------------------------------

LARGE = 3000  # documents (one 16-d vector each) of the interrupted syncs


def sync_status(db: Path) -> str | None:
    try:
        rows = sqlite_rows(db, "SELECT value FROM clawfs_sync WHERE key = 'status'")
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return None
        raise
    return rows[0][0] if rows else None


def start_sync(pg_url: str, root: Path, tmp_path: Path, *more: str) -> tuple[subprocess.Popen[bytes], Path]:
    err = tmp_path / f"sync-{time.monotonic_ns()}.err"
    args = ["sync", "--pg-url", pg_url, "--root", str(root), "--workspace-id", "default", "--batch-size", "100"]
    with err.open("wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clawfs", *args, "--no-identities", *more],
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
    return proc, err


def wait_for_status(proc: subprocess.Popen[bytes], db: Path, wanted: str, err: Path) -> None:
    """Until the running sync has committed a batch with `wanted` as its sync status."""
    deadline = time.monotonic() + 90
    while sync_status(db) != wanted:
        if proc.poll() is not None:
            raise AssertionError(f"sync exited ({proc.returncode}) before status {wanted!r}: {err.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"sync never reached status {wanted!r}")
        time.sleep(0.003)


def large_changed_store(pg: PgStore, root: Path) -> None:
    """3,000 documents migrated, then every document updated, half the vectors changed, 60 documents
    deleted (with their vectors) and 150 inserted with vectors."""
    fill_large_store(pg, LARGE, dimension=16)
    migrate(pg.url, root, MigrateOptions(workspaces=("default",), sample=20))
    pg.sql("UPDATE documents SET content = content || ' revised'")
    pg.sql(
        "UPDATE vectors v SET embedding = (SELECT array_agg((CASE WHEN i % 16 = (v.id + 5) % 16 THEN 1.0 ELSE 0.0 END)"
        " + 0.3 * random()) FROM generate_series(1, 16) i)::vector WHERE v.id % 2 = 0"
    )
    pg.sql("DELETE FROM documents WHERE id % 50 = 0")
    pg.sql(
        "INSERT INTO documents (workspace_id, content) SELECT 'default', 'late arrival ' || g"
        " FROM generate_series(1, 150) g"
    )
    pg.sql(
        "INSERT INTO vectors (document_id, embedding) SELECT d.id, (SELECT array_agg((CASE WHEN i % 16 = d.id % 16"
        " THEN 1.0 ELSE 0.0 END) + 0.3 * random()) FROM generate_series(1, 16) i)::vector"
        " FROM documents d WHERE d.content LIKE 'late arrival %'"
    )


def still_different(pg: PgStore, db: Path) -> dict[str, tuple[int, int, int]]:
    """(to insert, to update, to delete) per table: what a sync must still do, found by comparing rows."""
    out = {}
    for table, theirs, ours in (
        ("documents", pg_documents(pg, "default"), ws_documents(db)),
        ("vectors", pg_vectors(pg, "default"), ws_vectors(db)),
    ):
        t, o = {r[0]: r for r in theirs}, {r[0]: r for r in ours}
        out[table] = (len(t.keys() - o.keys()), sum(1 for i in t.keys() & o.keys() if t[i] != o[i]), len(o.keys() - t))
    return out


def test_a_sync_killed_mid_way_is_completed_by_the_next_one_nothing_applied_twice(
    pg: PgStore, root: Path, tmp_path: Path
) -> None:
    large_changed_store(pg, root)
    db = ws_db(root, "default")

    for phase in ("documents", "vectors"):  # kill -9 once while documents are applied, once during vectors
        proc, err = start_sync(pg.url, root, tmp_path)
        wait_for_status(proc, db, phase, err)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        assert sync_status(db) in ("documents", "vectors"), "the sync was not interrupted mid-way"
        with Workspace.open(db) as ws:
            assert ws.check() == []
    remaining = still_different(pg, db)
    revised = sqlite_rows(db, "SELECT count(*) FROM document_store WHERE content LIKE '% revised'")[0][0]
    assert revised > 0  # the first run's batches survived the kill

    report = sync(pg.url, root, SyncOptions(workspaces=("default",), batch_size=100, identities=False))

    assert counts(report) == {"default": remaining}  # what still differed, each row once
    assert report.workspaces[0].in_sync
    assert sync_status(db) == "done"
    assert_in_sync(pg, root)
    (late,) = pg.sql("SELECT id FROM documents WHERE content = 'late arrival 77'")
    assert text_hits(root, "default", "late arrival 77")[0] == late[0]
    assert sync(pg.url, root, SyncOptions(workspaces=("default",), identities=False)).changes == 0


@pytest.mark.parametrize("moment", ["documents", "done"], ids=["while-reading", "after-the-last-read"])
def test_a_sync_whose_connection_is_terminated_exits_4_and_leaves_the_workspace_consistent(
    pg: PgStore, root: Path, tmp_path: Path, moment: str
) -> None:
    """`documents`: while batches are still being read; `done`: every row read and applied, the
    connection still open (the run then closes the workspace, folding its index changes into the file)."""
    large_changed_store(pg, root)
    db = ws_db(root, "default")
    proc, err = start_sync(pg.url, root, tmp_path)
    wait_for_status(proc, db, moment, err)

    terminated = pg.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = 'clawfs'"
    )

    assert terminated == [(True,)], "the sync had already ended"
    code = proc.wait(timeout=60)
    stderr = err.read_text()
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith(ERROR_PREFIX)]
    if moment == "documents":
        assert code == 4, stderr
        assert still_different(pg, db) != {"documents": (0, 0, 0), "vectors": (0, 0, 0)}
    else:  # the work was done: success, or exit 4 for the lost connection, but never "unexpected error"
        assert code in (0, 4), stderr
    if code == 4:
        assert len(errors) == 1 and errors[0] == stderr.rstrip("\n").splitlines()[-1], stderr
        assert "terminat" in errors[0] or "closed" in errors[0], errors[0]
    with Workspace.open(db) as ws:
        assert ws.check() == []

    sync(pg.url, root, SyncOptions(workspaces=("default",), identities=False))

    assert_in_sync(pg, root)


# -- 5. --follow with a concurrent writer ---------------------------------------------------------------------

FOLLOW_LINE = re.compile(
    r"^\d\d:\d\d:\d\d synced to \S+ in \d+\.\d s: (\d+) change\(s\); "
    r"lag (?:[\d,]+ bytes of WAL, )?\d+\.\d s; default: .*; ops: "
)


class Follow:
    """`clawfs sync --follow --all-workspaces` as a child process, its stdout lines collected as they come."""

    def __init__(self, pg_url: str, root: Path, tmp_path: Path, *more: str, interval: str = "0.5") -> None:
        self.err = tmp_path / "follow.err"
        args = ["sync", "--pg-url", pg_url, "--root", str(root), "--all-workspaces", "--follow", "--interval", interval]
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clawfs", *args, *more],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                encoding="utf-8",
                preexec_fn=ctrl_c_interrupts,
            )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, test: Any, start: int = 0, timeout: float = 60) -> int:
        """The index of the first line from `start` on for which `test(line)` is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in range(start, len(self.lines)):
                if test(self.lines[n]):
                    return n
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no such line; exit {self.proc.poll()}; got:\n" + "\n".join(self.lines) + self.stderr)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, then the exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        self._close()
        return code

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    def _close(self) -> None:
        self._reader.join(timeout=30)
        self.proc.stdout.close()  # type: ignore[union-attr]

    def __enter__(self) -> Follow:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()


def write_for_a_while(pg: PgStore, seconds: float, seed: int) -> int:
    """Inserts, updates, deletes, embedding, metadata and identity changes, each in its own transaction."""
    rng = random.Random(seed)
    owned = {
        w: [r[0] for r in pg.sql("SELECT id FROM documents WHERE workspace_id = %s", [w])] for w in ("default", "ops")
    }
    done = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(pg.url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            w = rng.choice(["default", "ops"])
            other = "ops" if w == "default" else "default"
            doc = rng.choice(owned[w])
            op = rng.choice(["insert", "insert", "update", "embedding", "delete", "move", "metadata", "identity"])
            vector = "[" + ",".join(f"{rng.uniform(-1, 1):.6f}" for _ in range(3)) + "]"
            with conn.transaction():
                if op == "insert":
                    new = conn.execute(
                        "INSERT INTO documents (workspace_id, content, metadata) VALUES (%s, %s, %s) RETURNING id",
                        [w, f"written while following {done} quokka{done}", json.dumps({"n": done})],
                    ).fetchone()[0]  # type: ignore[index]
                    for _ in range(rng.randint(0, 2)):
                        conn.execute("INSERT INTO vectors (document_id, embedding) VALUES (%s, %s)", [new, vector])
                    owned[w].append(new)
                elif op == "update":
                    conn.execute("UPDATE documents SET content = %s WHERE id = %s", [f"rewritten {done} ibis", doc])
                elif op == "embedding":
                    conn.execute("UPDATE vectors SET embedding = %s WHERE document_id = %s", [vector, doc])
                elif op == "delete" and len(owned[w]) > 3:
                    conn.execute("DELETE FROM documents WHERE id = %s", [doc])
                    owned[w].remove(doc)
                elif op == "move" and len(owned[w]) > 3:
                    conn.execute("UPDATE documents SET workspace_id = %s WHERE id = %s", [other, doc])
                    owned[w].remove(doc)
                    owned[other].append(doc)
                elif op == "metadata":
                    conn.execute(
                        "INSERT INTO metadata VALUES ('writer', %s::jsonb)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        [json.dumps(done)],
                    )
                elif op == "identity":
                    conn.execute("UPDATE agent_identities SET version = version + 1 WHERE agent_id = 'agent-1'")
            done += 1
            time.sleep(0.01)
    return done


def test_follow_keeps_up_with_a_concurrent_writer_and_stops_on_sigint(pg: PgStore, root: Path, tmp_path: Path) -> None:
    migrated_store(pg, root, documents=5)
    with Follow(pg.url, root, tmp_path) as follow:
        follow.wait_for(FOLLOW_LINE.match)  # the first round has run

        writes = write_for_a_while(pg, 3.0, seed=5)

        stopped_at = len(follow.lines)
        # a round that began after the writer stopped (the one running then may have started before)
        follow.wait_for(lambda line: (m := FOLLOW_LINE.match(line)) is not None and m.group(1) == "0", stopped_at + 1)
        code = follow.interrupt()
    lines, stderr = follow.lines, follow.stderr
    assert writes > 20
    assert code == 0, stderr
    assert lines[-1] == "stopped"
    rounds = lines[:-1]
    assert rounds and all(FOLLOW_LINE.match(line) for line in rounds), lines
    assert any(FOLLOW_LINE.match(line).group(1) != "0" for line in rounds)  # type: ignore[union-attr]
    assert ERROR_PREFIX not in stderr
    assert_in_sync(pg, root)
    written = pg.sql("SELECT id, workspace_id, content FROM documents WHERE content LIKE 'written while%' ORDER BY id")
    assert written  # the writer's inserts are found by their unique word, in the workspace they ended in
    for doc, workspace, content in written:
        assert text_hits(root, workspace, content.split()[-1]) == [doc]
    for doc, workspace, _ in written:
        other = "ops" if workspace == "default" else "default"
        assert doc not in text_hits(root, other, "written while following")


def test_follow_json_prints_one_report_per_line(pg: PgStore, root: Path, tmp_path: Path) -> None:
    migrated_store(pg, root, documents=2)
    with Follow(pg.url, root, tmp_path, "--json") as follow:
        first = follow.wait_for(lambda line: True)
        pg.add_documents([{"workspace_id": "ops", "content": "pelican", "metadata": None}])
        follow.wait_for(lambda line: json.loads(line)["changes"] == 1, first + 1)
        code = follow.interrupt()
    lines = follow.lines
    assert code == 0, follow.stderr
    reports = [json.loads(line) for line in lines]  # nothing but JSON lines, "stopped" not among them
    assert all(set(r) == REPORT_KEYS for r in reports)
    assert [r["changes"] for r in reports].count(1) == 1
    assert text_hits(root, "ops", "pelican") != []


# -- 6. the command line -----------------------------------------------------------------------------------------


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table, as cell texts."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        if len(cells) == 7:
            rows.append(cells[1:-1])
    return rows


def test_cli_table_and_json_reports(pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fill_store(pg, workspaces=("default", "ops"), documents=3, identities=("agent-1",))
    migrate(pg.url, root, MigrateOptions(workspaces=("default",)))
    (new,) = pg.add_documents([{"workspace_id": "default", "content": "narwhal tusk", "metadata": None}])
    pg.add_vectors([{"document_id": new, "embedding": [2.0, 2.0, 2.0]}])
    pg.sql("UPDATE documents SET content = 'updated text' WHERE id = 1")
    pg.sql("DELETE FROM documents WHERE id = 2")
    pg.add_metadata({"owner": '"team"'})
    pg.sql("UPDATE agent_identities SET version = 5")

    table = run_cli(capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces")

    assert table.code == 0, table.stderr
    assert table.stderr.count(ERROR_PREFIX) == 0
    rows = table_rows(table.stdout)
    assert rows == [
        ["Workspace", "Table", "Inserted", "Updated", "Deleted"],
        ["default", "documents", "1", "1", "1"],
        ["default", "vectors", "1", "0", "1"],
        ["default", "metadata", "", "1", ""],
    ]
    text = " ".join(table.stdout.split())
    assert "sync from " in text
    assert "identity files written: 1, removed: 0; 7 change(s)" in text
    assert "note: workspace 'ops' is new in PostgreSQL: migrate it" in text
    assert_rows_equal(pg, ws_db(root, "default"), "default")

    pg.sql("UPDATE vectors SET embedding = '[0, 0, 1]' WHERE document_id = 3")
    pg.sql("DELETE FROM metadata WHERE key = 'owner'")
    pg.sql("UPDATE agent_identities SET version = 6")
    identity = root / "agents" / "agent-1" / "identity.json"
    before = identity.read_bytes()
    args = ["sync", "--pg-url", pg.url, "--root", root, "--workspace-id", "default"]
    as_json = run_cli(capsys, *args, "--json", "--no-identities")

    assert as_json.code == 0, as_json.stderr
    report = as_json.json()
    assert set(report) == REPORT_KEYS
    assert report["changes"] == 2
    assert (report["identities_written"], report["identities_removed"], report["notes"]) == (0, 0, [])
    assert report["snapshot"]["wal_lsn"]
    (workspace,) = report["workspaces"]
    assert workspace == {
        "workspace_id": "default",
        "database": str(ws_db(root, "default")),
        "tables": [
            {"table": "documents", "inserted": 0, "updated": 0, "deleted": 0},
            {"table": "vectors", "inserted": 0, "updated": 1, "deleted": 0},
        ],
        "metadata_changed": 1,
        "in_sync": True,
    }
    assert vector_hits(root, "default", [0.0, 0.0, 1.0], k=1) == [3]
    assert identity.read_bytes() == before  # --no-identities

    last = run_cli(capsys, *args)
    assert last.code == 0, last.stderr
    assert table_rows(last.stdout)[1:] == [
        ["default", "documents", "0", "0", "0"],
        ["default", "vectors", "0", "0", "0"],
        ["default", "metadata", "", "0", ""],
    ]
    assert "identity files written: 1, removed: 0; 1 change(s)" in " ".join(last.stdout.split())
    assert json.loads(identity.read_text("utf-8"))["version"] == 6


def assert_one_error_line(result: Result, code: int) -> str:
    assert result.code == code, f"exit {result.code}, expected {code}; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    line = result.error
    assert line == result.stderr.rstrip("\n").splitlines()[-1]
    return line


@pytest.fixture
def password_url(pg: PgStore) -> Iterator[str]:
    """A URL with a password, of a role created for the test with SELECT on the store."""
    fill_store(pg, workspaces=("default", "ops"), documents=3)
    user = f"{pg.dbname}_pw"
    pg.sql(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(PASSWORD)))
    pg.sql(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(user)))
    yield with_database(pg.server_url, pg.dbname, user=user, password=PASSWORD)


def test_cli_errors_are_one_line_with_the_documented_exit_code_and_never_show_the_password(
    pg: PgStore, root: Path, password_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    migrate(pg.url, root, MigrateOptions(workspaces=("default",)))
    pg.sql("UPDATE documents SET content = 'otter' WHERE id = 1")
    outputs = []

    ok = run_cli(capsys, "sync", "--pg-url", password_url, "--root", root, "--all-workspaces", "-v")
    assert ok.code == 0, ok.stderr
    assert text_hits(root, "default", "otter") == [1]
    outputs.append(ok)

    for args in (["--workspace-id", "ops"], ["--workspace-id", "never-seen"]):  # never migrated
        for verbose in ([], ["-v"]):
            result = run_cli(capsys, "sync", "--pg-url", password_url, "--root", root, *args, *verbose)
            outputs.append(result)
            assert result.code == 5, result.stderr
            if not verbose:
                line = assert_one_error_line(result, 5)
                assert args[1] in line and "migrate" in line

    unreachable = f"postgresql://someone:{PASSWORD}@127.0.0.1:1/{pg.dbname}?connect_timeout=5"
    for verbose in ([], ["-v"]):
        result = run_cli(capsys, "sync", "--pg-url", unreachable, "--root", root, "--all-workspaces", *verbose)
        outputs.append(result)
        assert result.code == 4, result.stderr
        if not verbose:
            assert "127.0.0.1" in assert_one_error_line(result, 4)

    usage = [
        ["--workspace-id", "default", "--all-workspaces"],
        [],  # neither a workspace nor --all-workspaces
        ["--all-workspaces", "--sqlite-path", str(root / "x.db")],
        ["--workspace-id", "a", "--workspace-id", "b", "--sqlite-path", str(root / "x.db")],
        ["--all-workspaces", "--batch-size", "0"],
        ["--all-workspaces", "--follow", "--interval", "0"],
        ["--all-workspaces", "--follow", "--interval", "-1"],
        ["--all-workspaces", "--interval", "soon"],
        ["--all-workspaces", "--no-such-option"],
    ]
    for args in usage:  # found before PostgreSQL is asked: the unreachable URL gives 2, not 4
        result = run_cli(capsys, "sync", "--pg-url", unreachable, "--root", root, *args)
        outputs.append(result)
        assert_one_error_line(result, 2)

    for result in outputs:
        assert SECRET_MARK not in result.stdout + result.stderr
    for name, data in files_under(root).items():
        assert SECRET_MARK.encode() not in data, f"the password is in {name}"


# -- 7. a SELECT-only role ----------------------------------------------------------------------------------------


def test_a_select_only_role_can_sync_and_postgresql_is_not_written(pg: PgStore, root: Path) -> None:
    migrated_store(pg, root, documents=3)
    (new,) = pg.add_documents([{"workspace_id": "ops", "content": "reader sees a lynx", "metadata": None}])
    pg.add_vectors([{"document_id": new, "embedding": [0.0, -1.0, 0.0]}])
    pg.sql("UPDATE documents SET content = 'reader sees a bison' WHERE id = 1")
    pg.sql("DELETE FROM documents WHERE id = 2")
    pg.sql("UPDATE vectors SET embedding = '[7, 7, -7]' WHERE id = 3")
    pg.add_metadata({"reader": "true"})
    pg.add_identity("agent-3")
    reader = pg.reader_url()
    role = f"{pg.dbname}_reader"
    assert pg.sql("SELECT has_table_privilege(%s, 'documents', 'INSERT')", [role]) == [(False,)]
    assert role in reader
    before = quiet_fingerprint(pg)

    report = sync_all(reader, root)

    assert quiet_fingerprint(pg) == before
    assert counts(report) == {
        "default": {"documents": (0, 1, 1), "vectors": (0, 1, 1)},
        "ops": {"documents": (1, 0, 0), "vectors": (1, 0, 0)},
    }
    assert (report.identities_written, report.identities_removed) == (1, 0)
    assert_in_sync(pg, root)
    assert text_hits(root, "ops", "lynx") == [new]
    assert text_hits(root, "default", "bison") == [1]
    assert vector_hits(root, "default", [7.0, 7.0, -7.0], k=1) == [3]


@pytest.mark.parametrize("method", ["compare", "slot"])
def test_sync_refuses_a_workspace_written_through_the_api_unless_told(
    pg: PgStore, root: Path, method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The agent wrote to ClawFS: a sync would lose that write (comparison) or keep it beside PostgreSQL's
    rows (a slot). It says so and changes nothing, unless --overwrite-local-writes."""
    migrated_store(pg, root, documents=3)
    slot = sync_setup(pg.url, root).slot if method == "slot" else None
    try:
        with Workspace.open(root, "default") as ws:
            ws.update(1, content="the agent's own note")
        pg.sql("UPDATE documents SET content = 'changed in PostgreSQL' WHERE id = 2")
        db = ws_db(root, "default")
        before = sqlite_rows(db, "SELECT * FROM document_store ORDER BY id")

        refused = run_cli(capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces")

        assert "--overwrite-local-writes" in assert_one_error_line(refused, 5)
        assert "'default'" in refused.stderr
        assert sqlite_rows(db, "SELECT * FROM document_store ORDER BY id") == before
        cut = run_cli(capsys, "cutover", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--sample", "5")
        assert cut.code == 5 and "--overwrite-local-writes" in cut.stderr

        forced = run_cli(
            capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--overwrite-local-writes"
        )
        assert forced.code == 0, forced.stderr
        if method == "compare":
            assert_in_sync(pg, root)  # the agent's write is gone: PostgreSQL's row again
        assert text_hits(root, "default", "changed") == [2]
        again = run_cli(capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces")
        assert again.code == 0, again.stderr  # synced since: nothing to refuse
    finally:
        if slot is not None:
            sync_teardown(pg.url, root)


def test_an_api_write_during_a_sync_keeps_its_mark(pg: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent writes while a sync runs: the sync ends without clearing that write's mark, so the next
    sync refuses rather than overwriting the write."""
    migrated_store(pg, root, documents=3)
    real = Workspace.finish_sync
    written: list[int] = []

    def agent_writes_first(self: Workspace, *args: Any, **kwargs: Any) -> None:
        if not written:
            with Workspace.open(root, "default") as agent:
                written.append(agent.add("written by the agent mid-sync"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(Workspace, "finish_sync", agent_writes_first)
    with pytest.raises(WorkspaceError, match="still differs"):  # the file has the agent's row too
        sync(pg.url, root, SyncOptions(workspaces=("default",)))
    monkeypatch.setattr(Workspace, "finish_sync", real)

    with pytest.raises(WorkspaceError, match="--overwrite-local-writes"):
        sync(pg.url, root, SyncOptions(workspaces=("default",)))
    assert text_hits(root, "default", "agent") == written
