"""clawfs sync through a logical replication slot (DESIGN §3 "In sync until cutover", §4): `sync setup`
makes a publication and a `pgoutput` slot, `sync` reads which rows changed from the slot, reads those
rows again, applies them and only then advances the slot; `sync teardown` removes it all.

After every sync the copy is compared exactly, as in test_sync.py: `verify` finds nothing, the rows of each
workspace.db equal PostgreSQL's (formatted here independently of clawfs), and a fresh migration of the
same PostgreSQL gives the same rows, full-text answers and identity files.

Every test that makes a slot drops it (the `store` fixture): a database with a slot cannot be dropped.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

import clawfs._sync as sync_module
from clawfs import MigrateOptions, SyncOptions, SyncReport, Workspace, migrate, sync
from clawfs._checksum import checksum_record, total
from clawfs._sync import follow
from clawfs._sync_setup import sync_setup, sync_teardown
from clawfs.errors import SourceError
from clawfs.source import ChangeSet, PgoutputDecoder
from clawfs.workspace import WorkspaceFiles
from cli_runner import ERROR_PREFIX, Result, files_under, fill_store, run_cli
from pgstore import PgStore, with_database
from test_sync import (
    Follow,
    assert_in_sync,
    assert_one_error_line,
    assert_rows_equal,
    counts,
    metadata_changed,
    migrated_store,
    none_changed,
    pg_vectors,
    sqlite_rows,
    sync_all,
    text_hits,
    vector_hits,
    write_for_a_while,
    ws_db,
    ws_documents,
    ws_vectors,
)

PASSWORD = "Qv8-slot-s3cr3t-pw"
SECRET_MARK = "s3cr3t"

# -- the slot, seen from PostgreSQL ------------------------------------------------------------------------------


@pytest.fixture
def store(pg: PgStore) -> Iterator[PgStore]:
    """`pg`, with every replication slot made on it dropped afterwards."""
    try:
        yield pg
    finally:
        pg.drop_slots()


def slots(pg: PgStore) -> list[str]:
    return [r[0] for r in pg.sql("SELECT slot_name FROM pg_replication_slots WHERE database = %s", [pg.dbname])]


def publications(pg: PgStore) -> list[str]:
    return [r[0] for r in pg.sql("SELECT pubname FROM pg_publication ORDER BY 1")]


def confirmed(pg: PgStore, slot: str) -> str:
    """The position the slot has confirmed (advanced to)."""
    rows = pg.sql("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [slot])
    assert rows, f"no slot {slot!r}"
    return str(rows[0][0])


def peek(pg: PgStore, slot: str) -> ChangeSet:
    """What the slot still holds (read without consuming it), decoded."""
    rows = pg.sql(
        "SELECT data FROM pg_logical_slot_peek_binary_changes(%s, NULL, NULL,"
        " 'proto_version', '1', 'publication_names', %s)",
        [slot, slot],
    )
    decoder = PgoutputDecoder()
    for (data,) in rows:
        decoder.feed(bytes(data))
    return decoder.changes


def record(root: Path) -> dict[str, Any] | None:
    path = root / ".clawfs" / "replication.json"
    return json.loads(path.read_text("utf-8")) if path.exists() else None


def set_up(pg: PgStore, root: Path) -> str:
    """`sync setup` on a migrated root: the slot's name (its publication has the same name)."""
    report = sync_setup(pg.url, root)
    assert report.slot == report.publication
    assert report.slot.startswith("clawfs_")
    assert slots(pg) == [report.slot]
    assert record(root) is not None and record(root)["ready"] is True  # type: ignore[index]
    return report.slot


# -- exact comparison with a fresh migration ---------------------------------------------------------------------

QUERIES = ("kiwis", "lemons", "giraffe", "password", "zebra", "walrus", "okapi", "mango", "papaya", "toastword", "note")


def assert_like_a_fresh_migration(pg: PgStore, root: Path, fresh: Path) -> None:
    """The synced root holds what a migration made now holds: rows, FTS5 answers, identity files."""
    migrate(pg.url, fresh, MigrateOptions(all_workspaces=True))
    workspaces = sorted(p.name for p in (fresh / "workspaces").iterdir())
    assert sorted(p.name for p in (root / "workspaces").iterdir()) == workspaces
    for w in workspaces:
        assert ws_documents(ws_db(root, w)) == ws_documents(ws_db(fresh, w)), w
        assert ws_vectors(ws_db(root, w)) == ws_vectors(ws_db(fresh, w)), w
        for query in QUERIES:
            assert sorted(text_hits(root, w, query)) == sorted(text_hits(fresh, w, query)), (w, query)
    assert files_under(root / "agents") == files_under(fresh / "agents")


# -- 1. every kind of change, through the slot ------------------------------------------------------------------


def toast_text() -> str:
    """> 100 kB that compresses poorly (stored out of line, TOASTed), with one findable word."""
    return "toastword " + " ".join(f"{n:x}{n * 7919 % 65521:x}" for n in range(30_000))


