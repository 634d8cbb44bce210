"""clawfs cutover: final sync and verification, optionally after making PostgreSQL read-only."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from clawfs import MigrateOptions, Workspace, migrate, sync_setup, sync_teardown
from clawfs._cutover import CutoverOptions, cutover
from cli_runner import fill_store, run_cli
from pgstore import PgStore


def test_cutover_catches_up_verifies_and_says_what_to_switch(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, workspaces=("default", "ops"), documents=4)
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    new = pg.add_documents([{"workspace_id": "ops", "content": "last words before the switch", "metadata": None}])[0]
    pg.sql("DELETE FROM documents WHERE id = 1")

    result = run_cli(capsys, "cutover", "--pg-url", pg.url, "--root", root, "--all-workspaces")

    assert result.code == 0, result.stderr
    assert "Workspace.open(" in result.stdout and "'ops'" in result.stdout
    assert "read-only" not in result.stdout  # not asked for: PostgreSQL stays writable
    pg.sql("INSERT INTO metadata VALUES ('still_writable', 'true')")
    with Workspace.open(root, "ops") as ws:
        assert [h.document_id for h in ws.search("switch")] == [new]
    with Workspace.open(root, "default") as ws:
        assert 1 not in {h.document_id for h in ws.search("note")}


def test_cutover_can_make_the_source_read_only_and_prints_the_undo(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, documents=3)
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    pg.add_documents([{"workspace_id": "default", "content": "written just before cutover", "metadata": None}])

    result = run_cli(
        capsys, "cutover", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--make-source-read-only", "--json"
    )

    assert result.code == 0, result.stderr
    report = result.json()
    assert report["read_only_database"] == pg.dbname
    assert report["sync"]["workspaces"][0]["tables"][0]["inserted"] == 1
    assert report["verification"]["errors"] == []
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        pg.sql("INSERT INTO metadata VALUES ('too_late', 'true')")
    pg.sql(report["undo"])
    pg.sql("INSERT INTO metadata VALUES ('writable_again', 'true')")


def test_a_select_only_role_cannot_make_the_source_read_only(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, documents=3)
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))

    result = run_cli(
        capsys, "cutover", "--pg-url", pg.reader_url(), "--root", root, "--all-workspaces", "--make-source-read-only"
    )

    assert result.code == 4
    assert len(result.error_lines) == 1 and "database owner" in result.error
    pg.sql("INSERT INTO metadata VALUES ('still_writable', 'true')")


def test_cutover_without_a_selection_is_a_usage_error_before_anything_happens(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, documents=1)

    result = run_cli(capsys, "cutover", "--pg-url", pg.url, "--root", root, "--make-source-read-only")

    assert result.code == 2
    pg.sql("INSERT INTO metadata VALUES ('still_writable', 'true')")


def test_cutover_reads_the_replication_slot_then_drops_it(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A slot left behind keeps WAL on the server for ever: the cutover that read it last drops it,
    even after making the database read-only."""
    fill_store(pg, documents=3)
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    slot = sync_setup(pg.url, root).slot
    try:
        (new,) = pg.add_documents([{"workspace_id": "default", "content": "a kestrel at cutover", "metadata": None}])

        result = run_cli(
            capsys, "cutover", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--make-source-read-only"
        )

        assert result.code == 0, result.stderr
        assert f"Dropped replication slot and publication '{slot}'" in result.stdout
        assert "through the replication slot" in result.stdout
        assert pg.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [slot]) == [(0,)]
        assert pg.sql("SELECT count(*) FROM pg_publication WHERE pubname = %s", [slot]) == [(0,)]
        assert not (root / ".clawfs" / "replication.json").exists()
        with Workspace.open(root, "default") as ws:
            assert [h.document_id for h in ws.search("kestrel")] == [new]
    finally:
        pg.sql(f'BEGIN READ WRITE; ALTER DATABASE "{pg.dbname}" RESET default_transaction_read_only; COMMIT')
        pg.drop_slots()


def test_cutover_with_a_slot_but_only_some_workspaces_keeps_the_slot(pg: PgStore, root: Path) -> None:
    fill_store(pg, workspaces=("default", "ops"), documents=2)
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    slot = sync_setup(pg.url, root).slot
    try:
        report = cutover(pg.url, root, CutoverOptions(workspaces=("default",), sample=5))
        assert report.slot_dropped is None
        assert report.sync.method == "compare"
        assert pg.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [slot]) == [(1,)]
    finally:
        sync_teardown(pg.url, root)
