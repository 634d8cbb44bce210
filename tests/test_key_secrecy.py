"""No encryption key ever shows (README "Encryption", DESIGN §3 "nothing leaked"), end to end against a
real PostgreSQL:

1. no key -- the current one or the new one of `rekey`; a passphrase or 64 hex digits (a raw key); given
   by $CLAWFS_KEY, --key-file, $CLAWFS_NEW_KEY or --new-key-file -- reaches stdout, stderr (read at the
   file descriptor, so SQLCipher's own messages count), a --log-file, the audit log, a --json report or
   any file under the root, a backup directory or the test's other directories, in any form: as given,
   URL-quoted, in part, as the raw key's 32 bytes or their hex in either case, and for a passphrase as the
   key SQLCipher derives from it for each database's salt (the test proves that derived key opens the
   database, so the search looks for the bytes really used). This holds for every command that takes a
   key, on success and on each kind of error (another key, no key, usage errors, a missing workspace, an
   unreachable PostgreSQL), with and without -v (tracebacks), in this process and as a child process (the
   real entry point), also in the middle of a migration (its build directory). Raw keys run every case
   by $CLAWFS_KEY and by --key-file; a passphrase (whose derivation takes ~0.25 s a database) runs them by
   --key-file, and by $CLAWFS_KEY in the rekey and child process tests;
2. nor the str, repr or JSON of the Python API's options, reports, workspaces and errors (their chain);
3. the audit log's closing `command` line records --key-file/$CLAWFS_KEY and --new-key-file/$CLAWFS_NEW_KEY
   only as "(given)" (and a command without a key option records none);
4. a key file others may read gets one warning line on stderr (its path, never its content) and the
   command still runs; an unreadable, empty, non-UTF-8 or NUL-holding key file is a usage error that
   shows none of its content.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import clawfs._migrate
import clawfs._sync
from clawfs import (
    CutoverOptions,
    Key,
    MigrateOptions,
    SyncOptions,
    VerifyOptions,
    Workspace,
    backup,
    cutover,
    migrate,
    restore,
    sync,
    sync_setup,
    sync_teardown,
    verify,
)
from clawfs.errors import EXIT_SOURCE, EXIT_USAGE, EXIT_VERIFICATION, EXIT_WORKSPACE
from clawfs.workspace import KeyProblem, is_encrypted, rekey
from cli_runner import ApiTexts, Result, files_under, fill_store, run_cli, run_process
from pgstore import PgStore

# Distinctive secrets: no id, path, time, hash or message of clawfs holds their marks or hex runs.
PASSPHRASE = "Tamarind Kq47!zephyr~oak"  # ' ', '!' and '~' are URL-quoted: both forms must stay out
OTHER_PASSPHRASE = "Tamarisk Kq48!zephyr~elm"
NEW_PASSPHRASE = "Persimmon Jx8#quasar^fen"
RAW = "3A9F1C7E5B2D4086E1F3A5C7B9D0E2F46A8C0E1F3B5D7092C4E6A8B0D2F41357"  # upper case: SQLCipher gets lower
OTHER_RAW = "3a9f1c7e5b2d408600001111222233334444555566667777888899990aaabbbb"
NEW_RAW = "7d0e4b9a2c6f8e1357b9d1f3a5c7e9b02468ace013579bdffdb97531eca86420"
# A part of a key counts as a leak: any run of this many characters of a passphrase or a key's hex, or bytes
# of a key (long enough that no id, hash or encrypted page of a test holds one by chance).
TEXT_PIECE, HEX_PIECE, BYTES_PIECE = 8, 12, 8
RAW_KEY = re.compile(r"[0-9A-Fa-f]{64}")
HEADER = b"SQLite format 3\x00"
KDF_ITERATIONS = 256_000  # SQLCipher 4's PBKDF2-HMAC-SHA512 for a passphrase
ERROR_PREFIX = "clawfs: error:"
WARNING_PREFIX = "clawfs: warning:"
KEY_COMMANDS = {
    "migrate",
    "verify",
    "sync",
    "sync setup",
    "cutover",
    "search",
    "index rebuild",
    "backup",
    "restore",
    "rekey",
}


# -- what must not appear ----------------------------------------------------------------------------------


def pieces(name: str, whole: bytes, width: int) -> dict[str, bytes]:
    """`whole` and every run of `width` of its characters or bytes."""
    return {name: whole} | {f"{name}[{i}:{i + width}]": whole[i : i + width] for i in range(len(whole) - width + 1)}


def secret_forms(secret: str) -> dict[str, bytes]:
    """The forms of a key a leak could take, whatever the database: as given, URL-quoted, and any part of
    it; for a raw key also its 32 bytes and their hex in either case, and any part of those."""
    forms = {"URL-quoted": quote(secret, safe="").encode()} | pieces("as given", secret.encode(), TEXT_PIECE)
    if RAW_KEY.fullmatch(secret):
        forms |= raw_forms("", bytes.fromhex(secret))
    return forms


def raw_forms(name: str, raw: bytes) -> dict[str, bytes]:
    return (
        pieces(f"{name}bytes", raw, BYTES_PIECE)
        | pieces(f"{name}hex", raw.hex().encode(), HEX_PIECE)
        | pieces(f"{name}HEX", raw.hex().upper().encode(), HEX_PIECE)
    )


@functools.cache
def derived_key(passphrase: str, salt: bytes) -> bytes:
    """The raw key SQLCipher 4 uses for a database with this salt (its first 16 bytes) and this passphrase."""
    return hashlib.pbkdf2_hmac("sha512", passphrase.encode(), salt, KDF_ITERATIONS, 32)


def opens_with_raw_key(path: Path, raw: bytes) -> bool:
    """Whether SQLCipher itself opens `path` with this raw key."""
    from sqlcipher3 import dbapi2 as sqlcipher

    db = sqlcipher.connect(str(path))
    try:
        db.execute("PRAGMA cipher_log_level = NONE")
        db.execute(f"PRAGMA key = \"x'{raw.hex()}'\"")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher.DatabaseError:
        return False
    finally:
        db.close()
    return True


class Secrets:
    """A test's keys, and the search for every form of them in texts and files."""

    def __init__(self, *keys: str) -> None:
        self.keys = keys
        self.salts: set[bytes] = set()  # of every encrypted database seen so far (their keys may live on)
        self.proven: set[tuple[str, bytes]] = set()  # (passphrase, salt) whose derived key opened a database
        self._clean: set[bytes] = set()  # digests of texts searched in vain for the needles of `_clean_for`
        self._clean_for: tuple[Any, ...] = ()

    def needles(self) -> dict[str, bytes]:
        needles = {f"{name} of {key!r}": form for key in self.keys for name, form in secret_forms(key).items()}
        for key in self.keys:
            if not RAW_KEY.fullmatch(key):
                for salt in self.salts:
                    for name, form in raw_forms("derived key's ", derived_key(key, salt)).items():
                        needles[f"{name} of {key!r} for salt {salt.hex()}"] = form
        return needles

    def learn_salts(self, files: dict[str, bytes], base: Path) -> None:
        """Note the salt of each encrypted database among `files` (clawfs's database files end in .db)."""
        for name, data in files.items():
            salt = data[:16]
            if not name.endswith(".db") or len(salt) < 16 or salt == HEADER:
                continue
            self.salts.add(salt)
            for key in self.keys:
                if RAW_KEY.fullmatch(key) or (key, salt) in self.proven:
                    continue
                if opens_with_raw_key(base / name, derived_key(key, salt)):  # the search looks for the real key
                    self.proven.add((key, salt))

    def assert_none_in(self, what: str, texts: dict[str, bytes]) -> None:
        needles = self.needles()
        state = (self.keys, frozenset(self.salts))
        if state != self._clean_for:  # texts found clean stay clean until there is more to look for
            self._clean, self._clean_for = set(), state
        leaks = []
        for where, data in texts.items():
            digest = hashlib.blake2b(data).digest()
            if digest not in self._clean:
                found = [f"{form} in {where}" for form, needle in needles.items() if needle in data]
                leaks += found
                if not found:
                    self._clean.add(digest)
        assert leaks == [], f"{what}: a key shows:\n" + "\n".join(f"  {leak}" for leak in leaks)