def test_every_kind_of_change_arrives_through_the_slot_exactly(store: PgStore, root: Path, tmp_path: Path) -> None:
    pg = store
    fill_store(pg, workspaces=("default", "ops"), documents=5, identities=("agent-1", "agent-2"))
    (big,) = pg.add_documents([{"workspace_id": "default", "content": toast_text(), "metadata": None}])  # 11
    pg.add_vectors([{"document_id": big, "embedding": [0.3, 0.3, 0.9]}])  # vector 11
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    setup = sync_setup(pg.url, root)
    slot = setup.slot
    assert setup.tables == ("documents", "vectors", "metadata", "agent_identities")
    assert setup.synced is not None and setup.synced.method == "compare" and setup.synced.changes == 0
    assert slots(pg) == [slot] and publications(pg) == [slot]
    made = record(root)
    assert made is not None and set(made) == {"slot", "publication", "source", "created_at", "ready", "own_publication"}
    assert (made["slot"], made["publication"], made["ready"]) == (slot, slot, True)
    assert pg.dbname in made["source"]

    # inserts: documents with one, none and two vectors
    zebra, _walrus = pg.add_documents(
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
    # updates: content, metadata to NULL, created_at; a vector to another document; keys changed
    pg.sql("UPDATE documents SET content = 'giraffe neck stretch' WHERE id = 2")
    pg.sql("UPDATE documents SET metadata = NULL WHERE id = 3")
    pg.sql("UPDATE documents SET created_at = '2001-02-03 04:05:06.789012+00' WHERE id = 4")
    pg.sql("UPDATE vectors SET document_id = 2 WHERE id = 3")
    pg.sql("UPDATE vectors SET id = 900 WHERE id = 5")  # the slot sends the old key 5 and the new row 900
    pg.sql("DELETE FROM vectors WHERE id = 9")
    pg.sql("UPDATE documents SET id = 960 WHERE id = 9")
    # deletes: a document with its vector (ON DELETE CASCADE)
    pg.sql("DELETE FROM documents WHERE id = 10")
    # a document moved from ops to default, then given a second vector
    pg.sql("UPDATE documents SET workspace_id = 'default', content = 'moved heron' WHERE id = 6")
    (second,) = pg.add_vectors([{"document_id": 6, "embedding": [-4.0, 4.0, 4.0]}])
    # rows changed twice, inserted and deleted, inserted and updated, all in one transaction
    with psycopg.connect(pg.url) as conn:
        conn.execute("UPDATE documents SET content = 'first draft about lemons' WHERE id = 1")
        conn.execute("UPDATE documents SET content = 'second draft about kiwis' WHERE id = 1")
        conn.execute("UPDATE vectors SET embedding = '[5, 5, 5]' WHERE id = 1")
        conn.execute("UPDATE vectors SET embedding = '[0.1, 7, 3]' WHERE id = 1")
        gone = conn.execute(
            "INSERT INTO documents (workspace_id, content) VALUES ('default', 'short lived') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO vectors (document_id, embedding) VALUES (%s, '[1, 1, 1]')", [gone])
        conn.execute("DELETE FROM documents WHERE id = %s", [gone])
        mango = conn.execute(
            "INSERT INTO documents (workspace_id, content) VALUES ('default', 'unripe papaya') RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        conn.execute("UPDATE documents SET content = 'ripe mango' WHERE id = %s", [mango])
    # a transaction rolled back
    with psycopg.connect(pg.url) as conn:
        conn.execute("UPDATE documents SET content = 'rolled back text' WHERE id = 2")
        conn.execute("DELETE FROM documents WHERE id = 3")
        conn.execute("INSERT INTO documents (workspace_id, content) VALUES ('ops', 'phantom row')")
        conn.execute("DELETE FROM agent_identities")
        conn.execute("""INSERT INTO metadata VALUES ('phantom', '"yes"')""")
        conn.rollback()
    # the large content is left unchanged by an update of another column (the slot sends it as 'u')
    pg.sql("""UPDATE documents SET metadata = '{"big": true}' WHERE id = %s""", [big])
    # metadata and identities
    pg.add_metadata({"team": '"search"'})
    pg.sql("""UPDATE metadata SET value = '"model-2"' WHERE key = 'embedding_model'""")
    pg.add_identity("team/a.b", version=3)
    pg.sql(
        """UPDATE agent_identities SET version = 7, state = state || '{"mood": "calm"}' WHERE agent_id = 'agent-1'"""
    )
    pg.sql("DELETE FROM agent_identities WHERE agent_id = 'agent-2'")
    waiting = peek(pg, slot)
    assert waiting.transactions >= 20 and not waiting.truncated

    report = sync_all(pg.url, root)

    assert report.method == "slot"
    assert report.notes == ()
    assert counts(report) == {
        "default": {"documents": (4, 5, 0), "vectors": (4, 2, 1)},  # + zebra walrus 6 mango, ~ 1 2 3 4 big
        "ops": {"documents": (2, 0, 3), "vectors": (2, 0, 3)},  # + okapi 960, - 6 9 10
    }
    assert metadata_changed(report) == {"default": 2, "ops": 2}
    assert (report.identities_written, report.identities_removed) == (2, 1)
    assert report.changes == 33
    assert report.retained_wal_bytes is not None and report.retained_wal_bytes >= 0
    assert report.lag_wal_bytes is not None
    assert peek(pg, slot).empty  # advanced past everything it applied
    assert_in_sync(pg, root)
    assert_like_a_fresh_migration(pg, root, tmp_path / "fresh")
    assert text_hits(root, "default", "kiwis") == [1]
    assert text_hits(root, "default", "lemons") == text_hits(root, "default", "papaya") == []
    assert text_hits(root, "default", "mango") == [mango]
    assert text_hits(root, "default", "short lived") == []
    assert text_hits(root, "default", "giraffe") == [2]
    assert text_hits(root, "default", "heron") == [6] and text_hits(root, "ops", "heron") == []
    assert text_hits(root, "ops", "phantom") == [] and text_hits(root, "default", "rolled") == []
    assert text_hits(root, "default", "toastword") == [big]
    stored = sqlite_rows(ws_db(root, "default"), f"SELECT content, metadata FROM document_store WHERE id = {int(big)}")
    assert stored == [(toast_text(), '{"big": true}')]
    assert vector_hits(root, "default", [0.1, 7.0, 3.0], k=1) == [1]
    assert vector_hits(root, "default", [9.0, 9.0, 1.0], k=1) == [zebra]
    assert vector_hits(root, "default", [-4.0, 4.0, 4.0], k=1) == [6]
    assert vector_hits(root, "ops", [-5.0, 2.0, 7.5]).count(okapi) == 1
    assert 6 not in vector_hits(root, "ops", [-4.0, 4.0, 4.0])
    assert second in {r[0] for r in ws_vectors(ws_db(root, "default"))}
    agents = root / "agents"
    assert sorted(p.name for p in agents.iterdir()) == ["agent-1", "team%2Fa%2Eb"]
    one = json.loads((agents / "agent-1" / "identity.json").read_text("utf-8"))
    assert (one["version"], one["state"]["mood"]) == (7, "calm")
    with Workspace.open(root, "default") as ws:
        assert ws.metadata["embedding_model"] == "model-2"
        assert ws.metadata["team"] == "search"

    again = sync_all(pg.url, root)
    assert again.method == "slot"
    assert counts(again) == none_changed("default", "ops")
    assert (again.changes, again.identities_written, again.identities_removed) == (0, 0, 0)
    assert metadata_changed(again) == {"default": 0, "ops": 0}


def test_the_cli_sets_up_syncs_through_the_slot_and_tears_down(
    store: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    base: list[str | Path] = ["--pg-url", pg.url, "--root", root]
    pg.sql("UPDATE documents SET content = 'a grebe before the slot' WHERE id = 1")  # not in the slot's stream

    made = run_cli(capsys, "sync", "setup", *base, "--json")
    assert made.code == 0, made.stderr
    setup = made.json()
    slot = setup["slot"]
    assert setup["publication"] == slot and setup["tables"] == ["documents", "vectors", "metadata", "agent_identities"]
    assert isinstance(setup["start_lsn"], int)
    assert (setup["synced"]["method"], setup["synced"]["changes"]) == ("compare", 1)  # setup compared once
    assert text_hits(root, "default", "grebe") == [1]
    assert slots(pg) == [slot] and publications(pg) == [slot]

    twice = run_cli(capsys, "sync", "setup", *base)
    assert slot in assert_one_error_line(twice, 2)
    assert slots(pg) == [slot] and publications(pg) == [slot]  # nothing more was made

    (new,) = pg.add_documents([{"workspace_id": "ops", "content": "pelican on a post", "metadata": None}])
    synced = run_cli(capsys, "sync", *base, "--all-workspaces", "--json")
    assert synced.code == 0, synced.stderr
    assert synced.json()["method"] == "slot" and synced.json()["changes"] == 1
    assert text_hits(root, "ops", "pelican") == [new]
    table = run_cli(capsys, "sync", *base, "--all-workspaces")
    assert table.code == 0 and "0 change(s)" in table.stdout, table.stdout

    dropped = run_cli(capsys, "sync", "teardown", *base)
    assert dropped.code == 0, dropped.stderr
    assert f"dropped slot {slot!r} and publication {slot!r}" in " ".join(dropped.stdout.split())
    assert slots(pg) == [] and publications(pg) == [] and record(root) is None

    nothing = run_cli(capsys, "sync", "teardown", *base)
    assert "teardown --slot" in assert_one_error_line(nothing, 2)


def test_a_damaged_record_is_one_line_and_teardown_by_name_recovers(
    store: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The error names the way out (`sync teardown --slot NAME`); that way out must then work."""
    pg = store
    migrated_store(pg, root, documents=2)
    slot = set_up(pg, root)
    path = root / ".clawfs" / "replication.json"
    path.write_text('{"slot": "clawfs_', encoding="utf-8")  # cut short
    base: list[str | Path] = ["--pg-url", pg.url, "--root", root]

    damaged = run_cli(capsys, "sync", *base, "--all-workspaces")
    line = assert_one_error_line(damaged, 5)
    assert "replication.json" in line and "teardown --slot" in line

    by_name = run_cli(capsys, "sync", "teardown", *base, "--slot", slot)

    assert slots(pg) == [] and publications(pg) == []
    assert by_name.code == 0, by_name.stderr
    after = run_cli(capsys, "sync", *base, "--all-workspaces", "--json")
    assert after.code == 0, after.stderr  # the root syncs again (by comparison)
    assert after.json()["method"] == "compare"


# -- 2. --follow with a concurrent writer ------------------------------------------------------------------------


def test_follow_through_the_slot_keeps_up_with_a_concurrent_writer(store: PgStore, root: Path, tmp_path: Path) -> None:
    pg = store
    migrated_store(pg, root, documents=5)
    set_up(pg, root)
    with Follow(pg.url, root, tmp_path, "--json", interval="0.2") as following:
        following.wait_for(lambda line: True)  # the first round has run

        writes = write_for_a_while(pg, 2.5, seed=11)

        stopped_at = len(following.lines)
        # a round begun after the writer stopped
        following.wait_for(lambda line: json.loads(line)["changes"] == 0, stopped_at + 2)
        code = following.interrupt()
    reports = [json.loads(line) for line in following.lines]
    assert writes > 20
    assert code == 0, following.stderr
    assert ERROR_PREFIX not in following.stderr
    assert all(r["method"] == "slot" for r in reports), [r["method"] for r in reports]
    assert sum(r["changes"] for r in reports) >= writes // 2
    assert_in_sync(pg, root)
    written = pg.sql("SELECT id, workspace_id, content FROM documents WHERE content LIKE 'written while%' ORDER BY id")
    assert written
    for doc, workspace, content in written:
        assert text_hits(root, workspace, content.split()[-1]) == [doc]


def test_follow_in_the_library_reads_the_slot_each_round(
    store: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    set_up(pg, root)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)  # the module clawfs._sync sleeps with
    reports: list[SyncReport] = []
    added: list[int] = []

    def on_round(report: SyncReport) -> None:
        reports.append(report)
        if len(reports) == 1:  # written between two rounds
            added.extend(pg.add_documents([{"workspace_id": "ops", "content": "ibis at noon", "metadata": None}]))

    follow(pg.url, root, SyncOptions(all_workspaces=True), None, on_round, rounds=3)

    assert [r.method for r in reports] == ["slot"] * 3
    assert [r.changes for r in reports] == [0, 1, 0]
    assert counts(reports[1])["ops"] == {"documents": (1, 0, 0), "vectors": (0, 0, 0)}
    assert slept == [sync_module.SLOT_INTERVAL] * 2  # the slot's default interval, none after the last round
    assert text_hits(root, "ops", "ibis") == added
    assert_in_sync(pg, root)


def test_a_slot_with_more_changes_than_a_round_takes_is_read_in_several_rounds(
    store: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    slot = set_up(pg, root)
    monkeypatch.setattr(sync_module, "MAX_SLOT_CHANGES", 4)
    for n in range(5):  # ten transactions of one row change each
        (new,) = pg.add_documents([{"workspace_id": "default", "content": f"batch note {n} emu{n}", "metadata": None}])
        pg.sql("UPDATE documents SET content = content || ' edited' WHERE id = %s", [new])
    positions = []
    for _ in range(20):
        report = sync_all(pg.url, root)
        assert report.method == "slot"
        positions.append(confirmed(pg, slot))
        if not report.more_waiting:
            break
    assert len(positions) > 2, "one round took everything"
    assert len(set(positions)) >= len(positions) - 1  # every round advanced the slot (the last: if WAL grew)
    assert_in_sync(pg, root)
    for n in range(5):
        assert len(text_hits(root, "default", f"emu{n}")) == 1


def test_more_waiting_says_a_round_left_changes_in_the_slot(
    store: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`more_waiting` (follow then goes on at once): one round took fewer row changes than are waiting."""
    pg = store
    migrated_store(pg, root, documents=2)
    set_up(pg, root)
    monkeypatch.setattr(sync_module, "MAX_SLOT_CHANGES", 3)
    pg.add_documents([{"workspace_id": "default", "content": f"single {n}", "metadata": None} for n in range(6)])

    first = sync_all(pg.url, root)

    assert first.method == "slot"
    assert first.changes < 6  # the round took part of the six changes waiting ...
    assert first.more_waiting, f"round took {first.changes} of 6 changes, more_waiting is False"  # ... and says so


# -- 3. crash safety ---------------------------------------------------------------------------------------------


def changes_for_the_crash(pg: PgStore) -> None:
    (new,) = pg.add_documents([{"workspace_id": "default", "content": "crane over the marsh", "metadata": None}])
    pg.add_vectors([{"document_id": new, "embedding": [3.0, -3.0, 3.0]}])
    pg.sql("UPDATE documents SET content = 'stork in the reeds' WHERE id = 2")
    pg.sql("UPDATE vectors SET embedding = '[8, 1, 8]' WHERE id = 1")
    pg.sql("DELETE FROM documents WHERE id = 3")  # and vector 3
    pg.sql("UPDATE documents SET workspace_id = 'ops', content = 'moved puffin' WHERE id = 4")  # its vector 4 goes too
    (added,) = pg.add_documents([{"workspace_id": "ops", "content": "tern at sea", "metadata": None}])
    pg.add_vectors([{"document_id": added, "embedding": [-1.0, -8.0, 2.0]}])
    pg.sql("DELETE FROM vectors WHERE id = 7")
    pg.add_metadata({"crash": "true"})
    pg.sql("UPDATE agent_identities SET version = 4 WHERE agent_id = 'agent-1'")


@pytest.mark.parametrize("failing_call", ["2", "ops-1"], ids=["second-apply", "first-apply-to-ops"])
def test_a_sync_failing_mid_way_does_not_advance_the_slot_and_the_next_sync_completes_it(
    store: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch, failing_call: str
) -> None:
    """The apply fails after some batches were committed: nothing of the slot is confirmed; the next
    sync applies everything (what was applied already is applied again, harmlessly)."""
    pg = store
    migrated_store(pg, root, documents=4)  # default: documents and vectors 1-4, ops: 5-8
    slot = set_up(pg, root)
    changes_for_the_crash(pg)
    before = peek(pg, slot)
    position = confirmed(pg, slot)
    calls: list[str] = []
    original = Workspace.apply_rows

    def failing(self: Workspace, **kwargs: Any) -> None:
        calls.append(self.workspace_id)
        if failing_call == "ops-1":
            fail = calls.count("ops") == 1 and self.workspace_id == "ops"
        else:
            fail = len(calls) == int(failing_call)
        if fail:
            raise RuntimeError("injected failure")
        original(self, **kwargs)

    monkeypatch.setattr(Workspace, "apply_rows", failing)
    with pytest.raises(RuntimeError, match="injected"):
        sync_all(pg.url, root, batch_size=2)
    monkeypatch.undo()
    assert len(calls) >= 2  # some batches were applied before the failure

    assert confirmed(pg, slot) == position  # the slot was not advanced
    assert peek(pg, slot) == before
    for w in ("default", "ops"):
        with Workspace.open(root, w) as ws:
            assert ws.check() == []

    report = sync_all(pg.url, root)

    assert report.method == "slot"
    assert peek(pg, slot).empty
    assert_in_sync(pg, root)
    assert text_hits(root, "ops", "puffin") == [4]
    assert vector_hits(root, "ops", [1.0, 3.5, 0.25], k=1) == [4]  # document 4's vector went along
    assert text_hits(root, "default", "stork") == [2]
    assert sync_all(pg.url, root).changes == 0


# -- moves between a migrated workspace and one that is not --------------------------------------------------------


def test_a_document_moved_to_a_workspace_not_migrated_takes_its_vectors_along(store: PgStore, root: Path) -> None:
    pg = store
    migrated_store(pg, root, documents=3)  # default: documents and vectors 1-3
    set_up(pg, root)
    pg.sql("UPDATE documents SET workspace_id = 'elsewhere' WHERE id = 2")  # never migrated

    report = sync_all(pg.url, root)

    assert report.method == "slot"
    assert any("'elsewhere' is new in PostgreSQL" in n for n in report.notes)
    assert [r[0] for r in ws_documents(ws_db(root, "default"))] == [1, 3]
    assert ws_vectors(ws_db(root, "default")) == pg_vectors(pg, "default")  # vector 2 left with its document
    assert_rows_equal(pg, ws_db(root, "default"), "default")
    assert_rows_equal(pg, ws_db(root, "ops"), "ops")


def test_a_document_moved_in_from_a_workspace_not_migrated_brings_its_vectors(store: PgStore, root: Path) -> None:
    pg = store
    fill_store(pg, workspaces=("default", "elsewhere"), documents=2)  # elsewhere: documents and vectors 3-4
    migrate(pg.url, root, MigrateOptions(workspaces=("default",)))
    set_up(pg, root)
    pg.sql("UPDATE documents SET workspace_id = 'default', content = 'arrived albatross' WHERE id = 3")

    report = sync_all(pg.url, root)

    assert report.method == "slot"
    assert text_hits(root, "default", "albatross") == [3]
    assert ws_vectors(ws_db(root, "default")) == pg_vectors(pg, "default")  # vector 3 came with its document
    assert vector_hits(root, "default", [2.0, 0.5, 0.25], k=1) == [3]
    assert_rows_equal(pg, ws_db(root, "default"), "default")


def test_a_workspace_migrated_without_vectors_gets_its_first_ones_through_the_slot(store: PgStore, root: Path) -> None:
    pg = store
    fill_store(pg, workspaces=("default",), documents=2)
    pg.add_documents([{"workspace_id": "plain", "content": f"plain note {i}", "metadata": None} for i in range(2)])
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    set_up(pg, root)
    pg.sql(
        "INSERT INTO vectors (document_id, embedding)"
        " SELECT id, ('[' || id || ', 1, -1]')::vector FROM documents WHERE workspace_id = 'plain'"
    )

    report = sync_all(pg.url, root)

    assert report.method == "slot"
    assert counts(report)["plain"] == {"documents": (0, 0, 0), "vectors": (2, 0, 0)}
    assert_in_sync(pg, root)
    assert vector_hits(root, "plain", [4.0, 1.0, -1.0], k=1) == [4]


def test_a_bad_row_in_the_slot_stops_the_sync_without_advancing_it(
    store: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    slot = set_up(pg, root)
    pg.sql("UPDATE documents SET content = 'a bittern' WHERE id = 1")
    (bad,) = pg.add_vectors([{"document_id": 2, "embedding": [1.0, 2.0, 3.0], "created_at": None}])
    position = confirmed(pg, slot)
    base: list[str | Path] = ["--pg-url", pg.url, "--root", root, "--all-workspaces"]

    refused = run_cli(capsys, "sync", *base)

    line = assert_one_error_line(refused, 4)
    assert "vectors" in line and str(bad) in line and "created_at" in line
    assert confirmed(pg, slot) == position

    skipped = run_cli(capsys, "sync", *base, "--on-bad-row", "skip", "--json")
    assert skipped.code == 0, skipped.stderr
    assert skipped.json()["method"] == "slot"
    assert [(r["table"], r["id"]) for r in skipped.json()["skipped"]] == [("vectors", bad)]
    assert text_hits(root, "default", "bittern") == [1]

    pg.sql("UPDATE vectors SET created_at = '2024-05-06 07:08:09+00' WHERE id = %s", [bad])  # mended: in the slot
    mended = sync_all(pg.url, root)
    assert mended.method == "slot" and counts(mended)["default"]["vectors"] == (1, 0, 0)
    assert_in_sync(pg, root)


# -- what falls back to comparison ---------------------------------------------------------------------------------


def test_a_truncate_is_synced_by_comparison_then_the_slot_is_read_again(store: PgStore, root: Path) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    pg.add_metadata({"doomed": "1"})
    sync_all(pg.url, root)
    slot = set_up(pg, root)
    pg.sql("TRUNCATE metadata")
    pg.sql("UPDATE documents SET content = 'after the truncate, a gannet' WHERE id = 1")

    report = sync_all(pg.url, root)

    assert report.method == "compare"
    assert counts(report)["default"] == {"documents": (0, 1, 0), "vectors": (0, 0, 0)}
    assert_in_sync(pg, root)
    with Workspace.open(root, "default") as ws:
        assert "doomed" not in ws.metadata
    assert peek(pg, slot).empty  # what the comparison covered is confirmed
    pg.sql("UPDATE documents SET content = 'a shag on the rock' WHERE id = 2")
    after = sync_all(pg.url, root)
    assert after.method == "slot" and after.changes == 1
    assert text_hits(root, "default", "shag") == [2]

    # a record not yet `ready` (setup's comparison did not finish): compare, then it is ready
    path = root / ".clawfs" / "replication.json"
    path.write_text(json.dumps({**json.loads(path.read_text("utf-8")), "ready": False}), encoding="utf-8")
    pg.sql("UPDATE documents SET content = 'a fulmar' WHERE id = 2")
    unready = sync_all(pg.url, root)
    assert unready.method == "compare" and unready.changes == 1
    assert record(root)["ready"] is True  # type: ignore[index]
    assert sync_all(pg.url, root).method == "slot"


def test_a_partial_selection_compares_with_a_note_and_leaves_the_slot(
    store: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)  # default: 1-2, ops: 3-4
    slot = set_up(pg, root)
    pg.sql("UPDATE documents SET content = 'lapwing' WHERE id = 1")
    pg.sql("UPDATE documents SET content = 'curlew' WHERE id = 3")
    position, waiting = confirmed(pg, slot), peek(pg, slot)

    partial = sync(pg.url, root, SyncOptions(workspaces=("default",)))

    assert partial.method == "compare"
    assert any(slot in n and "--all-workspaces" in n for n in partial.notes), partial.notes
    assert counts(partial) == {"default": {"documents": (0, 1, 0), "vectors": (0, 0, 0)}}
    assert (confirmed(pg, slot), peek(pg, slot)) == (position, waiting)  # not advanced
    assert text_hits(root, "ops", "curlew") == []

    db = ws_db(root, "default")
    result = run_cli(
        capsys, "sync", "--pg-url", pg.url, "--root", root, "--workspace-id", "default", "--sqlite-path", db, "--json"
    )
    assert result.code == 0, result.stderr
    assert result.json()["method"] == "compare" and any(slot in n for n in result.json()["notes"])
    assert confirmed(pg, slot) == position

    every = sync(pg.url, root, SyncOptions(workspaces=("ops", "default")))  # the full list: the slot
    assert every.method == "slot" and every.notes == ()
    assert text_hits(root, "ops", "curlew") == [3]
    assert peek(pg, slot).empty
    assert_in_sync(pg, root)


def test_a_slot_dropped_behind_our_back_is_noted_and_sync_compares(store: PgStore, root: Path) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    slot = set_up(pg, root)
    pg.sql("SELECT pg_drop_replication_slot(%s)", [slot])
    pg.sql("UPDATE documents SET content = 'a dotterel' WHERE id = 2")

    report = sync_all(pg.url, root)

    assert report.method == "compare"
    assert any(slot in n and "no longer exists" in n for n in report.notes), report.notes
    assert text_hits(root, "default", "dotterel") == [2]
    assert_in_sync(pg, root)
    down = sync_teardown(pg.url, root)  # the publication is still there: teardown removes it
    assert (down.dropped_slot, down.dropped_publication) == (False, True)
    assert publications(pg) == [] and record(root) is None


def test_a_slot_holding_much_wal_is_warned_about(store: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    slot = set_up(pg, root)
    pg.sql("UPDATE documents SET content = 'a plover' WHERE id = 1")
    quiet = sync_all(pg.url, root)
    assert quiet.retained_wal_bytes is not None and not any("WAL" in n for n in quiet.notes)

    monkeypatch.setattr(sync_module, "RETAINED_WAL_WARNING", 0)
    pg.sql("UPDATE documents SET content = 'a sanderling' WHERE id = 1")
    warned = sync_all(pg.url, root)

    assert warned.method == "slot"
    assert warned.retained_wal_bytes is not None and warned.retained_wal_bytes > 0
    assert any(slot in n and "MiB of WAL" in n and "teardown" in n for n in warned.notes), warned.notes


def test_an_idle_slot_is_advanced_past_the_wal_other_tables_write(store: PgStore, root: Path) -> None:
    """Nothing changes in the published tables, the server writes WAL for others: a sync must confirm
    that stretch, or the slot keeps its WAL for ever however often it is synced."""
    pg = store
    migrated_store(pg, root, documents=2)
    slot = set_up(pg, root)
    pg.sql("CREATE TABLE unrelated (x text)")
    pg.sql("INSERT INTO unrelated SELECT repeat('x', 200) FROM generate_series(1, 20000)")
    (written,) = pg.sql("SELECT pg_current_wal_lsn()::text")[0]

    report = sync_all(pg.url, root)
    sync_all(pg.url, root)

    assert report.method == "slot" and report.changes == 0
    (behind,) = pg.sql(
        "SELECT pg_wal_lsn_diff(%s::pg_lsn, confirmed_flush_lsn)::int8 FROM pg_replication_slots WHERE slot_name = %s",
        [written, slot],
    )[0]
    assert behind <= 0, f"the slot still holds the {behind:,} bytes of WAL written before the sync"


# -- 4. teardown ---------------------------------------------------------------------------------------------------


def test_teardown_removes_slot_publication_and_record_then_sync_compares(
    store: PgStore, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    slot = set_up(pg, root)
    pg.sql("UPDATE documents SET content = 'a redshank' WHERE id = 1")  # left in the slot at teardown

    down = sync_teardown(pg.url, root)

    assert (down.slot, down.publication, down.dropped_slot, down.dropped_publication) == (slot, slot, True, True)
    assert slots(pg) == [] and publications(pg) == []
    assert record(root) is None
    report = sync_all(pg.url, root)
    assert report.method == "compare" and report.notes == ()
    assert text_hits(root, "default", "redshank") == [1]
    assert_in_sync(pg, root)

    # a root lost: its slot is dropped by name from anywhere; the root that had it then compares with a note
    slot = set_up(pg, root)
    other = tmp_path / "other-root"
    by_name = run_cli(capsys, "sync", "teardown", "--pg-url", pg.url, "--root", other, "--slot", slot)
    assert by_name.code == 0, by_name.stderr
    assert slots(pg) == [] and publications(pg) == []
    assert record(root) is not None  # another root's record is not touched
    pg.sql("UPDATE documents SET content = 'a knot' WHERE id = 2")
    noted = sync_all(pg.url, root)
    assert noted.method == "compare" and any("no longer exists" in n for n in noted.notes)
    assert text_hits(root, "default", "knot") == [2]
    gone = run_cli(capsys, "sync", "teardown", "--pg-url", pg.url, "--root", root, "--json")
    assert gone.code == 0, gone.stderr
    assert (gone.json()["dropped_slot"], gone.json()["dropped_publication"]) == (False, False)
    assert record(root) is None


# -- 6. least privilege --------------------------------------------------------------------------------------------


def role_url(pg: PgStore, suffix: str, *attributes: str, owner: bool = False, password: str | None = None) -> str:
    """A role made for the test: SELECT on the store's tables; `owner`: owns them and may CREATE in the database."""
    role = f"{pg.dbname}_{suffix}"
    options = sql.SQL(" ").join(sql.SQL(a) for a in ("LOGIN", *attributes))
    if password is not None:
        options = sql.SQL("{} PASSWORD {}").format(options, sql.Literal(password))
    pg.sql(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(role), options))
    pg.sql(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role)))
    if owner:
        for table in ("documents", "vectors", "metadata", "agent_identities"):
            pg.sql(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(role)))
        pg.sql(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(pg.dbname), sql.Identifier(role)))
    return with_database(pg.server_url, pg.dbname, user=role, password=password)


def assert_nothing_set_up(pg: PgStore, root: Path) -> None:
    assert slots(pg) == [] and publications(pg) == [] and record(root) is None


@pytest.mark.parametrize("role", ["owner-without-replication", "select-only"])
def test_setup_without_the_privileges_is_one_line_exit_4_and_leaves_nothing(
    store: PgStore, root: Path, capsys: pytest.CaptureFixture[str], role: str
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    url = role_url(pg, "own", owner=True) if role.startswith("owner") else role_url(pg, "sel")

    result = run_cli(capsys, "sync", "setup", "--pg-url", url, "--root", root)

    line = assert_one_error_line(result, 4)
    assert ("REPLICATION" in line) if role.startswith("owner") else ("publication" in line), line
    assert_nothing_set_up(pg, root)
    assert sync_all(url, root).method == "compare"  # sync still works, by comparison


def test_a_select_only_role_syncs_by_comparison_and_is_refused_the_slot_in_one_line(
    store: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    reader = role_url(pg, "reader")
    pg.sql("UPDATE documents SET content = 'a wigeon' WHERE id = 1")
    compared = sync_all(reader, root)
    assert compared.method == "compare" and compared.changes == 1
    assert text_hits(root, "default", "wigeon") == [1]

    slot = set_up(pg, root)  # by the owner
    pg.sql("UPDATE documents SET content = 'a teal' WHERE id = 1")
    position = confirmed(pg, slot)

    refused = run_cli(capsys, "sync", "--pg-url", reader, "--root", root, "--all-workspaces")

    line = assert_one_error_line(refused, 4)
    assert slot in line and "REPLICATION" in line, line
    assert confirmed(pg, slot) == position
    with pytest.raises(SourceError):
        sync_all(reader, root)
    assert sync_all(pg.url, root).method == "slot"
    assert text_hits(root, "default", "teal") == [1]


# -- 7. no password anywhere --------------------------------------------------------------------------------------


def test_no_password_in_any_output_or_file(store: PgStore, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pg = store
    migrated_store(pg, root, documents=2)
    url = role_url(pg, "pw", "REPLICATION", owner=True, password=PASSWORD)
    no_replication = role_url(pg, "pwr", password=PASSWORD)
    unreachable = f"postgresql://someone:{PASSWORD}@127.0.0.1:1/{pg.dbname}?connect_timeout=5"
    outputs: list[Result] = []

    def run(code: int, *args: str | Path) -> Result:
        result = run_cli(capsys, *args)
        assert result.code == code, result.stderr
        outputs.append(result)
        return result

    for verbose in ([], ["-v"]):
        run(0, "sync", "setup", "--pg-url", url, "--root", root, *verbose)
        pg.sql("UPDATE documents SET content = 'a smew' WHERE id = 1")
        run(0, "sync", "--pg-url", url, "--root", root, "--all-workspaces", *verbose)
        run(0, "sync", "--pg-url", url, "--root", root, "--all-workspaces", "--json", *verbose)
        run(2, "sync", "setup", "--pg-url", url, "--root", root, *verbose)
        run(4, "sync", "--pg-url", no_replication, "--root", root, "--all-workspaces", *verbose)
        run(4, "sync", "--pg-url", unreachable, "--root", root, "--all-workspaces", *verbose)
        run(4, "sync", "teardown", "--pg-url", unreachable, "--root", root, *verbose)
        run(0, "sync", "teardown", "--pg-url", url, "--root", root, "--json", *verbose)
        run(2, "sync", "teardown", "--pg-url", url, "--root", root, *verbose)
        run(4, "sync", "setup", "--pg-url", no_replication, "--root", root, *verbose)
        assert_nothing_set_up(pg, root)
    assert text_hits(root, "default", "smew") == [1]
    assert any("Traceback" in r.stderr for r in outputs)  # -v showed tracebacks: scrubbed too
    for result in outputs:
        assert SECRET_MARK not in result.stdout + result.stderr
    for name, data in files_under(root).items():
        assert SECRET_MARK.encode() not in data, f"the password is in {name}"


def test_slot_rounds_keep_the_recorded_checksums_exact_also_after_api_writes_and_a_cut_short_round(
    store: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slot round updates metadata's counts and checksums from what it changed (no pass over the file);
    when the record may not describe the file (an API write, a round cut short), it reads the file once."""
    pg = store
    migrated_store(pg, root, documents=4)
    set_up(pg, root)
    db = ws_db(root, "default")

    def recorded_equals_file() -> None:
        files = WorkspaceFiles(db)
        try:
            ranges = {t: files.range_checksums(t) for t in ("documents", "vectors")}
            assert json.loads(files.metadata()["checksums"]) == checksum_record(ranges)
            assert json.loads(files.metadata()["document_count"]) == total(ranges["documents"]).rows
        finally:
            files.close()

    pg.add_documents([{"workspace_id": "default", "content": "a godwit", "metadata": None}])
    assert sync_all(pg.url, root).method == "slot"
    recorded_equals_file()

    with Workspace.open(db) as ws:  # an API write: the record no longer describes the file
        ws.update(1, content="edited here, not in PostgreSQL")
    pg.sql("UPDATE documents SET content = 'edited in PostgreSQL' WHERE id = 2")
    assert sync_all(pg.url, root, overwrite_local_writes=True).method == "slot"
    recorded_equals_file()

    real = Workspace.set_metadata
    monkeypatch.setattr(Workspace, "set_metadata", raising_once(real))
    pg.sql("DELETE FROM documents WHERE id = 3")
    with pytest.raises(OSError):
        sync_all(pg.url, root)
    pg.sql("UPDATE documents SET content = 'edited again' WHERE id = 4")
    assert sync_all(pg.url, root).method == "slot"
    recorded_equals_file()


def raising_once(real: Any) -> Any:
    calls = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")
        return real(*args, **kwargs)

    return wrapper


def test_two_syncs_of_one_root_take_turns(store: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sync started while another runs (`sync` beside `sync --follow`) waits for it: had it overlapped,
    the older round would write its older rows over the newer ones after the slot had passed them."""
    pg = store
    migrated_store(pg, root, documents=3)
    set_up(pg, root)
    pg.sql("UPDATE documents SET content = 'v1' WHERE id = 1")
    real = sync_module._apply_slot_changes
    second: list[SyncReport] = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        if not second:  # the first round has read v1; now v2 is written and a second sync starts
            pg.sql("UPDATE documents SET content = 'v2' WHERE id = 1")
            other = threading.Thread(target=lambda: second.append(sync_all(pg.url, root)))
            other.start()
            time.sleep(0.5)
            assert other.is_alive(), "the second sync did not wait for the first"
            second.append(None)  # type: ignore[arg-type]
            result = real(*args, **kwargs)
            threading.Thread(target=other.join).start()
            slow.other = other  # type: ignore[attr-defined]
            return result
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_module, "_apply_slot_changes", slow)
    sync_all(pg.url, root)
    slow.other.join(timeout=60)  # type: ignore[attr-defined]

    assert sqlite_rows(ws_db(root, "default"), "SELECT content FROM document_store WHERE id = 1") == [("v2",)]
    assert_in_sync(pg, root)
