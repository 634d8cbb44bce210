"""Security contracts, end to end against a real PostgreSQL (DESIGN §2 file modes, §3 "Nothing lost,
nothing leaked", §4; README "Security"):

1. every file clawfs writes is 0600 and every directory it makes 0700, whatever the umask, for every
   command (and in the middle of a run: build directories, journals, SQLite's -wal/-shm files);
2. no password reaches stdout, stderr, a log file, the audit log or any other file, nor the text of an
   exception or a report of the Python API: for every command that reads PostgreSQL, on success and on
   error, with and without -v, the password given in the URL (or a key=value DSN), by PGPASSWORD or in
   CLAWFS_PG_URL;
3. the audit log gets exactly one closing `command` line per command (name, result, exit code, user,
   host, the source with `***` for the password), keeps no search text or vector, is only ever appended
   to, and is never created for a --root that does not exist.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

import clawfs._migrate
import clawfs.workspace._backup
from clawfs import (
    CutoverOptions,
    MigrateOptions,
    SyncOptions,
    VerifyOptions,
    Workspace,
    cutover,
    migrate,
    sync,
    sync_setup,
    sync_teardown,
    verify,
)
from clawfs.workspace import Placement
from cli_runner import ApiTexts, Result, files_under, fill_store, run_cli, run_process
from pgstore import PgStore

PASSWORD = "pw-Zq81!xLeak"  # '!' is URL-quoted as %21: both forms must stay out of everything
MARK = "Zq81"  # the part of the password that both forms share; no id, path or hex name holds it
WRONG = "wrong-" + PASSWORD
USER = getpass.getuser()
HOST = socket.gethostname()


def quoted(password: str) -> str:
    return quote(password, safe="")


def redacted(url: str) -> str:
    """What the audit log must record as `source`: the URL with `***` in place of its password."""
    return re.sub(r"^(\w+://[^:@/]*):[^@/]*@", r"\1:***@", url)


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    hostport = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:{quoted(password)}@{hostport}", parts.path, parts.query, ""))


def command_name(args: Iterable[object]) -> str:
    words = [str(a) for a in args]
    if len(words) > 1 and (words[0], words[1]) in {("sync", "setup"), ("sync", "teardown"), ("index", "rebuild")}:
        return f"{words[0]} {words[1]}"
    return words[0]


_ANY = object()


def run_audited(
    capsys: pytest.CaptureFixture[str], root: Path, expect: int, *args: str | os.PathLike[str], source: Any = _ANY
) -> Result:
    """`clawfs ARGS --root ROOT` in this process, then the contract of every command: the exit code
    expected, no password in its output or in any file of the root, and the audit log grown by its
    earlier bytes plus this run's lines, the last of them the one closing `command` line."""
    log = root / ".clawfs" / "audit.log"
    before = log.read_bytes() if log.exists() else b""
    result = run_cli(capsys, *args, "--root", root)
    shown = " ".join(map(str, args))
    assert result.code == expect, f"clawfs {shown}: exit {result.code} not {expect}\n{result.stdout}{result.stderr}"
    assert MARK not in result.stdout, f"clawfs {shown} printed the password:\n{result.stdout}"
    assert MARK not in result.stderr, f"clawfs {shown} printed the password:\n{result.stderr}"
    for name, data in files_under(root).items():
        assert MARK.encode() not in data, f"after clawfs {shown}, the password is in {name}"
    after = log.read_bytes()
    assert after.startswith(before), f"clawfs {shown} rewrote the audit log instead of appending to it"
    lines = [json.loads(line) for line in after[len(before) :].decode("utf-8").splitlines()]
    closing = [line for line in lines if line["step"] == "command"]
    assert len(closing) == 1, f"clawfs {shown} added {len(closing)} closing lines: {lines}"
    line = closing[0]
    assert lines[-1] == line, "the closing line is the run's last line"
    assert line["command"] == command_name(args)
    assert (line["result"], line["exit_code"]) == ("ok" if expect == 0 else "failed", result.code)
    assert (line["user"], line["host"]) == (USER, HOST)
    if expect == 0:
        assert "error" not in line, line
    if source is not _ANY:
        assert line["source"] == source, line
    return result


