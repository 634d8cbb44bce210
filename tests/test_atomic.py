"""DESIGN §3 "Atomic": a workspace is built under a temporary name and put in place only when every step
has passed. Whatever step fails, and however (an error, a verification mismatch, Ctrl-C, kill -9), a
reader finds no workspace and no identity file, no build directory is left under `<root>/.clawfs/tmp`,
PostgreSQL is unchanged, and an existing workspace survives byte for byte.

    plan -> documents -> vectors -> fts -> metadata -> identities -> index -> verify -> install
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest

from clawfs import MigrateOptions, SourceError, StepFailed, VerificationError, Workspace, migrate
from clawfs.errors import exit_code
from clawfs.source import Source
from clawfs.workspace import IndexWorker, Placement, WorkspaceBuilder, WorkspaceFiles
from cli_runner import (
    audit_lines,
    build_leftovers,
    files_under,
    fill_large_store,
    fill_store,
    installed,
    last_run,
    quiet_fingerprint,
    run_cli,
)
from pgstore import PgStore

MIGRATE_MODULE = import_module("clawfs._migrate")
NOTHING_INSTALLED = {"workspaces": [], "agents": []}


def raising(error: BaseException) -> Callable[..., Any]:
    def inject(*args: object, **kwargs: object) -> Any:
        raise error

    return inject


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def altered_documents() -> Callable[..., Any]:
    """`WorkspaceBuilder.add_documents` with a conversion bug: the first row of each batch changes."""
    real = WorkspaceBuilder.add_documents

    def add(self: WorkspaceBuilder, rows: list[tuple[Any, ...]]) -> None:
        first = rows[0]
        real(self, [(first[0], first[1], first[2] + "!", *first[3:]), *rows[1:]])

    return add


def dropped_vector() -> Callable[..., Any]:
    """`WorkspaceBuilder.add_vectors` that loses the first vector of each batch."""
    real = WorkspaceBuilder.add_vectors

    def add(self: WorkspaceBuilder, ids: Any, docs: Any, embeddings: Any, created: list[str]) -> None:
        real(self, ids[1:], docs[1:], embeddings[1:], created[1:])

    return add


def index_skipping_first() -> Callable[..., Any]:
    """`IndexWorker.add` that leaves the first vector of each batch out of the HNSW index."""
    real = IndexWorker.add

    def add(self: IndexWorker, index: Any, keys: Any, vectors: Any) -> None:
        real(self, index, keys[1:], vectors[1:])

    return add


def index_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "clawfs-index" and t.is_alive()]


# (where the failure is injected, what it raises, the step that must report it, its exit code)
INJECTIONS = {
    "plan: counting rows": (Source, "counts", SourceError("connection lost"), "plan", 4),
    "documents: writing": (WorkspaceBuilder, "add_documents", disk_full(), "documents", 5),
    "vectors: writing": (WorkspaceBuilder, "add_vectors", disk_full(), "vectors", 5),
    "fts: rebuild": (WorkspaceBuilder, "rebuild_fts", sqlite3.OperationalError("disk is full"), "fts", 5),
    "index: saving": (WorkspaceBuilder, "save_index", disk_full(), "index", 5),
    "metadata: reading": (Source, "read_metadata", SourceError("connection lost"), "metadata", 4),
    "metadata: writing": (WorkspaceBuilder, "write_metadata", sqlite3.OperationalError("I/O error"), "metadata", 5),
    "identities: bad state": (MIGRATE_MODULE, "identity_document", ValueError("state is not JSON"), "identities", 4),
    "verify: reading back": (WorkspaceFiles, "metadata", sqlite3.DatabaseError("malformed"), "verify", 5),
    "verify: committing the database": (WorkspaceBuilder, "close", OSError(errno.EIO, "I/O error"), "verify", 5),
    "install: renaming a workspace": (Placement, "put", OSError(errno.EXDEV, "cross-device"), "install", 5),
    "install: writing an identity file": (MIGRATE_MODULE, "write_private_temp", disk_full(), "install", 5),
}


@pytest.mark.parametrize("injection", list(INJECTIONS))
def test_a_failure_in_any_step_leaves_no_workspace_no_identity_and_no_build_dir(
    pg: PgStore, injection: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(pg, workspaces=("default", "team/a.b"), identities=("agent-1", "agent-2"))
    target, attribute, error, step, code = INJECTIONS[injection]
    before = quiet_fingerprint(pg)
    monkeypatch.setattr(target, attribute, raising(error))

    with pytest.raises(StepFailed) as failed:
        migrate(pg.url, root, MigrateOptions(all_workspaces=True))

    assert failed.value.step == step
    assert exit_code(failed.value) == code
    assert installed(root) == NOTHING_INSTALLED
    assert build_leftovers(root) == []
    assert index_threads_alive() == []
    end = last_run(root)[-1]
    assert (end["step"], end["result"]) == ("end", "failed")
    assert quiet_fingerprint(pg) == before


def test_an_unexpected_exception_also_cleans_up(pg: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fill_store(pg)
    before = quiet_fingerprint(pg)
    monkeypatch.setattr(WorkspaceBuilder, "rebuild_fts", raising(RuntimeError("a bug")))

    with pytest.raises(RuntimeError, match="a bug"):
        migrate(pg.url, root, MigrateOptions(workspaces=("default",)))

    assert installed(root) == NOTHING_INSTALLED
    assert build_leftovers(root) == []
    assert index_threads_alive() == []
    assert quiet_fingerprint(pg) == before


MISMATCHES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "a document changed on the way": lambda mp: mp.setattr(WorkspaceBuilder, "add_documents", altered_documents()),
    "a vector lost on the way": lambda mp: mp.setattr(WorkspaceBuilder, "add_vectors", dropped_vector()),
    "an id missing from the index": lambda mp: mp.setattr(IndexWorker, "add", index_skipping_first()),
    "fts integrity-check fails": lambda mp: mp.setattr(
        WorkspaceFiles, "fts_integrity", lambda self: "database disk image is malformed"
    ),
}


@pytest.mark.parametrize("mismatch", list(MISMATCHES))
def test_verification_mismatch_exits_3_and_installs_nothing(
    pg: PgStore, mismatch: str, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg)
    before = quiet_fingerprint(pg)
    MISMATCHES[mismatch](monkeypatch)

    result = run_cli(capsys, "migrate", "--pg-url", pg.url, "--root", root, "--workspace-id", "default")

    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert "verif" in result.error and "'default'" in result.error
    assert installed(root) == NOTHING_INSTALLED
    assert build_leftovers(root) == []
    assert quiet_fingerprint(pg) == before


def test_verification_mismatch_is_a_verification_error_in_the_library(
    pg: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(pg)
    monkeypatch.setattr(WorkspaceBuilder, "add_vectors", dropped_vector())

    with pytest.raises(StepFailed) as failed:
        migrate(pg.url, root, MigrateOptions(workspaces=("default",)))

    assert failed.value.step == "verify"
    assert isinstance(failed.value.cause, VerificationError)
    assert installed(root) == NOTHING_INSTALLED


def test_keyboard_interrupt_during_vectors_exits_130_and_keeps_the_rows_for_resume(
    pg: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, documents=5)
    before = quiet_fingerprint(pg)
    with monkeypatch.context() as patch:
        patch.setattr(WorkspaceBuilder, "add_vectors", raising(KeyboardInterrupt()))
        result = run_cli(capsys, "migrate", "--pg-url", pg.url, "--root", root, "--all-workspaces")

    assert result.code == 130
    assert "interrupted" in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert installed(root) == NOTHING_INSTALLED
    assert build_leftovers(root) != []  # the documents copied so far
    assert index_threads_alive() == []
    assert last_run(root)[-1]["result"] == "failed"
    assert last_run(root)[-1]["kept_for_resume"] is True

    resumed = run_cli(capsys, "migrate", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--resume")

    assert resumed.code == 0, resumed.stderr
    assert installed(root)["workspaces"] == ["default"]
    assert build_leftovers(root) == []
    assert quiet_fingerprint(pg) == before


# -- --replace: the old workspace survives until the new one is complete ----------------------------


def fail_renaming_build_dirs(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.rename fails for a build directory: install has already moved the old workspace aside."""
    real_rename = os.rename

    def rename(src: Any, dst: Any, **kwargs: Any) -> None:
        if f"{os.sep}tmp{os.sep}run-" in os.fspath(src):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_rename(src, dst, **kwargs)

    monkeypatch.setattr(os, "rename", rename)