# -- running clawfs ------------------------------------------------------------------------------------------


def command_name(args: tuple[str | os.PathLike[str], ...]) -> str:
    words = [str(a) for a in args[:2]]
    return " ".join(words) if words in (["index", "rebuild"], ["sync", "setup"], ["sync", "teardown"]) else words[0]


class Session:
    """One test's clawfs runs in `tmp_path` (root `clawfs`, key files in `keys`): each run is checked for
    its exit code, for no key in its output or in any file but the key files, and for its audit line."""

    def __init__(
        self, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, secrets: Secrets
    ) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "clawfs"
        self.keys_dir = tmp_path / "keys"
        self.keys_dir.mkdir()
        self.capfd = capfd
        self.monkeypatch = monkeypatch
        self.secrets = secrets
        self.ran: list[str] = []  # command names
        self.tracebacks = 0
        for name in list(os.environ):
            if name.startswith(("CLAWFS_", "PG")):
                monkeypatch.delenv(name)

    def key_file(self, secret: str, mode: int = 0o600) -> Path:
        """A file holding `secret` as `echo` writes it (with a line break), with this mode."""
        path = self.keys_dir / f"key-{hashlib.sha256(secret.encode()).hexdigest()[:8]}-{mode:o}"
        path.write_bytes(secret.encode() + b"\n")
        path.chmod(mode)
        return path

    def give(self, secret: str | None, by: str, new: bool = False) -> list[str | os.PathLike[str]]:
        """Give `secret` as the key (`new`: rekey's new key) by "env" or "file" (the arguments to add);
        None: give none."""
        env = "CLAWFS_NEW_KEY" if new else "CLAWFS_KEY"
        self.monkeypatch.delenv(env, raising=False)
        if secret is None:
            return []
        if by == "env":
            self.monkeypatch.setenv(env, secret)
            return []
        return ["--new-key-file" if new else "--key-file", self.key_file(secret)]

    def files(self) -> dict[str, bytes]:
        """Every file under tmp_path but the key files (which hold the keys on purpose)."""
        return {
            n: data for n, data in files_under(self.tmp).items() if not (self.tmp / n).is_relative_to(self.keys_dir)
        }

    def check_no_key(self, what: str, **texts: str) -> None:
        files = self.files()
        self.secrets.learn_salts(files, self.tmp)
        self.secrets.assert_none_in(what, {name: text.encode() for name, text in texts.items()} | files)

    def run(self, expect: int, *args: str | os.PathLike[str], audited: bool = True, child: bool = False) -> Result:
        """`clawfs ARGS --root ROOT` in this process (`child`: as a child process, with this environment);
        `audited`: it adds one closing audit line (not when it fails while parsing its options, or when the
        root does not exist)."""
        log = self.root / ".clawfs" / "audit.log"
        before = log.read_bytes() if log.exists() else b""
        if child:
            result = run_process(*args, "--root", self.root, env=dict(os.environ))
        else:
            result = run_cli(self.capfd, *args, "--root", self.root)
        shown = "clawfs " + " ".join(map(str, args))
        assert result.code == expect, f"{shown}: exit {result.code}, not {expect}\n{result.stdout}{result.stderr}"
        if expect not in (0, EXIT_VERIFICATION):  # a mismatch is a report, not an error
            assert len(result.error_lines) == 1, f"{shown}: not one error line:\n{result.stderr}"
        self.check_no_key(shown, stdout=result.stdout, stderr=result.stderr)
        self.tracebacks += "Traceback" in result.stderr
        self.ran.append(command_name(args))
        after = log.read_bytes() if log.exists() else b""
        assert after.startswith(before), f"{shown} rewrote the audit log"
        closing = [x for x in map(json.loads, after[len(before) :].decode().splitlines()) if x["step"] == "command"]
        if not audited:
            assert closing == [], f"{shown} wrote an audit line: {closing}"
            return result
        assert len(closing) == 1, f"{shown} added {len(closing)} closing audit lines: {closing}"
        [line] = closing
        name = command_name(args)
        assert (line["command"], line["exit_code"]) == (name, result.code), line
        assert child != line["run_id"].startswith(f"{os.getpid()}-"), line
        options = line["options"]
        if name in KEY_COMMANDS and ("--key-file" in args or "CLAWFS_KEY" in os.environ):
            assert options.get("key") == "(given)", line
        else:
            assert "key" not in options, line
        if name == "rekey" and ("--new-key-file" in args or "CLAWFS_NEW_KEY" in os.environ):
            assert options.get("new_key") == "(given)", line
        else:
            assert "new_key" not in options, line
        return result