# -- 1. file modes whatever the umask ------------------------------------------------------------------


def tree(path: Path, itself: bool = True) -> list[Path]:
    """`path` (unless not `itself`) and everything below it; nothing when it does not exist."""
    if not path.exists():
        return []
    below = sorted(path.rglob("*")) if path.is_dir() else []
    return [path, *below] if itself else below


def wrong_modes(paths: Iterable[Path], base: Path, moment: str) -> dict[str, str]:
    """Path (relative to `base`) -> what is wrong with its mode, seen at `moment`."""
    wrong = {}
    for p in paths:
        try:
            mode = os.lstat(p).st_mode
        except FileNotFoundError:
            continue  # gone between listing and looking (renamed into place)
        if stat.S_ISREG(mode):
            expected = 0o600
        elif stat.S_ISDIR(mode):
            expected = 0o700
        else:
            wrong[str(p.relative_to(base))] = f"neither file nor directory: {stat.filemode(mode)} ({moment})"
            continue
        if stat.S_IMODE(mode) != expected:
            wrong[str(p.relative_to(base))] = f"{stat.S_IMODE(mode):04o}, expected {expected:04o} ({moment})"
    return wrong


def test_every_file_and_directory_clawfs_writes_is_private_whatever_the_umask(
    pg: PgStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(pg, workspaces=("default", "team/a.b"), documents=3, identities=("agent-1", "agent/x"))
    root = tmp_path / "clawfs"  # made by clawfs: checked, itself included
    backup_dir = tmp_path / "backup"  # made by clawfs
    elsewhere = tmp_path / "elsewhere"  # the test's own directory: only what clawfs writes in it is checked
    elsewhere.mkdir()
    named_db = elsewhere / "team.db"
    logs = tmp_path / "logs"
    logs.mkdir()
    log_file = logs / "migrate.log"
    wrong: dict[str, str] = {}
    seen: list[str] = []

    def check(moment: str) -> None:
        paths = [*tree(root), *tree(backup_dir), *tree(elsewhere, itself=False), *tree(log_file)]
        paths += [p for top in tmp_path.iterdir() if top.name.startswith(".") for p in tree(top)]  # staging
        seen.extend(str(p.relative_to(tmp_path)) for p in paths)
        for path, problem in wrong_modes(paths, tmp_path, moment).items():
            wrong.setdefault(path, problem)  # when it was first seen wrong

    real_install = clawfs._migrate._Migration._install
    real_put = Placement.put
    real_copy_index = clawfs.workspace._backup._copy_index

    def install(self: Any) -> tuple[int, int]:
        check("migrate, before install: builds open")
        return real_install(self)

    def put(self: Placement, new: Path | None, final: Path) -> None:
        check(f"before putting {final.name} in place")
        real_put(self, new, final)

    def copy_index(source_db: Path, staging: Path, key: Any) -> bool:
        rebuilt = real_copy_index(source_db, staging, key)
        check("backup, staging")
        return rebuilt

    monkeypatch.setattr(clawfs._migrate._Migration, "_install", install)
    monkeypatch.setattr(Placement, "put", put)
    monkeypatch.setattr(clawfs.workspace._backup, "_copy_index", copy_index)

    def ok(*args: str | os.PathLike[str]) -> None:
        result = run_cli(capsys, *args, "--root", root)
        assert result.code == 0, f"clawfs {' '.join(map(str, args))}:\n{result.stdout}{result.stderr}"
        check(command_name(args))

    url = pg.url
    old_umask = os.umask(0)
    try:
        ok("migrate", "--pg-url", url, "--all-workspaces", "--log-file", log_file)
        ok("migrate", "--pg-url", url, "--workspace-id", "team/a.b", "--sqlite-path", named_db)
        pg.sql("UPDATE documents SET content = 'note edited in PostgreSQL' WHERE id = 1")
        ok("sync", "--pg-url", url, "--all-workspaces")
        ok("sync", "--pg-url", url, "--workspace-id", "team/a.b", "--sqlite-path", named_db)
        ok("sync", "setup", "--pg-url", url)
        assert (root / ".clawfs" / "replication.json").is_file()
        pg.sql("UPDATE documents SET content = 'note edited again' WHERE id = 2")
        ok("sync", "--pg-url", url, "--all-workspaces")
        ok("sync", "teardown", "--pg-url", url)
        ok("verify", "--pg-url", url, "--all-workspaces", "--sample", "5")
        ok("index", "rebuild", "--workspace-id", "default")
        ok("backup", "--workspace-id", "default", "--to", backup_dir)
        ok("restore", "--from", backup_dir, "--replace")
        ok("search", "--workspace-id", "default", "--text", "note")
        ok("migrate", "--pg-url", url, "--all-workspaces", "--replace")
        ok("cutover", "--pg-url", url, "--all-workspaces", "--sample", "5")
        # a workspace in use through the API: SQLite's own -wal and -shm files exist while it is open
        with Workspace.open(root, "default") as ws:
            ws.add("a note written through the API", vectors=[[0.5, 0.25, 1.0]])
            check("a workspace open for writing")
        with Workspace.open(named_db) as ws:
            ws.add("a note written through the API", vectors=[[0.5, 0.25, 1.0]])
            check("a --sqlite-path workspace open for writing")
    finally:
        os.umask(old_umask)
        pg.drop_slots()

    # what the walk covered (so an empty `wrong` means something)
    for expected in (
        "clawfs",
        "clawfs/.clawfs",
        "clawfs/.clawfs/audit.log",
        "clawfs/.clawfs/replication.json",
        "clawfs/.clawfs/tmp",
        "clawfs/workspaces",
        "clawfs/workspaces/default/workspace.db",
        "clawfs/workspaces/default/index.usearch",
        "clawfs/workspaces/team%2Fa%2Eb/workspace.db",
        "clawfs/agents/agent-1/identity.json",
        "clawfs/agents/agent%2Fx/identity.json",
        "clawfs/workspaces/default/workspace.db-wal",
        "clawfs/workspaces/default/workspace.db-shm",
        "elsewhere/team.db",
        "elsewhere/team.usearch",
        "elsewhere/team.db-wal",
        "backup",
        "backup/workspace.db",
        "backup/index.usearch",
        "backup/manifest.json",
        "logs/migrate.log",
    ):
        assert expected in seen, f"{expected} was never there to check"
    assert any(s.startswith("clawfs/.clawfs/tmp/run-") for s in seen), "no build directory was checked"
    assert wrong == {}, "not private:\n" + "\n".join(f"  {p}: {m}" for p, m in sorted(wrong.items()))


# -- 2. no password anywhere -------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretRole:
    """A role that must give its password (scram-sha-256): owns the store's tables, with REPLICATION."""

    pg: PgStore
    user: str

    def url(self, password: str | None = PASSWORD, unreachable: bool = False) -> str:
        auth = self.user if password is None else f"{self.user}:{quoted(password)}"
        if unreachable:
            return f"postgresql://{auth}@127.0.0.1:1/{self.pg.dbname}?connect_timeout=5"
        parts = urlsplit(self.pg.server_url)
        hostport = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, f"{auth}@{hostport}", "/" + self.pg.dbname, parts.query, ""))

    def dsn(self, password: str, unreachable: bool = False) -> str:
        """The same in libpq's key=value form (the password as it is, not URL-quoted)."""
        where = "host=127.0.0.1 port=1 connect_timeout=5" if unreachable else f"host={self.socket_dir}"
        return f"{where} dbname={self.pg.dbname} user={self.user} password={password}"

    @property
    def socket_dir(self) -> str:
        return parse_qs(urlsplit(self.pg.server_url).query)["host"][0]


