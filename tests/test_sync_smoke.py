"""clawfs sync: changes made in PostgreSQL after the migration reach the workspaces (smoke level)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clawfs import MigrateOptions, SyncOptions, VerifyOptions, Workspace, migrate, sync, verify
from cli_runner import fill_store, run_cli
from pgstore import PgStore


def test_sync_applies_inserts_updates_deletes_metadata_and_identities(pg: PgStore, root: Path) -> None:
    fill_store(pg, workspaces=("default", "ops"), documents=5, identities=("agent-1", "agent-2"))
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    new = pg.add_documents([{"workspace_id": "default", "content": "zebra crossing", "metadata": None}])[0]
    pg.add_vectors([{"document_id": new, "embedding": [9.0, 9.0, 1.0]}])
    pg.sql("UPDATE documents SET content = 'giraffe neck' WHERE id = 2")
    pg.sql("UPDATE vectors SET embedding = '[0.1, 7.0, 3.0]' WHERE document_id = 3")
    pg.sql("DELETE FROM vectors WHERE document_id = 4")
    pg.sql("DELETE FROM documents WHERE id = 4")
    pg.sql("UPDATE documents SET workspace_id = 'ops' WHERE id = 5")
    pg.sql("UPDATE metadata SET value = '\"model-2\"' WHERE key = 'embedding_model'")
    pg.sql("INSERT INTO metadata VALUES ('new_key', '[1, 2]')")
    pg.sql("UPDATE agent_identities SET version = 7 WHERE agent_id = 'agent-1'")
    pg.sql("DELETE FROM agent_identities WHERE agent_id = 'agent-2'")

    report = sync(pg.url, root, SyncOptions(all_workspaces=True))

    assert report.changes > 0
    checked = verify(pg.url, root, VerifyOptions(all_workspaces=True))
    assert checked.errors == ()
    with Workspace.open(root, "default") as ws:
        assert [h.document_id for h in ws.search("zebra")] == [new]
        assert [h.document_id for h in ws.search("giraffe")] == [2]
        assert ws.search(vector=[9.0, 9.0, 1.0], k=1)[0].document_id == new
        assert ws.search(vector=[0.1, 7.0, 3.0], k=1)[0].document_id == 3
        assert ws.check() == []
        assert ws.metadata["embedding_model"] == "model-2"
    with Workspace.open(root, "ops") as ws:
        assert 5 in {h.document_id for h in ws.search("note")}
    assert json.loads((root / "agents" / "agent-1" / "identity.json").read_text())["version"] == 7
    assert not (root / "agents" / "agent-2").exists()
    again = sync(pg.url, root, SyncOptions(all_workspaces=True))
    assert again.changes == 0


def test_sync_after_a_migration_that_skipped_bad_rows(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, documents=3)
    pg.sql("ALTER TABLE vectors ALTER COLUMN created_at DROP NOT NULL")
    pg.sql("UPDATE vectors SET created_at = NULL WHERE id = 2")
    migrate(pg.url, root, MigrateOptions(all_workspaces=True, on_bad_row="skip"))
    new = pg.add_documents([{"workspace_id": "default", "content": "zebra crossing", "metadata": None}])[0]

    refused = run_cli(capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces")
    assert refused.code == 4 and len(refused.error_lines) == 1
    assert "vectors" in refused.error and "2" in refused.error

    done = run_cli(capsys, "sync", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--on-bad-row", "skip")
    assert done.code == 0, done.stderr
    assert "skipped (bad row): vectors id 2" in done.stdout
    with Workspace.open(root, "default") as ws:
        assert [h.document_id for h in ws.search("zebra")] == [new]
        assert ws.check() == []
    again = sync(pg.url, root, SyncOptions(all_workspaces=True, on_bad_row="skip"))
    assert again.changes == 0 and [(r.table, r.id) for r in again.skipped] == [("vectors", 2)]