def unreachable_url(pg: PgStore) -> str:
    return f"postgresql://nobody@127.0.0.1:1/{pg.dbname}?connect_timeout=5"


def interrupt_follow_after(monkeypatch: pytest.MonkeyPatch, rounds: int) -> list[Any]:
    """Make `sync --follow` get Ctrl-C as it starts round `rounds` + 1 (the rounds before are real syncs);
    the reports of the rounds it ran."""
    real = clawfs._sync.sync
    reports: list[Any] = []

    def sync_then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        if len(reports) == rounds:
            raise KeyboardInterrupt
        reports.append(real(*args, **kwargs))
        return reports[-1]

    monkeypatch.setattr(clawfs._sync, "sync", sync_then_ctrl_c)
    return reports


# -- 1. every command, every outcome ------------------------------------------------------------------------


@pytest.mark.parametrize(("form", "given_by"), [("raw", "env"), ("raw", "file"), ("passphrase", "file")])
def test_no_key_in_any_output_or_file_whatever_the_command_and_its_outcome(
    pg: PgStore,
    form: str,
    given_by: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret, other = (PASSPHRASE, OTHER_PASSPHRASE) if form == "passphrase" else (RAW, OTHER_RAW)
    fill_store(pg, workspaces=("default",), documents=3, identities=("agent-1",))
    secrets = Secrets(secret, other)
    s = Session(tmp_path, capfd, monkeypatch, secrets)
    root, log_file, backups = s.root, tmp_path / "logs" / "clawfs.log", tmp_path / "backups"
    log_file.parent.mkdir()
    backups.mkdir()
    url, unreachable = pg.url, unreachable_url(pg)
    key = Key(secret)
    # errors with and without -v in one mode (-v prints tracebacks: a superset), with -v in the others
    verbosities: tuple[tuple[str, ...], ...] = ((), ("-v",)) if (form, given_by) == ("raw", "env") else (("-v",),)

    def ok(*args: str | os.PathLike[str], output: tuple[str, ...] = ("-v",)) -> Result:
        return s.run(0, *args, *s.give(secret, given_by), *output)

    def fails(code: int, *args: str | os.PathLike[str], which: str | None = secret, audited: bool = True) -> None:
        for verbose in verbosities:
            s.run(code, *args, *s.give(which, given_by), *verbose, audited=audited)

    everything = ("--all-workspaces", "--no-identities")
    migrate_all = ("migrate", "--pg-url", url, *everything, "--encrypt", "--log-file", log_file)

    # migrate: a usage error before the root exists (nothing is written), then a run searched before install
    fails(EXIT_USAGE, "migrate", "--pg-url", url, "--all-workspaces", "--encrypt", audited=False)  # identities
    assert not root.exists()
    searched_mid_run: list[str] = []
    real_install = clawfs._migrate._Migration._install

    def install(self: Any) -> Any:
        files = s.files()
        searched_mid_run.extend(name for name in files if "/tmp/run-" in name)
        secrets.learn_salts(files, tmp_path)
        secrets.assert_none_in("migrate, before install", files)
        return real_install(self)

    with monkeypatch.context() as m:
        m.setattr(clawfs._migrate._Migration, "_install", install)
        ok(*migrate_all)
    assert any(name.endswith("workspace.db") for name in searched_mid_run), searched_mid_run
    assert is_encrypted(root / "workspaces" / "default" / "workspace.db")
    with pytest.raises(KeyProblem):
        Workspace.open(root, "default")
    with Workspace.open(root, "default", key=key) as ws:
        assert len(ws.search("note")) == 3
    ok(*migrate_all, "--replace", output=("--json",))
    fails(EXIT_USAGE, "migrate", "--pg-url", url, "--all-workspaces", "--encrypt", "--replace")  # identities
    fails(EXIT_USAGE, "migrate", "--pg-url", url, *everything, "--replace")  # a key but no --encrypt
    fails(EXIT_USAGE, *migrate_all, "--replace", which=None)  # --encrypt but no key
    fails(EXIT_USAGE, "migrate", "--pg-url", url, "--workspace-id", "nope", "--no-identities", "--encrypt")
    fails(EXIT_SOURCE, *migrate_all, "--replace", "--pg-url", unreachable)
    assert "documents" in log_file.read_text()  # the --log-file was written (and searched)

    # verify: a match, a mismatch, the errors
    ok("verify", "--pg-url", url, *everything, "--sample", "5")
    ok("verify", "--pg-url", url, *everything, "--sample", "5", output=("--json",))
    pg.sql("UPDATE documents SET content = 'note ocelot quartz' WHERE id = 1")
    fails(EXIT_VERIFICATION, "verify", "--pg-url", url, *everything, "--sample", "5")
    fails(EXIT_VERIFICATION, "verify", "--pg-url", url, "--workspace-id", "nope", "--no-identities")  # reported
    for which in (other, None):
        fails(EXIT_WORKSPACE, "verify", "--pg-url", url, *everything, which=which)
    fails(EXIT_SOURCE, "verify", "--pg-url", unreachable, *everything)

    # sync by comparison, once and following
    for which in (other, None):
        fails(EXIT_WORKSPACE, "sync", "--pg-url", url, *everything, which=which)
    fails(EXIT_USAGE, "sync", "--pg-url", url, "--all-workspaces")  # a key needs --no-identities
    fails(EXIT_SOURCE, "sync", "--pg-url", unreachable, *everything)
    fails(EXIT_WORKSPACE, "sync", "--pg-url", url, "--workspace-id", "nope", "--no-identities")
    ok("sync", "--pg-url", url, *everything)
    pg.sql("UPDATE documents SET content = 'note ocelot zinc' WHERE id = 2")
    with monkeypatch.context() as m:
        rounds = interrupt_follow_after(m, 1)
        ok("sync", "--pg-url", url, *everything, "--follow", "--interval", "0.01", output=("--json",))
        assert [r.changes for r in rounds] == [1]
    with monkeypatch.context() as m:
        interrupt_follow_after(m, 1)
        fails(EXIT_WORKSPACE, "sync", "--pg-url", url, *everything, "--follow", which=other)

    # sync through a replication slot, and cutover (which drops it)
    try:
        fails(EXIT_USAGE, "sync", "setup", "--pg-url", url)  # a key needs --no-identities
        fails(EXIT_SOURCE, "sync", "setup", "--pg-url", unreachable, "--no-identities")
        setup = ("sync", "setup", "--pg-url", url, "--no-identities")
        for which in (other, None):  # refused before any slot is made: the workspaces do not open
            for verbose in verbosities:
                s.run(EXIT_WORKSPACE, *setup, *s.give(which, given_by), *verbose)
                assert pg.sql("SELECT count(*) FROM pg_replication_slots WHERE database = %s", [pg.dbname]) == [(0,)]
        s.run(EXIT_USAGE, "sync", "teardown", "--pg-url", url)  # nothing to drop; takes no key: records none
        ok(*setup)
        pg.sql("UPDATE documents SET content = 'note ocelot basalt' WHERE id = 3")
        through_slot = ok("sync", "--pg-url", url, *everything, output=("--json",))
        assert (through_slot.json()["method"], through_slot.json()["changes"]) == ("slot", 1)
        fails(EXIT_WORKSPACE, "sync", "--pg-url", url, *everything, which=other)
        for which in (other, None):
            fails(EXIT_WORKSPACE, "cutover", "--pg-url", url, *everything, "--sample", "5", which=which)
        fails(EXIT_USAGE, "cutover", "--pg-url", url, "--all-workspaces")  # a key needs --no-identities
        fails(EXIT_SOURCE, "cutover", "--pg-url", unreachable, *everything)
        fails(EXIT_WORKSPACE, "cutover", "--pg-url", url, "--workspace-id", "nope", "--no-identities")
        done = ok("cutover", "--pg-url", url, *everything, "--sample", "5")
        assert "Dropped replication slot" in done.stdout
    finally:
        pg.drop_slots()
    ok("cutover", "--pg-url", url, *everything, "--sample", "5", output=("--json",))

    # search and index rebuild
    found = ok("search", "--workspace-id", "default", "--text", "ocelot", "--json", output=())
    assert sorted(hit["document_id"] for hit in found.json()) == [1, 2, 3]  # synced in, each way
    ok("search", "--workspace-id", "default", "--vector", "[1.0, 0.5, 0.25]")
    ok("index", "rebuild", "--workspace-id", "default", output=("--json",))
    for which in (other, None):
        fails(EXIT_WORKSPACE, "search", "--workspace-id", "default", "--text", "note", which=which)
        fails(EXIT_WORKSPACE, "index", "rebuild", "--workspace-id", "default", which=which)
    fails(EXIT_WORKSPACE, "search", "--workspace-id", "nope", "--text", "note")
    fails(EXIT_WORKSPACE, "index", "rebuild", "--workspace-id", "nope")
    fails(EXIT_USAGE, "search", "--workspace-id", "default", "--mode", "fts")  # no --text

    # backup and restore
    ok("backup", "--workspace-id", "default", "--to", backups / "one", output=("--json",))
    assert is_encrypted(backups / "one" / "workspace.db")
    for which in (other, None):
        fails(EXIT_WORKSPACE, "backup", "--workspace-id", "default", "--to", backups / "refused", which=which)
        assert not (backups / "refused").exists()
    fails(EXIT_USAGE, "backup", "--workspace-id", "default", "--to", backups / "one")  # not empty
    fails(EXIT_WORKSPACE, "backup", "--workspace-id", "nope", "--to", backups / "refused")
    ok("restore", "--from", backups / "one", "--replace", output=("--json",))
    for which in (other, None):
        fails(EXIT_WORKSPACE, "restore", "--from", backups / "one", "--replace", which=which)
    fails(EXIT_WORKSPACE, "restore", "--from", backups / "one")  # the workspace exists
    fails(EXIT_USAGE, "restore", "--from", backups / "none")

    # rekey's errors (its successes: the next test)
    new = NEW_RAW if form == "passphrase" else NEW_PASSPHRASE
    secrets.keys += (new,)
    fails(EXIT_USAGE, "rekey", "--all-workspaces")  # no new key
    for which in (other, None):
        for verbose in verbosities:
            keys = [*s.give(which, given_by), *s.give(new, given_by, new=True)]
            s.run(EXIT_WORKSPACE if which else EXIT_USAGE, "rekey", "--all-workspaces", *keys, *verbose)
    s.give(None, given_by, new=True)
    with Workspace.open(root, "default", key=key) as ws:  # still this key, and sound
        assert ws.check() == []

    assert set(s.ran) == KEY_COMMANDS | {"sync teardown"}, set(s.ran)
    assert s.tracebacks > 0, "-v showed no traceback: the scrubbing of tracebacks was not tested"
    if form == "passphrase":  # the derived keys searched for are the ones that open the databases
        assert len(secrets.proven) >= 3, secrets.proven
    written = s.files()
    for name in ("clawfs/.clawfs/audit.log", "clawfs/workspaces/default/workspace.db", "backups/one/workspace.db"):
        assert name in written, sorted(written)
    secrets.assert_none_in("at the end", written)


# -- rekey: the current key and the new one ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "old_by", "new", "new_by"),
    [(PASSPHRASE, "env", NEW_RAW, "file"), (RAW, "file", NEW_PASSPHRASE, "env")],
    ids=["passphrase-by-env-to-raw-by-file", "raw-by-file-to-passphrase-by-env"],
)
def test_rekey_shows_neither_the_old_key_nor_the_new_one(
    pg: PgStore,
    old: str,
    old_by: str,
    new: str,
    new_by: str,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = OTHER_PASSPHRASE if old == PASSPHRASE else OTHER_RAW
    fill_store(pg, workspaces=("default", "team"), documents=3, identities=())
    s = Session(tmp_path, capfd, monkeypatch, Secrets(old, new, other))
    db = s.root / "workspaces" / "default" / "workspace.db"
    plain = tmp_path / "plain.db"
    with sqlite3.connect(plain) as made:
        made.execute("CREATE TABLE t (x)")

    def keys(current: str | None, replacement: str | None) -> list[str | os.PathLike[str]]:
        return [*s.give(current, old_by), *s.give(replacement, new_by, new=True)]

    s.run(0, "migrate", "--pg-url", pg.url, "--all-workspaces", "--no-identities", "--encrypt", *keys(old, None))
    for verbose in ((), ("-v",)):
        s.run(EXIT_USAGE, "rekey", "--all-workspaces", *keys(old, old), *verbose)  # the same key
        s.run(EXIT_WORKSPACE, "rekey", "--all-workspaces", *keys(other, new), *verbose)
        s.run(EXIT_USAGE, "rekey", "--all-workspaces", *keys(None, new), *verbose)
        s.run(EXIT_USAGE, "rekey", "--all-workspaces", *keys(old, None), *verbose)
        s.run(EXIT_WORKSPACE, "rekey", "--workspace-id", "nope", *keys(old, new), *verbose)
        s.run(EXIT_USAGE, "rekey", "--workspace-id", "default", "--sqlite-path", plain, *keys(old, new), *verbose)
    changed = s.run(0, "rekey", "--all-workspaces", *keys(old, new), "-v")
    assert changed.stdout.count("no longer opens it") == 2
    for ws in ("default", "team"):
        with pytest.raises(KeyProblem):
            Workspace.open(s.root, ws, key=Key(old))
        with Workspace.open(s.root, ws, key=Key(new)) as opened:
            assert opened.check() == []
    s.run(EXIT_WORKSPACE, "search", "--workspace-id", "team", "--text", "note", *keys(old, None), "-v")
    # and back, one workspace named by its file, the new key now the current one
    s.monkeypatch.delenv("CLAWFS_NEW_KEY", raising=False)
    swapped = [*s.give(new, new_by), *s.give(old, old_by, new=True)]
    s.run(0, "rekey", "--workspace-id", "default", "--sqlite-path", db, *swapped, "--json")
    with Workspace.open(db, key=Key(old)) as opened:
        assert len(opened.search("note")) == 3
    s.monkeypatch.delenv("CLAWFS_NEW_KEY", raising=False)
    found = s.run(0, "search", "--workspace-id", "team", "--text", "note", "--json", *s.give(new, new_by))
    assert len(found.json()) == 3
    assert len(s.secrets.proven) >= 2, s.secrets.proven


# -- the real entry point --------------------------------------------------------------------------------------


def test_child_processes_show_no_key(
    pg: PgStore, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m clawfs`: stdout and stderr as the process writes them (SQLCipher's C code included)."""
    fill_store(pg, workspaces=("default",), documents=3, identities=())
    s = Session(tmp_path, capfd, monkeypatch, Secrets(PASSPHRASE, OTHER_PASSPHRASE, NEW_RAW))
    log_file = tmp_path / "migrate.log"
    everything = ("--all-workspaces", "--no-identities")

    def child(expect: int, *args: str | os.PathLike[str]) -> Result:
        return s.run(expect, *args, child=True)

    s.give(PASSPHRASE, "env")
    child(0, "migrate", "--pg-url", pg.url, *everything, "--encrypt", "-v", "--log-file", log_file)
    assert is_encrypted(s.root / "workspaces" / "default" / "workspace.db")
    assert "documents" in log_file.read_text()
    child(0, "verify", "--pg-url", pg.url, *everything, "--sample", "5", "--json", *s.give(PASSPHRASE, "file"))
    s.give(OTHER_PASSPHRASE, "env")
    wrong = child(EXIT_WORKSPACE, "search", "--workspace-id", "default", "--text", "note", "-v")
    assert "does not open with this key" in wrong.error
    child(EXIT_SOURCE, "sync", "--pg-url", unreachable_url(pg), *everything, "-v", *s.give(PASSPHRASE, "file"))
    child(EXIT_USAGE, "cutover", "--pg-url", pg.url, "--all-workspaces", "-v", *s.give(PASSPHRASE, "env"))
    child(0, "rekey", "--all-workspaces", "-v", *s.give(PASSPHRASE, "env"), *s.give(NEW_RAW, "file", new=True))
    s.give(None, "env")
    found = child(0, "search", "--workspace-id", "default", "--text", "note", "--json", *s.give(NEW_RAW, "file"))
    assert len(found.json()) == 3
    assert len(s.secrets.proven) >= 1, s.secrets.proven


# -- key files -------------------------------------------------------------------------------------------------


def test_a_key_file_others_may_read_gets_one_warning_line_with_its_path_only(
    pg: PgStore, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fill_store(pg, workspaces=("default",), documents=3, identities=())
    s = Session(tmp_path, capfd, monkeypatch, Secrets(RAW, NEW_RAW))

    def warnings(result: Result) -> list[str]:
        return [line for line in result.stderr.splitlines() if line.startswith(WARNING_PREFIX)]

    def warning(path: Path) -> str:
        return f"{WARNING_PREFIX} other users may read the key file {path}: chmod 600 it"

    loose = s.key_file(RAW, 0o644)
    made = s.run(
        0, "migrate", "--pg-url", pg.url, "--all-workspaces", "--no-identities", "--encrypt", "--key-file", loose
    )
    assert warnings(made) == [warning(loose)]
    assert is_encrypted(s.root / "workspaces" / "default" / "workspace.db")
    for mode, warned in ((0o600, False), (0o400, False), (0o640, True), (0o604, True), (0o660, True)):
        path = s.key_file(RAW, mode)
        for verbose in ((), ("-v",)):
            found = s.run(0, "search", "--workspace-id", "default", "--text", "note", "--key-file", path, *verbose)
            assert warnings(found) == ([warning(path)] if warned else []), (oct(mode), found.stderr)
    another = s.key_file(NEW_RAW, 0o644)
    refused = s.run(EXIT_WORKSPACE, "search", "--workspace-id", "default", "--text", "x", "--key-file", another)
    assert warnings(refused) == [warning(another)]  # a warning, then the error
    current, replacement = s.key_file(RAW, 0o640), s.key_file(NEW_RAW, 0o604)
    changed = s.run(0, "rekey", "--all-workspaces", "--key-file", current, "--new-key-file", replacement)
    assert warnings(changed) == [warning(current), warning(replacement)]
    with Workspace.open(s.root, "default", key=Key(NEW_RAW)) as ws:
        assert ws.check() == []


BAD_KEY_FILES: dict[str, tuple[bytes | None, str]] = {  # content (None: no file) -> the error it gives
    "missing": (None, "cannot read the key file"),
    "empty": (b"", "bad.key is empty"),
    "a line break only": (b"\n", "bad.key is empty"),
    "not UTF-8": (b"\xff\xfe" + PASSPHRASE.encode() + b"\n", "is not UTF-8 text"),
    "a NUL character": (PASSPHRASE.encode() + b"\x00" + RAW.encode() + b"\n", "has a NUL character"),
}


@pytest.mark.parametrize("case", list(BAD_KEY_FILES))
def test_a_bad_key_file_is_a_usage_error_that_shows_none_of_its_content(
    case: str, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command with a key option refuses it while reading its options: no command runs, so no audit
    line; neither does rekey with it as the new key, or a good key beside it."""
    content, message = BAD_KEY_FILES[case]
    s = Session(tmp_path, capfd, monkeypatch, Secrets(PASSPHRASE, RAW))
    s.root.mkdir()
    bad = s.keys_dir / "bad.key"
    if content is not None:
        bad.write_bytes(content)
        bad.chmod(0o600)
    good = s.key_file(RAW)
    backup_dir = tmp_path / "backup"
    never_reached = "postgresql://nobody@127.0.0.1:1/x"
    commands: list[tuple[str | os.PathLike[str], ...]] = [
        ("migrate", "--pg-url", never_reached, "--all-workspaces", "--encrypt"),
        ("verify", "--pg-url", never_reached, "--all-workspaces"),
        ("sync", "--pg-url", never_reached, "--all-workspaces"),
        ("sync", "setup", "--pg-url", never_reached),
        ("cutover", "--pg-url", never_reached, "--all-workspaces"),
        ("search", "--workspace-id", "default", "--text", "note"),
        ("index", "rebuild", "--workspace-id", "default"),
        ("backup", "--workspace-id", "default", "--to", backup_dir),
        ("restore", "--from", backup_dir),
        ("rekey", "--all-workspaces", "--new-key-file", good),
    ]
    for args in commands:
        for verbose in ((), ("-v",)):
            result = s.run(EXIT_USAGE, *args, "--key-file", bad, *verbose, audited=False)
            assert message in result.error, result.error
    for verbose in ((), ("-v",)):
        result = s.run(
            EXIT_USAGE, "rekey", "--all-workspaces", "--key-file", good, "--new-key-file", bad, *verbose, audited=False
        )
        assert message in result.error, result.error
    assert set(s.ran) == KEY_COMMANDS
    assert sorted(s.files()) == [], "a refused key file made files"


# -- 2. the Python API ---------------------------------------------------------------------------------------


def test_python_api_options_reports_workspaces_and_errors_never_hold_a_key(pg: PgStore, tmp_path: Path) -> None:
    fill_store(pg, workspaces=("default",), documents=3, identities=())
    secrets = Secrets(PASSPHRASE, OTHER_PASSPHRASE, NEW_RAW)
    root, url = tmp_path / "clawfs", pg.url
    key, wrong, new = Key(PASSPHRASE), Key(OTHER_PASSPHRASE), Key(NEW_RAW)
    seen = ApiTexts()
    texts, keep, error = seen.texts, seen.keep, seen.error

    for k in (key, wrong, new):
        keep("a key", k)
        keep("keys in containers", ([k], {"key": k}, (k,)))
    everything = dict(all_workspaces=True, identities=False)
    migrated = keep("migrate", migrate(url, root, keep("MigrateOptions", MigrateOptions(**everything, key=key))))
    assert migrated.encrypted and is_encrypted(root / "workspaces" / "default" / "workspace.db")
    secrets.learn_salts(files_under(tmp_path), tmp_path)
    checked = keep("verify", verify(url, root, keep("VerifyOptions", VerifyOptions(**everything, sample=5, key=key))))
    assert checked.ok
    pg.sql("UPDATE documents SET content = 'note ocelot quartz' WHERE id = 1")
    synced = keep("sync", sync(url, root, keep("SyncOptions", SyncOptions(**everything, key=key))))
    assert synced.changes == 1
    try:
        keep("sync setup", sync_setup(url, root, SyncOptions(**everything, key=key)))
        keep("sync teardown", sync_teardown(url, root))
    finally:
        pg.drop_slots()
    keep("cutover", cutover(url, root, keep("CutoverOptions", CutoverOptions(**everything, sample=5, key=key))))
    keep("backup", backup(root, "default", tmp_path / "backup", key))
    keep("restore", restore(tmp_path / "backup", root, replace=True, key=key))
    secrets.learn_salts(files_under(tmp_path), tmp_path)
    with keep("workspace", Workspace.open(root, "default", key=key)) as ws:
        assert [h.document_id for h in keep("hits", ws.search("ocelot"))] == [1]
        keep("metadata", json.dumps(ws.metadata, default=str))

    refused = error("open, another key", lambda: Workspace.open(root, "default", key=wrong))
    assert "does not open with this key" in str(refused)
    error("open, no key", lambda: Workspace.open(root, "default"))
    error("migrate, identities", lambda: MigrateOptions(all_workspaces=True, key=key))
    error("sync, identities", lambda: SyncOptions(all_workspaces=True, key=key))
    error("cutover, identities", lambda: CutoverOptions(all_workspaces=True, key=key))
    error("verify, another key", lambda: verify(url, root, VerifyOptions(**everything, key=wrong)))
    error("sync, another key", lambda: sync(url, root, SyncOptions(**everything, key=wrong)))
    error("cutover, another key", lambda: cutover(url, root, CutoverOptions(**everything, key=wrong)))
    error("backup, another key", lambda: backup(root, "default", tmp_path / "refused", wrong))
    error("restore, another key", lambda: restore(tmp_path / "backup", root, replace=True, key=wrong))
    db = root / "workspaces" / "default" / "workspace.db"
    error("rekey, another key", lambda: rekey(db, wrong, new))
    error("rekey, the same key", lambda: rekey(db, key, Key(PASSPHRASE)))
    error("an empty key", lambda: Key(""))
    error("a key with NUL", lambda: Key(PASSPHRASE + "\x00"))
    bad_file = tmp_path / "bad.key"
    bad_file.write_bytes(b"\xff" + PASSPHRASE.encode())
    error("a key file not UTF-8", lambda: Key.from_file(bad_file))
    rekey(db, key, new)
    with keep("workspace, new key", Workspace.open(db, key=new)) as ws:
        assert ws.check() == []

    bad_file.unlink()
    files = files_under(tmp_path)
    secrets.learn_salts(files, tmp_path)
    assert len(secrets.proven) >= 2, secrets.proven  # the migrated database and the backup's
    secrets.assert_none_in("the API", {what: text.encode() for what, text in texts.items()} | files)