REPLACE_FAILURES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "vectors": lambda mp: mp.setattr(WorkspaceBuilder, "add_vectors", raising(disk_full())),
    "verify mismatch": lambda mp: mp.setattr(WorkspaceBuilder, "add_documents", altered_documents()),
    "install: closing": lambda mp: mp.setattr(WorkspaceBuilder, "close", raising(OSError(errno.EIO, "I/O error"))),
    "install: renaming the new workspace": fail_renaming_build_dirs,
}


@pytest.mark.parametrize("failure", list(REPLACE_FAILURES))
def test_replace_that_fails_keeps_the_old_workspace_byte_for_byte(
    pg: PgStore, failure: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(pg, workspaces=("default", "team/a.b"))
    migrate(pg.url, root, MigrateOptions(all_workspaces=True))
    old = files_under(root / "workspaces") | files_under(root / "agents")
    pg.add_documents([{"workspace_id": "default", "content": "written after the first migration"}])
    pg.sql("UPDATE agent_identities SET version = 2")
    before = quiet_fingerprint(pg)
    REPLACE_FAILURES[failure](monkeypatch)

    with pytest.raises(StepFailed):
        migrate(pg.url, root, MigrateOptions(all_workspaces=True, replace=True))

    assert files_under(root / "workspaces") | files_under(root / "agents") == old
    assert installed(root) == {"workspaces": ["default", "team%2Fa%2Eb"], "agents": ["agent-1"]}
    assert build_leftovers(root) == []
    assert quiet_fingerprint(pg) == before


# -- --sqlite-path FILE: the file and its index beside it, or nothing ---------------------------------


def test_sqlite_path_writes_the_file_and_its_index_beside_it(pg: PgStore, root: Path, tmp_path: Path) -> None:
    fill_store(pg, workspaces=("default", "other"), documents=4)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "memory.db"

    report = migrate(pg.url, root, MigrateOptions(workspaces=("default",), sqlite_path=target))

    assert sorted(os.listdir(out)) == ["memory.db", "memory.usearch"]
    [workspace] = report.workspaces
    assert (workspace.database, workspace.index) == (str(target), str(out / "memory.usearch"))
    assert (workspace.documents, workspace.vectors) == (4, 4)
    assert installed(root)["workspaces"] == []
    assert build_leftovers(root) == []
    with Workspace.open(target) as ws:
        assert ws.workspace_id == "default"
        [hit] = ws.search(vector=[1.0, 2.5, 0.25], k=1)  # the vector of the third document
        assert hit.content == "note 2 of default: reset the password, then restart"


SQLITE_PATH_FAILURES: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "vectors": lambda mp: mp.setattr(WorkspaceBuilder, "add_vectors", raising(disk_full())),
    "index": lambda mp: mp.setattr(WorkspaceBuilder, "save_index", raising(disk_full())),
    "verify mismatch": lambda mp: mp.setattr(WorkspaceBuilder, "add_vectors", dropped_vector()),
    "install: closing": lambda mp: mp.setattr(WorkspaceBuilder, "close", raising(OSError(errno.EIO, "I/O error"))),
}


