"""DESIGN §3 "Resumable": a migration killed at any moment (even `kill -9`), interrupted (Ctrl-C) or cut
off from PostgreSQL keeps what it had committed; the next run with `--resume` and the same selection
continues from there, and the result is identical to an uninterrupted migration made at that time.

"Identical" is checked on everything a reader sees (`picture`): the rows of `document_store`,
`vectors` and `metadata` (but the keys that name the moment of the run), the answers of FTS5 to a few
queries, the keys of the HNSW index file (which must be the file its metadata stamp names), the
identity files byte for byte, and nothing else left anywhere under the root.

The kill points are exact: the CLI runs in a child process through a small driver (`DRIVER`) that
replaces one function by a wrapper sending SIGKILL to its own process at the Nth call.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from usearch.index import Index

from clawfs import Key, MigrateOptions, MigrationReport, Workspace, migrate
from clawfs.workspace import WorkspaceBuilder
from clawfs.workspace._index import file_sha256
from clawfs.workspace._index_store import DATA_TABLE
from clawfs.workspace._sqlite import connect
from cli_runner import audit_lines, build_leftovers, files_under, installed, last_run, run_cli
from conftest import PG_VERSIONS, fresh_store
from pgstore import PgStore

DIMENSION = 16
DOCUMENTS = 2000  # two thirds in `default`, one third in `team/a.b`
BATCH = 50  # rows per committed batch: dozens of checkpoints per workspace
SAMPLE = 20  # verification's sampled queries per workspace (library runs; it changes nothing in a workspace)
WORKSPACES = ("default", "team/a.b")
WS_DIRS = {"default": "default", "team/a.b": "team%2Fa%2Eb"}  # their directories under workspaces/
AGENTS = ("agent-1", "agent/2")
NOTHING_INSTALLED: dict[str, list[str]] = {"workspaces": [], "agents": []}
# metadata that names the moment of a run, not its content
MOMENT_KEYS = ("migrated_at", "source_snapshot")
FTS_QUERIES = ("topic", "number AND 17", '"topic 5"', "edited", "inserted", "moved", "n AND 42", "blue OR green")
UNREACHABLE_PG = "postgresql://nobody@127.0.0.1:9/nothing?connect_timeout=2"

RESUMED_NOTE = "kept from the interrupted run"
FINISHED_INSTALL_NOTE = "was installing them: this run finished that"
NOTHING_TO_RESUME_NOTE = "nothing to resume for this selection"
REMOVED_BUILD_NOTE = "removed the build of an interrupted run"

BUILDER = "clawfs.workspace._builder:WorkspaceBuilder"
PLACEMENT = "clawfs.workspace._layout:Placement"

DRIVER = '''\
"""driver.py MODULE:ATTR.PATH N before|after CLAWFS-ARGS...: SIGKILL this process at the Nth call."""
import importlib
import os
import signal
import sys

spec, n, when, *args = sys.argv[1:]
module_name, _, path = spec.partition(":")
*owner_path, name = path.split(".")
owner = importlib.import_module(module_name)
for part in owner_path:
    owner = getattr(owner, part)
real = getattr(owner, name)
calls = 0


def wrapper(*a, **k):
    global calls
    calls += 1
    if calls == int(n) and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*a, **k)
    if calls == int(n) and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result


setattr(owner, name, wrapper)
from clawfs.cli import main  # noqa: E402

main(args)
'''


# -- the store ----------------------------------------------------------------------------------------


def fill(pg: PgStore, documents: int = DOCUMENTS, dimension: int = DIMENSION) -> None:
    """Two workspaces (`default`, `team/a.b`, interleaved ids), JSON or NULL metadata, documents with
    no vector and with two, source metadata rows and two agent identities. Vectors lie around 16
    centres, as real embeddings do (verification's recall check needs that)."""
    pg.create_schema(dimension=dimension)
    pg.sql(
        "INSERT INTO documents (workspace_id, content, metadata)"
        " SELECT CASE WHEN g %% 3 = 0 THEN 'team/a.b' ELSE 'default' END,"
        "  'document number ' || g || ' about topic ' || (g %% 97) || CASE WHEN g %% 4 = 0 THEN ' blue' ELSE '' END,"
        "  CASE WHEN g %% 5 = 0 THEN NULL ELSE jsonb_build_object('n', g %% 50, 'tags', jsonb_build_array('x')) END"
        " FROM generate_series(1, %s) g",
        [documents],
    )
    add_vectors(pg, "WHERE d.id % 11 <> 0")  # every 11th document has no vector
    add_vectors(pg, "WHERE d.id % 7 = 0")  # every 7th has a second one
    pg.add_metadata({"embedding_model": '"test-embedding"', "owner": '{"team": "memory", "since": 2024}'})
    for agent in AGENTS:
        pg.add_identity(agent)


def add_vectors(pg: PgStore, where: str) -> None:
    """A vector for every document matching `where` (a clause over `documents d`)."""
    dimension = pg.sql(
        "SELECT atttypmod FROM pg_attribute WHERE attrelid = 'vectors'::regclass AND attname = 'embedding'"
    )
    random_vector = (
        "(SELECT array_agg((CASE WHEN i % 16 = d.id % 16 THEN 1.0 ELSE 0.0 END) + 0.3 * random())"
        f" FROM generate_series(1, {dimension[0][0]}) i)"
    )
    pg.sql(
        f"INSERT INTO vectors (document_id, embedding) SELECT d.id, {random_vector}::vector FROM documents d {where}"
    )


def change_everything(pg: PgStore) -> None:
    """Every kind of change a store sees between a killed run and its resumption, on rows the killed
    run had copied (low ids) and on rows it had not (high ids)."""
    assert DOCUMENTS > 1903
    pg.sql("UPDATE documents SET content = content || ' edited' WHERE id IN (1, 2, 3, 1900)")
    pg.sql('UPDATE documents SET metadata = \'{"n": 42, "edited": true}\' WHERE id IN (4, 1901)')
    pg.sql("UPDATE documents SET metadata = NULL, created_at = '2001-02-03 04:05:06.789+00' WHERE id = 6")
    pg.sql("UPDATE vectors SET embedding = (SELECT embedding FROM vectors WHERE id = 100) WHERE id IN (7, 8, 1950)")
    pg.sql("UPDATE vectors SET created_at = '1999-12-31 23:59:59+00' WHERE id = 9")
    pg.sql("DELETE FROM documents WHERE id IN (10, 12, 15, 1902)")  # their vectors go too (ON DELETE CASCADE)
    pg.sql("DELETE FROM vectors WHERE id IN (13, 1903)")  # a vector alone
    pg.sql("UPDATE documents SET workspace_id = 'team/a.b', content = content || ' moved' WHERE id = 14")
    pg.sql("UPDATE documents SET workspace_id = 'team/a.b' WHERE id = 16")  # moved, nothing else changed
    pg.sql("UPDATE documents SET workspace_id = 'default', content = content || ' moved' WHERE id = 18")
    pg.sql(
        "INSERT INTO documents (workspace_id, content, metadata)"
        " SELECT CASE WHEN g % 2 = 0 THEN 'default' ELSE 'team/a.b' END, 'inserted later ' || g || ' green', NULL"
        " FROM generate_series(1, 40) g"
    )
    add_vectors(pg, "WHERE d.content LIKE 'inserted later %'")
    add_vectors(pg, "WHERE d.id IN (5, 17)")  # a new vector of an old document
    pg.sql("UPDATE metadata SET value = '\"test-embedding-2\"' WHERE key = 'embedding_model'")
    pg.sql("INSERT INTO metadata VALUES ('added_later', '[1, 2, 3]')")
    pg.sql(
        'UPDATE agent_identities SET version = 2, state = \'{"status": "done", "extra": [1]}\','
        " updated_at = '2030-01-01 00:00:00+00' WHERE agent_id = 'agent-1'"
    )
    pg.add_identity("agent-3")


def _versions() -> tuple[int, ...]:
    return (0,) if os.environ.get("CLAWFS_TEST_PG_URL") else PG_VERSIONS


@dataclass(frozen=True)
class Shared:
    """A filled store that no test changes, and the picture of its uninterrupted migration."""

    pg: PgStore
    reference: dict[str, Any]


@pytest.fixture(scope="module", params=_versions(), ids=lambda v: f"pg{v}" if v else "pg")
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with fresh_store(request.param) as pg:
        fill(pg)
        root = tmp_path_factory.mktemp("reference") / "clawfs"
        migrate(pg.url, root, options())
        yield Shared(pg, picture(root))


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("driver") / "driver.py"
    path.write_text(DRIVER)
    return path


# -- running and killing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    target: str  # module:Class.function (or module:function) that the driver wraps
    call: int  # at its Nth call
    when: str  # "before" or "after" the real one runs
    journal: bool = False  # killed after the install journal was written: resume finishes the renames


def cli_args(pg_url: str, root: Path, *selection: str) -> list[str]:
    return ["--pg-url", pg_url, "--root", str(root), *(selection or ["--all-workspaces"]), "--batch-size", str(BATCH)]


def kill_run(driver: Path, point: KillPoint, args: list[str]) -> int:
    """`clawfs migrate ARGS` in a child process killed at `point`; its pid."""
    proc = subprocess.Popen(
        [sys.executable, str(driver), point.target, str(point.call), point.when, "migrate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed at {point} (exit {proc.returncode}):\n{stderr}"
    return proc.pid


def run_lines(root: Path, pid: int) -> list[dict[str, Any]]:
    return [line for line in audit_lines(root) if line["run_id"].startswith(f"{pid}-")]


def options(**given: Any) -> MigrateOptions:
    """The options of every library run here: all workspaces unless some are named, small batches."""
    defaults: dict[str, Any] = {"batch_size": BATCH, "sample": SAMPLE}
    if "workspaces" not in given:
        defaults["all_workspaces"] = True
    return MigrateOptions(**(defaults | given))


def resume(pg_url: str, root: Path, **given: Any) -> MigrationReport:
    return migrate(pg_url, root, options(resume=True, **given))


def fresh_picture(pg: PgStore, root: Path) -> dict[str, Any]:
    """The picture of an uninterrupted migration of the store as it is now."""
    migrate(pg.url, root, options())
    return picture(root)


# -- what a reader sees ----------------------------------------------------------------------------------


def workspace_picture(db_path: Path, index_path: Path, key: Key | None = None) -> dict[str, Any]:
    """Everything of one workspace that must not depend on whether its migration was interrupted (an
    encrypted one read with `key`: its index is the one stored inside it)."""
    db = connect(db_path, key, read_only=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        documents = db.execute("SELECT * FROM document_store ORDER BY id").fetchall()
        vectors = db.execute("SELECT * FROM vectors ORDER BY id").fetchall()
        metadata = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM metadata")}
        fts = {
            q: db.execute("SELECT rowid FROM documents WHERE documents MATCH ? ORDER BY rank, rowid", (q,)).fetchall()
            for q in FTS_QUERIES
        }
        fts_size = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        stored = (
            b"".join(bytes(r[0]) for r in db.execute(f"SELECT data FROM {DATA_TABLE} ORDER BY chunk")) if key else b""
        )
    finally:
        db.close()
    for name in MOMENT_KEYS:
        assert metadata.pop(name), f"{db_path}: metadata {name} is missing"
    stamp = metadata.pop("hnsw_index")
    # the index is the one its stamp names (else a reader would rebuild it, or refuse it)
    if key is None:
        assert stamp.get("location", "file") == "file", stamp
        assert (index_path.stat().st_size, file_sha256(index_path)) == (stamp["bytes"], stamp["sha256"]), index_path
        index = Index.restore(str(index_path), view=True)
    else:
        assert stamp["location"] == "database", stamp
        assert (len(stored), hashlib.sha256(stored).hexdigest()) == (stamp["bytes"], stamp["sha256"]), db_path
        index = Index.restore(stored)
    assert index is not None, f"usearch cannot read the index of {db_path}"
    keys = sorted(int(k) for k in np.asarray(index.keys))
    assert keys == [v[0] for v in vectors], f"{db_path}: the HNSW index does not hold exactly the vector ids"
    return {
        "tables": tables,
        "document_store": documents,
        "vectors": vectors,
        "metadata": metadata,
        "fts": fts,
        "fts_size": fts_size,
        "index_keys": keys,
        "index_stamp_vectors": stamp["vectors"],
    }


def picture(root: Path) -> dict[str, Any]:
    """What a reader finds under `root`: every workspace, every identity file, nothing else."""
    out: dict[str, Any] = {"installed": installed(root), "agents": files_under(root / "agents")}
    for ws_dir in sorted((root / "workspaces").iterdir()) if (root / "workspaces").is_dir() else ():
        out[ws_dir.name] = workspace_picture(ws_dir / "workspace.db", ws_dir / "index.usearch")
    return out


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """`actual == expected`, failing on the first part that differs (whole pictures make unreadable diffs)."""
    assert actual["installed"] == expected["installed"], "not the same workspaces and identity files installed"
    assert sorted(actual["agents"]) == sorted(expected["agents"]), "not the same files under agents/"
    for name, data in expected["agents"].items():
        assert actual["agents"][name] == data, f"identity file {name} differs"
    for ws in expected["installed"]["workspaces"]:
        assert_same_workspace(ws, actual[ws], expected[ws])
    assert actual == expected


def assert_same_workspace(ws: str, actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for part, data in expected.items():
        if part in ("document_store", "vectors"):
            assert len(actual[part]) == len(data), (
                f"workspace {ws}: {part} has {len(actual[part])} rows, not {len(data)}"
            )
        assert actual[part] == data, f"workspace {ws}: {part} differs"


def strays(*folders: Path) -> list[str]:
    """Anything an interrupted run or its resumption may have left: old copies set aside by install,
    build directories, staged temporary files, journals."""
    found = []
    for folder in folders:
        for p in folder.rglob("*") if folder.exists() else ():
            name = p.name
            if ".clawfs-old-" in name or ".clawfs-build-" in name or name.endswith(".tmp") or name == "install.json":
                found.append(str(p.relative_to(folder)))
    return sorted(found)


def assert_clean(root: Path, *more: Path) -> None:
    assert build_leftovers(root) == []
    assert strays(root, *more) == []


def assert_searchable(root: Path) -> None:
    """The resumed workspaces answer through the public API: a stored vector finds its own document."""
    for ws_id in WORKSPACES:
        with Workspace.open(root, ws_id) as ws:
            db = sqlite3.connect(f"{ws.path.resolve().as_uri()}?mode=ro", uri=True)
            try:
                doc_id, blob = db.execute(
                    "SELECT document_id, embedding FROM vectors ORDER BY id DESC LIMIT 1"
                ).fetchone()
            finally:
                db.close()
            vector = np.frombuffer(blob, dtype="<f4").tolist()
            assert ws.search(vector=vector, k=1)[0].document_id == doc_id
            assert ws.search("topic", k=3)


def notes_with(report: MigrationReport, text: str) -> list[str]:
    return [n for n in report.notes if text in n]


def assert_nothing_installed_and_build_kept(root: Path) -> None:
    assert installed(root) == NOTHING_INSTALLED
    assert build_leftovers(root) != []


# -- 1. kill -9 at exact points, then --resume ---------------------------------------------------------------

KILL_POINTS = {
    "documents: after the 3rd batch": KillPoint(f"{BUILDER}.add_documents", 3, "after"),
    "vectors: after the 5th batch": KillPoint(f"{BUILDER}.add_vectors", 5, "after"),
    "fts: before the rebuild": KillPoint(f"{BUILDER}.rebuild_fts", 1, "before"),
    "fts: after the first workspace's rebuild": KillPoint(f"{BUILDER}.rebuild_fts", 1, "after"),
    "metadata: after the first write": KillPoint(f"{BUILDER}.write_metadata", 1, "after"),
    "index: after the first index file was saved": KillPoint(f"{BUILDER}.save_index", 1, "after"),
    "verify: after the first workspace was checked": KillPoint("clawfs._migrate:check_workspace", 1, "after"),
    "install: identity files staged, no journal yet": KillPoint(f"{PLACEMENT}.put_all", 1, "before"),
    "install: journal written, before the first rename": KillPoint(f"{PLACEMENT}.put", 1, "before", journal=True),
    "install: between the first and the second rename": KillPoint(f"{PLACEMENT}.put", 2, "before", journal=True),
    "install: all renamed, before the old copies are removed": KillPoint(
        f"{PLACEMENT}.commit", 1, "before", journal=True
    ),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_9_then_resume_gives_what_an_uninterrupted_run_gives(
    shared: Shared, point: str, driver: Path, tmp_path: Path
) -> None:
    root = tmp_path / "clawfs"
    kill = KILL_POINTS[point]
    pid = kill_run(driver, kill, cli_args(shared.pg.url, root))

    if not kill.target.startswith(PLACEMENT):
        assert_nothing_installed_and_build_kept(root)
    assert run_lines(root, pid)[-1]["step"] != "end"

    # a run killed while installing is finished from its journal, without PostgreSQL
    report = resume(UNREACHABLE_PG if kill.journal else shared.pg.url, root)

    if kill.journal:
        assert notes_with(report, FINISHED_INSTALL_NOTE), report.notes
    else:
        assert len(notes_with(report, RESUMED_NOTE)) == len(WORKSPACES), report.notes
    assert not notes_with(report, NOTHING_TO_RESUME_NOTE)
    assert {(w.workspace_id, w.documents, w.vectors) for w in report.workspaces} == {
        (ws, len(shared.reference[d]["document_store"]), len(shared.reference[d]["vectors"]))
        for ws, d in WS_DIRS.items()
    }
    if not kill.journal:  # it went on from the kept rows: copied what was missing, not everything again
        copied = {s.step: s.rows for s in report.steps}
        everything = sum(len(shared.reference[d][t]) for d in WS_DIRS.values() for t in ("document_store", "vectors"))
        if kill.target.endswith((".add_documents", ".add_vectors")):
            assert 0 < copied["documents"] + copied["vectors"] < everything
        else:
            assert copied["documents"] + copied["vectors"] == 0
    assert_same(picture(root), shared.reference)
    assert_clean(root)
    assert_searchable(root)

    # the audit log says which run was resumed
    lines = last_run(root)
    [claimed] = [line for line in lines if line["step"] == "resume" and "interrupted_run" in line]
    assert claimed["interrupted_run"].startswith(f"{pid}-")
    assert (lines[-1]["step"], lines[-1]["result"]) == ("end", "ok")
    if kill.journal:
        assert lines[-1]["finished_interrupted_install"] is True


SECOND_KILL_POINTS = {
    # the claimed run directory has the resuming run's id, its run.json not yet
    "planning, just after the claim": KillPoint("clawfs.source._postgres:Source.counts", 1, "before"),
    "vectors: after the 4th batch": KillPoint(f"{BUILDER}.add_vectors", 4, "after"),
}


@pytest.mark.parametrize("second", list(SECOND_KILL_POINTS))
def test_a_resumed_run_killed_again_is_resumed_again(shared: Shared, second: str, driver: Path, tmp_path: Path) -> None:
    root = tmp_path / "clawfs"
    args = cli_args(shared.pg.url, root)
    first = kill_run(driver, KILL_POINTS["documents: after the 3rd batch"], args)
    again = kill_run(driver, SECOND_KILL_POINTS[second], [*args, "--resume"])

    [claimed] = [line["interrupted_run"] for line in run_lines(root, again) if "interrupted_run" in line]
    assert claimed.startswith(f"{first}-")
    report = resume(shared.pg.url, root)

    assert len(notes_with(report, RESUMED_NOTE)) == len(WORKSPACES), report.notes
    assert_same(picture(root), shared.reference)
    assert_clean(root)


def test_ctrl_c_exits_130_keeps_the_build_and_resume_completes_it(
    shared: Shared, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = WorkspaceBuilder.add_vectors
    calls = 0

    def interrupted(self: WorkspaceBuilder, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 6:
            raise KeyboardInterrupt
        real(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(WorkspaceBuilder, "add_vectors", interrupted)
        result = run_cli(capsys, "migrate", *cli_args(shared.pg.url, root))

    assert result.code == 130
    assert "--resume" in result.stderr and "Traceback" not in result.stderr
    assert_nothing_installed_and_build_kept(root)
    assert last_run(root)[-1]["kept_for_resume"] is True

    resumed = run_cli(capsys, "migrate", *cli_args(shared.pg.url, root), "--resume", "--json")

    assert resumed.code == 0, resumed.stderr
    assert len([n for n in resumed.json()["notes"] if RESUMED_NOTE in n]) == len(WORKSPACES)
    assert_same(picture(root), shared.reference)
    assert_clean(root)


# -- 2. PostgreSQL changes between the kill and the resumption ----------------------------------------------

CHANGE_KILL_POINTS = {
    "vectors: after the 10th batch": KillPoint(f"{BUILDER}.add_vectors", 10, "after"),
    "verify: after the first workspace was checked": KILL_POINTS["verify: after the first workspace was checked"],
}


@pytest.mark.parametrize("point", list(CHANGE_KILL_POINTS))
def test_changes_made_in_postgresql_after_the_kill_are_in_the_resumed_workspaces(
    pg: PgStore, point: str, driver: Path, tmp_path: Path
) -> None:
    fill(pg)
    root = tmp_path / "clawfs"
    kill_run(driver, CHANGE_KILL_POINTS[point], cli_args(pg.url, root))
    change_everything(pg)

    report = resume(pg.url, root)
    expected = fresh_picture(pg, tmp_path / "fresh")

    assert len(notes_with(report, RESUMED_NOTE)) == len(WORKSPACES)
    assert_same(picture(root), expected)
    assert sorted(expected["installed"]["agents"]) == ["agent%2F2", "agent-1", "agent-3"]
    assert_clean(root)
    assert_searchable(root)
    # the comparison with the new snapshot is in the audit log, table by table
    compared = {(line["workspace"], line["table"]): line for line in last_run(root) if "table" in line}
    assert set(compared) == {(ws, t) for ws in WORKSPACES for t in ("documents", "vectors")}
    assert all(line["step"] == "resume" for line in compared.values())
    assert compared["default", "documents"]["changed"] > 0
    assert compared["default", "documents"]["deleted"] > 0  # deleted, or moved to the other workspace
    assert compared["team/a.b", "documents"]["missing"] > 0
    assert compared["default", "vectors"]["changed"] > 0


# -- 3. the connection to PostgreSQL is lost during COPY ----------------------------------------------------


def test_connection_lost_during_copy_exits_4_keeps_the_build_and_resume_completes_it(
    pg: PgStore, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(pg, dimension=128)  # vectors enough that the COPY is still streaming when its backend goes
    real = WorkspaceBuilder.add_vectors
    calls = 0
    terminated: list[tuple[Any, ...]] = []

    def add_and_drop(self: WorkspaceBuilder, *args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            with psycopg.connect(pg.url, autocommit=True) as conn:
                terminated.extend(
                    conn.execute(
                        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'COPY%'"
                    ).fetchall()
                )
        real(self, *args)

    with monkeypatch.context() as patch:
        patch.setattr(WorkspaceBuilder, "add_vectors", add_and_drop)
        result = run_cli(capsys, "migrate", *cli_args(pg.url, root))

    assert [t[1] for t in terminated] == [True]
    assert result.code == 4, result.stderr
    assert "vectors" in result.error and "--resume" in result.error
    assert_nothing_installed_and_build_kept(root)
    end = last_run(root)[-1]
    assert (end["step"], end["result"], end["kept_for_resume"]) == ("end", "failed", True)

    resumed = run_cli(capsys, "migrate", *cli_args(pg.url, root), "--resume", "--json")

    assert resumed.code == 0, resumed.stderr
    assert len([n for n in resumed.json()["notes"] if RESUMED_NOTE in n]) == len(WORKSPACES)
    assert_same(picture(root), fresh_picture(pg, tmp_path / "fresh"))
    assert_clean(root)


# -- 4. edge cases ------------------------------------------------------------------------------------------------


def test_resume_with_nothing_to_resume_starts_a_new_migration(shared: Shared, root: Path) -> None:
    report = resume(shared.pg.url, root)

    assert notes_with(report, NOTHING_TO_RESUME_NOTE), report.notes
    assert not notes_with(report, RESUMED_NOTE)
    assert_same(picture(root), shared.reference)
    assert_clean(root)
    assert [line for line in last_run(root) if line["step"] == "resume"] == []


def test_resume_with_another_selection_leaves_the_interrupted_run_for_its_own(
    shared: Shared, driver: Path, root: Path
) -> None:
    """`--resume` continues only a run of the same selection; the build of another selection is not
    garbage to a run asked to resume (`_remove_abandoned_runs`): that selection's `--resume` finds it."""
    killed = kill_run(driver, KILL_POINTS["vectors: after the 5th batch"], cli_args(shared.pg.url, root))

    other = resume(shared.pg.url, root, workspaces=("team/a.b",), identities=False)

    assert notes_with(other, NOTHING_TO_RESUME_NOTE), other.notes
    assert installed(root) == {"workspaces": ["team%2Fa%2Eb"], "agents": []}
    assert [p for p in build_leftovers(root) if p.startswith(f"run-{killed}-")], "the interrupted build is gone"

    report = resume(shared.pg.url, root, replace=True)

    assert len(notes_with(report, RESUMED_NOTE)) == len(WORKSPACES), report.notes
    assert_same(picture(root), shared.reference)
    assert_clean(root)


def test_a_damaged_kept_build_starts_that_workspace_over(shared: Shared, driver: Path, root: Path) -> None:
    kill_run(driver, KILL_POINTS["vectors: after the 5th batch"], cli_args(shared.pg.url, root))
    [run_dir] = (root / ".clawfs" / "tmp").glob("run-*")
    (run_dir / "default" / "workspace.db").write_bytes(b"not a database, " * 1000)
    team_db = run_dir / "team%2Fa%2Eb" / "workspace.db"
    team_db.write_bytes(team_db.read_bytes()[: team_db.stat().st_size // 2])  # torn in the middle

    report = resume(shared.pg.url, root)

    assert notes_with(report, RESUMED_NOTE) == []  # neither build could be used
    assert_same(picture(root), shared.reference)
    assert_clean(root)


def test_a_kept_build_without_its_database_starts_over(shared: Shared, driver: Path, root: Path) -> None:
    kill_run(driver, KILL_POINTS["documents: after the 3rd batch"], cli_args(shared.pg.url, root))
    [run_dir] = (root / ".clawfs" / "tmp").glob("run-*")
    (run_dir / "default" / "workspace.db").unlink()

    report = resume(shared.pg.url, root)

    assert [n for n in report.notes if RESUMED_NOTE in n and "'team/a.b'" in n] == notes_with(report, RESUMED_NOTE)
    assert len(notes_with(report, RESUMED_NOTE)) == 1
    assert_same(picture(root), shared.reference)
    assert_clean(root)


SQLITE_PATH_KILL_POINTS = {
    "documents: after the 3rd batch": KILL_POINTS["documents: after the 3rd batch"],
    "index: after the index file was saved": KILL_POINTS["index: after the first index file was saved"],
    "install: journal written, before the first rename": KILL_POINTS[
        "install: journal written, before the first rename"
    ],
    "install: between the renames": KILL_POINTS["install: between the first and the second rename"],
}


@pytest.mark.parametrize("point", list(SQLITE_PATH_KILL_POINTS))
def test_sqlite_path_kill_9_then_resume(shared: Shared, point: str, driver: Path, tmp_path: Path) -> None:
    root = tmp_path / "clawfs"
    out = tmp_path / "out"
    out.mkdir()
    target = out / "memory.db"
    selection = ("--workspace-id", "default", "--sqlite-path", str(target), "--no-identities")
    kill = SQLITE_PATH_KILL_POINTS[point]
    kill_run(driver, kill, cli_args(shared.pg.url, root, *selection))
    if not kill.journal:
        assert [p.name for p in out.iterdir() if ".memory.db.clawfs-build-" in p.name], "the build is kept"

    pg_url = UNREACHABLE_PG if kill.journal else shared.pg.url
    report = resume(pg_url, root, workspaces=("default",), sqlite_path=target, identities=False)

    assert notes_with(report, FINISHED_INSTALL_NOTE if kill.journal else RESUMED_NOTE), report.notes
    assert {p.name for p in out.iterdir()} <= {"memory.db", "memory.usearch", "memory.db-wal", "memory.db-shm"}
    assert target.is_file(), f"nothing installed at {target}: {sorted(p.name for p in out.iterdir())}"
    assert_same_workspace("default", workspace_picture(target, out / "memory.usearch"), shared.reference["default"])
    assert_clean(root, out)
    with Workspace.open(target) as ws:
        assert ws.workspace_id == "default"


def test_a_run_without_resume_removes_the_interrupted_build_and_says_so(
    shared: Shared, driver: Path, root: Path
) -> None:
    kill_run(driver, KILL_POINTS["vectors: after the 5th batch"], cli_args(shared.pg.url, root))

    report = migrate(shared.pg.url, root, options())

    assert notes_with(report, REMOVED_BUILD_NOTE), report.notes
    assert not notes_with(report, RESUMED_NOTE)
    assert [line for line in last_run(root) if line["step"] == "resume"] == []
    assert_same(picture(root), shared.reference)
    assert_clean(root)


REPLACE_KILL_POINTS = {
    "journal written, before the first rename": KILL_POINTS["install: journal written, before the first rename"],
    "between the first and the second rename": KILL_POINTS["install: between the first and the second rename"],
    "all renamed, before the old copies are removed": KILL_POINTS[
        "install: all renamed, before the old copies are removed"
    ],
}


@pytest.mark.parametrize("point", list(REPLACE_KILL_POINTS))
def test_replace_killed_while_installing_then_resume_installs_the_new_data(
    pg: PgStore, point: str, driver: Path, tmp_path: Path
) -> None:
    fill(pg)
    root = tmp_path / "clawfs"
    migrate(pg.url, root, options())
    old = picture(root)
    change_everything(pg)
    kill_run(driver, REPLACE_KILL_POINTS[point], [*cli_args(pg.url, root), "--replace"])

    report = resume(UNREACHABLE_PG, root, replace=True)
    expected = fresh_picture(pg, tmp_path / "fresh")

    assert notes_with(report, FINISHED_INSTALL_NOTE), report.notes
    assert expected != old
    assert_same(picture(root), expected)
    assert_clean(root)
    assert_searchable(root)
