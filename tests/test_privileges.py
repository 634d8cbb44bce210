"""Least privilege (draft §13): each way of using clawfs works with exactly the grants the README lists.

- migrate, verify, sync by comparison: `SELECT` on the four tables (and the default CONNECT and USAGE);
- sync through a slot (`sync setup --publication`, `sync`, `--follow`, `teardown`): the same `SELECT`, the
  `REPLICATION` attribute, and a publication the tables' owner made.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from clawfs import MigrateOptions, SyncOptions, VerifyOptions, migrate, sync, verify
from clawfs._sync import follow
from cli_runner import fill_store, run_cli
from pgstore import PgStore, with_database

TABLES = ("documents", "vectors", "metadata", "agent_identities")


def role_url(pg: PgStore, suffix: str, *attributes: str) -> str:
    """A login role with exactly SELECT on the IronClaw tables (plus `attributes`, e.g. REPLICATION)."""
    role = f"{pg.dbname}_{suffix}"
    pg.sql(sql.SQL("CREATE ROLE {} LOGIN {}").format(sql.Identifier(role), sql.SQL(" ".join(attributes))))
    pg.sql(
        sql.SQL("GRANT SELECT ON {} TO {}").format(
            sql.SQL(", ").join(map(sql.Identifier, TABLES)), sql.Identifier(role)
        )
    )
    return with_database(pg.server_url, pg.dbname, user=role)


@pytest.fixture
def store(pg: PgStore) -> Iterator[PgStore]:
    try:
        yield pg
    finally:
        pg.drop_slots()


def test_select_alone_migrates_verifies_and_syncs_by_comparison(store: PgStore, root: Path) -> None:
    fill_store(store, workspaces=("default", "ops"), documents=4)
    reader = role_url(store, "reader")

    migrate(reader, root, MigrateOptions(all_workspaces=True))
    store.add_documents([{"workspace_id": "ops", "content": "a curlew after the migration", "metadata": None}])
    synced = sync(reader, root, SyncOptions(all_workspaces=True))
    checked = verify(reader, root, VerifyOptions(all_workspaces=True, sample=5))

    assert synced.method == "compare" and synced.changes == 1
    assert checked.ok, checked.errors


def test_replication_and_select_follow_through_the_owners_publication(
    store: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(store, workspaces=("default", "ops"), documents=4)
    follower = role_url(store, "follower", "REPLICATION")
    publication = f"{store.dbname}_pub"
    store.sql(  # by the tables' owner
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(
            sql.Identifier(publication), sql.SQL(", ").join(map(sql.Identifier, TABLES))
        )
    )
    migrate(follower, root, MigrateOptions(all_workspaces=True))

    refused = run_cli(capsys, "sync", "setup", "--pg-url", follower, "--root", root)
    assert refused.code == 4
    assert "--publication" in refused.stderr and "Traceback" not in refused.stderr

    made = run_cli(capsys, "sync", "setup", "--pg-url", follower, "--root", root, "--publication", publication)
    assert made.code == 0, made.stderr
    (new,) = store.add_documents([{"workspace_id": "default", "content": "a dunlin on the slot", "metadata": None}])
    store.sql("DELETE FROM documents WHERE workspace_id = 'ops' AND id = (SELECT min(id) FROM documents)")
    rounds = []
    follow(follower, root, SyncOptions(all_workspaces=True), 0.01, rounds.append, rounds=2)
    assert [r.method for r in rounds] == ["slot", "slot"]
    assert sum(r.changes for r in rounds) >= 1
    assert verify(follower, root, VerifyOptions(all_workspaces=True, sample=5)).ok

    dropped = run_cli(capsys, "sync", "teardown", "--pg-url", follower, "--root", root)
    assert dropped.code == 0, dropped.stderr
    assert store.sql("SELECT count(*) FROM pg_replication_slots WHERE database = %s", [store.dbname]) == [(0,)]
    assert store.sql("SELECT count(*) FROM pg_publication WHERE pubname = %s", [publication]) == [(1,)]  # the owner's
    assert new