@pytest.mark.parametrize("failure", list(SQLITE_PATH_FAILURES))
def test_sqlite_path_failure_leaves_no_file_and_no_index(
    pg: PgStore, failure: str, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(pg)
    out = tmp_path / "out"
    out.mkdir()
    SQLITE_PATH_FAILURES[failure](monkeypatch)

    with pytest.raises(StepFailed):
        migrate(pg.url, root, MigrateOptions(workspaces=("default",), sqlite_path=out / "memory.db"))

    assert os.listdir(out) == []
    assert installed(root) == NOTHING_INSTALLED
    assert build_leftovers(root) == []


def test_sqlite_path_replace_that_fails_keeps_the_old_file(
    pg: PgStore, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(pg)
    out = tmp_path / "out"
    target = out / "memory.db"
    migrate(pg.url, root, MigrateOptions(workspaces=("default",), sqlite_path=target))
    old = files_under(out)
    pg.add_documents([{"workspace_id": "default", "content": "written after the first migration"}])
    monkeypatch.setattr(WorkspaceBuilder, "add_documents", altered_documents())

    with pytest.raises(StepFailed):
        migrate(pg.url, root, MigrateOptions(workspaces=("default",), sqlite_path=target, replace=True))

    assert files_under(out) == old
    assert sorted(old) == ["memory.db", "memory.usearch"]


# -- kill -9 in the middle of a run ----------------------------------------------------------------


def _wait_for_step(root: Path, pid: int, step: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until the run of process `pid` has recorded `step` in the audit log (or the process ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            lines = audit_lines(root)
        except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or a line half-written
            lines = []
        if any(line["run_id"].startswith(f"{pid}-") and line["step"] == step for line in lines):
            return
        time.sleep(0.005)


def test_kill_9_mid_migration_leaves_no_workspace_and_the_next_run_cleans_up(pg: PgStore, root: Path) -> None:
    fill_large_store(pg, documents=6000)
    before = quiet_fingerprint(pg)
    args = ["migrate", "--pg-url", pg.url, "--root", str(root), "--workspace-id", "default", "--batch-size", "200"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "clawfs", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_step(root, proc.pid, "documents", proc)  # documents written, vectors and the index under way
        assert proc.poll() is None, "the run ended before it could be killed: the store is too small"
        [build_dir] = (root / ".clawfs" / "tmp").glob(f"run-{proc.pid}-*")
        assert files_under(build_dir), "the run had started writing"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert installed(root)["workspaces"] == []
    assert build_dir.exists()  # the dead run could not clean up after itself
    assert [line["step"] for line in audit_lines(root)][-1] != "end"

    report = migrate(pg.url, root, MigrateOptions(workspaces=("default",)))

    assert [(w.workspace_id, w.documents, w.vectors) for w in report.workspaces] == [("default", 6000, 6000)]
    assert installed(root)["workspaces"] == ["default"]
    assert not build_dir.exists()
    assert build_leftovers(root) == []
    assert quiet_fingerprint(pg) == before


def test_a_killed_but_unreaped_process_counts_as_gone() -> None:
    """A run killed under a parent that does not reap it (PID 1 in many containers) stays a zombie: its
    build is still an interrupted run's, for --resume to claim and for a plain run to remove."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert MIGRATE_MODULE._alive(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while MIGRATE_MODULE._alive(child.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not MIGRATE_MODULE._alive(child.pid)  # a zombie now: not reaped until wait() below
        assert Path(f"/proc/{child.pid}").exists()
    finally:
        child.kill()
        child.wait()


def test_a_resume_that_fails_before_opening_its_claim_hands_it_on(
    pg: PgStore, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume claims the interrupted run first; failing before it opened the builds (PostgreSQL down,
    say) must leave them for the next --resume, not delete them."""
    fill_store(pg, documents=5)
    with monkeypatch.context() as patch:
        patch.setattr(WorkspaceBuilder, "add_vectors", raising(KeyboardInterrupt()))
        assert run_cli(capsys, "migrate", "--pg-url", pg.url, "--root", root, "--all-workspaces").code == 130
    kept = build_leftovers(root)
    assert kept

    down = "postgresql://nobody@127.0.0.1:1/none"
    failed = run_cli(capsys, "migrate", "--pg-url", down, "--root", root, "--all-workspaces", "--resume")

    assert failed.code == 4
    assert [Path(p).name for p in build_leftovers(root)] == [Path(p).name for p in kept]  # the same files
    resumed = run_cli(capsys, "migrate", "--pg-url", pg.url, "--root", root, "--all-workspaces", "--resume", "--json")
    assert resumed.code == 0, resumed.stderr
    assert any("kept from the interrupted run" in note for note in resumed.json()["notes"])
    assert build_leftovers(root) == []