@pytest.fixture
def secret(pg: PgStore) -> Iterator[SecretRole]:
    if os.environ.get("CLAWFS_TEST_PG_URL"):
        pytest.skip("needs the embedded server: the test edits its pg_hba.conf")
    fill_store(pg, workspaces=("default", "team-a"), documents=3, identities=("agent-1",))
    user = f"{pg.dbname}_pw"
    ident = sql.Identifier(user)
    pg.sql(sql.SQL("CREATE ROLE {} LOGIN REPLICATION PASSWORD {}").format(ident, sql.Literal(PASSWORD)))
    for table in ("documents", "vectors", "metadata", "agent_identities"):
        pg.sql(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), ident))
    pg.sql(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(sql.Identifier(pg.dbname), ident))
    role = SecretRole(pg, user)
    # the embedded server trusts every local login: make this role's password count
    hba = Path(role.socket_dir) / "pg_hba.conf"
    original = hba.read_bytes()
    hba.write_bytes(f"local all {user} scram-sha-256\n".encode() + original)  # in place: its owner is kept
    try:
        pg.sql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while True:  # the reload is a signal: wait until a login without the password is refused
            try:
                psycopg.connect(role.url(None), password="", connect_timeout=5).close()
            except psycopg.OperationalError:
                break
            assert time.monotonic() < deadline, "the server never asked for the password"
            time.sleep(0.02)
        psycopg.connect(role.url(), connect_timeout=5).close()
        yield role
    finally:
        hba.write_bytes(original)
        pg.sql("SELECT pg_reload_conf()")
        pg.drop_slots()


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("PG", "CLAWFS_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("given_by", ["--pg-url", "PGPASSWORD", "CLAWFS_PG_URL", "DSN"])
def test_no_password_in_any_output_or_file_whatever_the_command_and_its_outcome(
    secret: SecretRole,
    given_by: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pg = secret.pg
    root = tmp_path / "clawfs"
    log_file = tmp_path / "migrate.log"
    clean_environment(monkeypatch)
    # with -v (log lines, tracebacks) output is a superset of without: both in one mode, -v in the others
    verbosities: tuple[tuple[str, ...], ...] = ((), ("-v",)) if given_by == "--pg-url" else (("-v",),)
    tracebacks = 0
    ran: list[str] = []

    def source(password: str = PASSWORD, unreachable: bool = False) -> tuple[list[str], str]:
        """The arguments that give the source, its environment set, and the source the audit must record."""
        monkeypatch.delenv("PGPASSWORD", raising=False)
        monkeypatch.delenv("CLAWFS_PG_URL", raising=False)
        if given_by == "PGPASSWORD":
            monkeypatch.setenv("PGPASSWORD", password)
            url = secret.url(None, unreachable)
            return ["--pg-url", url], url
        if given_by == "DSN":  # --pg-url "host=... password=..."
            dsn = secret.dsn(password, unreachable)
            return ["--pg-url", dsn], dsn.replace(f"password={password}", "password=***")
        url = secret.url(password, unreachable)
        assert quoted(password) in url and redacted(url) != url
        if given_by == "CLAWFS_PG_URL":
            monkeypatch.setenv("CLAWFS_PG_URL", url)
            return [], redacted(url)
        return ["--pg-url", url], redacted(url)

    def ok(*args: str | os.PathLike[str], again: bool = True) -> None:
        """Succeeds: with -v; in the --pg-url mode also as --json (`again`: when it can run twice)."""
        for output in (["-v"], ["--json"]) if given_by == "--pg-url" and again else (["-v"],):
            given, where = source()
            run_audited(capsys, root, 0, *args, *given, *output, source=where)
            ran.append(command_name(args))

    def fails(code: int, *args: str | os.PathLike[str], password: str = PASSWORD, unreachable: bool = False) -> None:
        nonlocal tracebacks
        for verbose in verbosities:
            given, where = source(password, unreachable)
            result = run_audited(capsys, root, code, *args, *given, *verbose, source=where)
            assert len(result.error_lines) == (code != 3), result.stderr  # a mismatch is a report, not an error
            tracebacks += "Traceback" in result.stderr
            ran.append(command_name(args))

    everything = ["--all-workspaces"]
    sample = ["--sample", "5"]

    # migrate
    ok("migrate", *everything, "--replace", "--log-file", log_file)
    fails(2, "migrate", "--workspace-id", "nope", "--log-file", log_file)
    fails(4, "migrate", *everything, "--replace", "--log-file", log_file, password=WRONG)
    fails(4, "migrate", *everything, "--replace", "--log-file", log_file, unreachable=True)
    # verify, also a mismatch
    ok("verify", *everything, *sample)
    pg.sql("UPDATE documents SET content = 'changed behind the copy' WHERE id = 1")
    fails(3, "verify", *everything, *sample)
    fails(4, "verify", *everything, password=WRONG)
    fails(4, "verify", *everything, unreachable=True)
    # sync by comparison
    fails(4, "sync", *everything, password=WRONG)
    fails(4, "sync", *everything, unreachable=True)
    fails(5, "sync", "--workspace-id", "nope")
    ok("sync", *everything)
    # sync setup, sync through the slot, sync teardown
    fails(2, "sync", "teardown")  # no slot yet
    fails(4, "sync", "setup", password=WRONG)
    fails(4, "sync", "setup", unreachable=True)
    ok("sync", "setup", again=False)
    record = root / ".clawfs" / "replication.json"
    assert record.is_file() and MARK.encode() not in record.read_bytes()
    fails(2, "sync", "setup")  # already set up
    pg.sql("UPDATE documents SET content = 'changed once more' WHERE id = 2")
    ok("sync", *everything)
    fails(4, "sync", "teardown", password=WRONG)
    fails(4, "sync", "teardown", unreachable=True)
    fails(4, "sync", "teardown", "--slot", "clawfs_000000000000", unreachable=True)
    ok("sync", "teardown", again=False)
    assert not record.exists()
    # cutover
    ok("cutover", *everything, *sample)
    fails(5, "cutover", "--workspace-id", "nope", *sample)
    fails(4, "cutover", *everything, *sample, password=WRONG)
    fails(4, "cutover", *everything, *sample, unreachable=True)
    # a table missing in PostgreSQL
    pg.sql("ALTER TABLE vectors RENAME TO vectors_elsewhere")
    try:
        fails(4, "migrate", *everything, "--replace", "--log-file", log_file)
        fails(4, "verify", *everything, *sample)
        fails(4, "sync", *everything)
        fails(4, "cutover", *everything, *sample)
    finally:
        pg.sql("ALTER TABLE vectors_elsewhere RENAME TO vectors")

    assert {"migrate", "verify", "sync", "sync setup", "sync teardown", "cutover"} <= set(ran)
    if ("-v",) in verbosities:
        assert tracebacks > 0, "-v showed no traceback: the scrubbing of tracebacks was not tested"
    assert "documents" in log_file.read_text("utf-8")  # the --log-file was written (and is read below)
    written = files_under(tmp_path)
    for name in (".clawfs/audit.log", "workspaces/default/workspace.db", "agents/agent-1/identity.json"):
        assert f"clawfs/{name}" in written
    leaks = sorted(name for name, data in written.items() if MARK.encode() in data)
    assert leaks == [], f"the password is in {leaks}"


def test_python_api_errors_and_reports_never_hold_the_password(
    secret: SecretRole, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment(monkeypatch)
    root = tmp_path / "clawfs"
    url, wrong, unreachable = secret.url(), secret.url(WRONG), secret.url(unreachable=True)
    seen = ApiTexts()
    texts, keep, error = seen.texts, seen.keep, seen.error

    everything = MigrateOptions(all_workspaces=True, replace=True)
    keep("migrate", migrate(url, root, everything))
    keep("verify", verify(url, root, VerifyOptions(all_workspaces=True, sample=5)))
    secret.pg.sql("UPDATE documents SET content = 'changed behind the copy' WHERE id = 1")
    mismatch = keep("verify mismatch", verify(url, root, VerifyOptions(all_workspaces=True, sample=5)))
    assert not mismatch.ok
    keep("sync", sync(url, root, SyncOptions(all_workspaces=True)))
    keep("sync setup", sync_setup(url, root))
    error("sync setup twice", lambda: sync_setup(url, root))
    keep("sync teardown", sync_teardown(url, root))
    keep("cutover", cutover(url, root, CutoverOptions(all_workspaces=True, sample=5)))

    for name, bad in (("wrong password", wrong), ("unreachable", unreachable)):
        error(f"migrate, {name}", lambda bad=bad: migrate(bad, root, everything))
        error(f"verify, {name}", lambda bad=bad: verify(bad, root, VerifyOptions(all_workspaces=True)))
        error(f"sync, {name}", lambda bad=bad: sync(bad, root, SyncOptions(all_workspaces=True)))
        error(f"sync setup, {name}", lambda bad=bad: sync_setup(bad, root))
        error(f"sync teardown, {name}", lambda bad=bad: sync_teardown(bad, root, slot="clawfs_000000000000"))
        error(f"cutover, {name}", lambda bad=bad: cutover(bad, root, CutoverOptions(all_workspaces=True)))
    error("migrate, unknown workspace", lambda: migrate(url, root, MigrateOptions(workspaces=("nope",))))
    error("sync, unknown workspace", lambda: sync(url, root, SyncOptions(workspaces=("nope",))))
    error("cutover, unknown workspace", lambda: cutover(url, root, CutoverOptions(workspaces=("nope",))))
    secret.pg.sql("ALTER TABLE documents RENAME TO documents_elsewhere")
    try:
        error("migrate, missing table", lambda: migrate(url, root, everything))
        error("verify, missing table", lambda: verify(url, root, VerifyOptions(all_workspaces=True)))
    finally:
        secret.pg.sql("ALTER TABLE documents_elsewhere RENAME TO documents")
    monkeypatch.setenv("PGPASSWORD", WRONG)
    error("migrate, wrong PGPASSWORD", lambda: migrate(secret.url(None), root, everything))
    error("sync, wrong PGPASSWORD", lambda: sync(secret.url(None), root, SyncOptions(all_workspaces=True)))

    assert any("password authentication failed" in t for t in texts.values())  # the errors were the real ones
    leaks = {what: text for what, text in texts.items() if MARK in text}
    assert leaks == {}, "the password is in:\n" + "\n".join(f"  {w}: {t[:300]}" for w, t in leaks.items())
    files = {name: data for name, data in files_under(root).items() if MARK.encode() in data}
    assert files == {}, f"the password is in {sorted(files)}"


# -- 3. the audit log --------------------------------------------------------------------------------

SEARCH_TEXT = "kumquat-Qx9 private question"
QUERY_VECTOR = "[0.314159265, 0.5, 0.25]"


def test_audit_log_has_one_closing_line_per_command_and_keeps_no_search_text_or_vector(
    pg: PgStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill_store(pg, documents=3)
    root = tmp_path / "clawfs"
    backup_dir = tmp_path / "backup"
    # the embedded server trusts local logins: the password is then only in the URL, which is what matters
    url = pg.url if os.environ.get("CLAWFS_TEST_PG_URL") else with_password(pg.url, PASSWORD)

    def run(code: int, *args: str | os.PathLike[str], source: Any = None) -> Result:
        return run_audited(capsys, root, code, *args, source=source)

    run(0, "migrate", "--pg-url", url, "--all-workspaces", source=redacted(url))
    run(0, "search", "--workspace-id", "default", "--text", SEARCH_TEXT)
    run(0, "search", "--workspace-id", "default", "--vector", QUERY_VECTOR, "--json")
    run(0, "search", "--workspace-id", "default", "--text", SEARCH_TEXT, "--vector", QUERY_VECTOR, "-v")
    run(2, "search", "--workspace-id", "default", "--mode", "fts")  # no --text
    run(5, "search", "--workspace-id", "nope", "--text", SEARCH_TEXT, "-v")
    run(0, "index", "rebuild", "--workspace-id", "default")
    run(5, "index", "rebuild", "--workspace-id", "nope")
    run(0, "backup", "--workspace-id", "default", "--to", backup_dir)
    run(2, "backup", "--workspace-id", "default", "--to", backup_dir)  # not an empty directory
    run(0, "restore", "--from", backup_dir, "--replace", "--json")
    run(5, "restore", "--from", backup_dir)  # the workspace exists
    run(2, "restore", "--from", tmp_path / "no-backup-here")
    run(0, "verify", "--pg-url", url, "--all-workspaces", "--sample", "5", source=redacted(url))
    # a child process: the audit line's exit code is the real process exit code
    log = root / ".clawfs" / "audit.log"
    before = log.read_bytes()
    child = run_process("search", "--root", root, "--workspace-id", "nope", "--text", SEARCH_TEXT)
    assert child.code == 5, child.stderr
    after = log.read_bytes()
    assert after.startswith(before)
    [line] = [json.loads(x) for x in after[len(before) :].decode("utf-8").splitlines()]
    assert (line["step"], line["command"], line["result"], line["exit_code"]) == ("command", "search", "failed", 5)
    assert not line["run_id"].startswith(f"{os.getpid()}-")

    text = after.decode("utf-8")
    assert "kumquat" not in text and "Qx9" not in text, "a search text is in the audit log"
    assert "314159265" not in text, "a query vector is in the audit log"
    searches = [json.loads(x) for x in text.splitlines() if json.loads(x)["command"] == "search"]
    assert len(searches) == 6
    given = [{k: v for k, v in s["options"].items() if k in ("text", "vector")} for s in searches]
    assert given[:3] == [{"text": "(given)"}, {"vector": "(given)"}, {"text": "(given)", "vector": "(given)"}]
    assert all(s["source"] is None for s in searches)
    for line in map(json.loads, text.splitlines()):
        if line["source"] is not None:
            assert line["source"] == redacted(url)
            assert os.environ.get("CLAWFS_TEST_PG_URL") or ":***@" in line["source"]
    assert MARK not in text


def test_a_root_that_does_not_exist_is_not_created_for_an_audit_line(
    pg: PgStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README "Security": nothing is written for a --root that does not exist (a mistyped --root is not
    created for its audit line). Only migrate and restore make a root: they are not run here."""
    fill_store(pg, documents=2)
    missing = tmp_path / "no-such-root"
    unreachable = f"postgresql://someone:{quoted(PASSWORD)}@127.0.0.1:1/{pg.dbname}?connect_timeout=5"
    commands: dict[str, list[str | os.PathLike[str]]] = {
        "verify": ["verify", "--pg-url", pg.url, "--all-workspaces", "--sample", "5"],
        "verify --workspace-id": ["verify", "--pg-url", pg.url, "--workspace-id", "default"],
        "verify, unreachable": ["verify", "--pg-url", unreachable, "--all-workspaces"],
        "sync": ["sync", "--pg-url", pg.url, "--all-workspaces"],
        "sync --workspace-id": ["sync", "--pg-url", pg.url, "--workspace-id", "default"],
        "sync, unreachable": ["sync", "--pg-url", unreachable, "--all-workspaces"],
        "sync setup, unreachable": ["sync", "setup", "--pg-url", unreachable],
        "sync teardown": ["sync", "teardown", "--pg-url", pg.url],
        "sync teardown --slot, unreachable": ["sync", "teardown", "--pg-url", unreachable, "--slot", "clawfs_x"],
        "cutover": ["cutover", "--pg-url", pg.url, "--all-workspaces", "--sample", "5"],
        "cutover --workspace-id": ["cutover", "--pg-url", pg.url, "--workspace-id", "default"],
        "cutover, unreachable": ["cutover", "--pg-url", unreachable, "--all-workspaces"],
        "search": ["search", "--workspace-id", "default", "--text", "note"],
        "index rebuild": ["index", "rebuild", "--workspace-id", "default"],
        "backup": ["backup", "--workspace-id", "default", "--to", tmp_path / "backup"],
        "restore": ["restore", "--from", tmp_path / "no-backup-here"],
    }
    created: dict[str, list[str]] = {}
    codes: dict[str, int] = {}
    try:
        for name, args in commands.items():
            result = run_cli(capsys, *args, "--root", missing)
            codes[name] = result.code
            assert MARK not in result.stdout + result.stderr
            if missing.exists():
                created[name] = sorted(files_under(missing))
                shutil.rmtree(missing)
    finally:
        pg.drop_slots()
    assert created == {}, f"created the missing root {missing.name} (exit codes {codes}):\n" + "\n".join(
        f"  {name}: {files}" for name, files in created.items()
    )
    assert not (tmp_path / "backup").exists()
