"""Encryption at rest meets `--resume`, `--replace` and `--sqlite-path` (README "Encryption", DESIGN §3):

- `migrate --encrypt` killed (`kill -9`) while copying vectors, after saving an index, inside the
  transaction that stores one (a hot, encrypted rollback journal), or between the renames of its install,
  then `--resume` with the same key: the result is what a fresh encrypted migration gives (rows, FTS5
  answers, the keys of the HNSW index stored inside the database under the stamp that names it), every
  database is encrypted and opens with that key only, there is no `index.usearch`, nothing is left over;
- `--resume` with another key never builds on rows encrypted with the first: it claims the run, builds
  every workspace anew, and the result opens with the new key only;
- a plain `--resume` does not claim an encrypted run (another selection): its workspaces equal a fresh
  plain migration, the encrypted build stays, untouched, for the encrypted `--resume`, which then
  replaces them; killed while installing, the plain `--resume` refuses in one line instead;
- `--replace` turns plain workspaces into encrypted ones (also when killed while installing) and back: no
  stale `index.usearch`, no `clawfs_index_data` in a plain database, `Workspace.check()` finds nothing,
  search answers;
- `--sqlite-path FILE --encrypt` writes one encrypted file and no `FILE.usearch` (also resumed after a
  kill); replacing a plain FILE removes the plaintext `FILE.usearch` beside it (also when killed between
  the renames); a plain migration replaces an encrypted FILE;
- after every encrypted outcome, interrupted or not, the raw bytes of every file under the root (and beside
  a named file) hold no document word, metadata value or vector (float32, and bf16 as the index stores
  it) of the store; a plain migration of the same store shows that the search finds them all.

Also pinned here (bugs found on the way, fixed): finishing an interrupted install under another key
fails with one line instead of reporting success; a finished encrypted install is reported as encrypted;
a stale encrypted install journal is finished before newer plain workspaces go in, never over them; a
plain `--sqlite-path --resume` keeps the encrypted run's build; starting anew with another key says so.

The kill points, the driver and the pictures of plain workspaces are test_resume's.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clawfs import Key, Workspace, migrate
from clawfs.errors import EXIT_WORKSPACE
from clawfs.workspace import KeyProblem, index_path_for, is_encrypted
from cli_runner import build_leftovers, files_under, installed, last_run, run_cli
from conftest import fresh_store
from pgstore import PgStore
from test_resume import (
    DRIVER,
    FINISHED_INSTALL_NOTE,
    KILL_POINTS,
    NOTHING_TO_RESUME_NOTE,
    PLACEMENT,
    RESUMED_NOTE,
    UNREACHABLE_PG,
    WORKSPACES,
    WS_DIRS,
    KillPoint,
    _versions,
    assert_clean,
    assert_same,
    assert_same_workspace,
    cli_args,
    kill_run,
    notes_with,
    options,
    picture,
    resume,
    workspace_picture,
)
from test_resume import fill as fill_resume_store

KEY = Key("resume passphrase Qx7")
OTHER_KEY = Key("9c" * 32)  # a raw key, the other kind
# words and values of the store that must not appear in any file of an encrypted outcome
WORDS = ("xylophonic", "quokkaberry", "zanzibarite")
METADATA_WORD = "marmotlantern"
SOURCE_METADATA_WORD = "kumquat-telemetry"
INDEX_TABLE = "clawfs_index_data"
BETWEEN_RENAMES = "install: between the first and the second rename"
INDEX_STORE = "clawfs.workspace._index_store:DatabaseStore"


def fill(pg: PgStore) -> None:
    """test_resume's store (two workspaces, 2000 documents: enough batches for its kill points), with a
    distinctive word in every document and metadata value, and a distinctive source metadata value."""
    fill_resume_store(pg)
    pg.sql(
        "UPDATE documents SET content = content || ' ' || (%s::text[])[1 + (id / 3) %% 3]",
        [list(WORDS)],
    )
    pg.sql(
        "UPDATE documents SET metadata = jsonb_set(metadata, '{tags}', %s::jsonb) WHERE metadata IS NOT NULL",
        [json.dumps([METADATA_WORD])],
    )
    pg.add_metadata({"project": json.dumps(SOURCE_METADATA_WORD)})


def needles_of(pg: PgStore) -> dict[str, bytes]:
    """What an encrypted outcome must not show: the words, and the first vectors' float32 bytes (the
    `vectors` rows) and bf16 bytes (the index's scalar type)."""
    needles = {word: word.encode() for word in (*WORDS, METADATA_WORD, SOURCE_METADATA_WORD)}
    for vector_id, text in pg.sql("SELECT id, embedding::text FROM vectors ORDER BY id LIMIT 8"):
        values = json.loads(text)
        needles[f"vector {vector_id} (float32)"] = struct.pack(f"<{len(values)}f", *values)[:16]
        needles[f"vector {vector_id} (bf16)"] = b"".join(map(bf16, values))[:12]
    return needles


def bf16(x: float) -> bytes:
    """`x` as usearch stores it in a bf16 index: float32 rounded to the nearest bf16, ties to even (the
    upper half of its bits, truncated, would not be found in a plain index file)."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    return struct.pack("<H", (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16)


@dataclass(frozen=True)
class Shared:
    """A filled store that no test changes, the pictures of its fresh encrypted and plain migrations, and
    what must not show in plaintext."""

    pg: PgStore
    encrypted: dict[str, Any]
    plain: dict[str, Any]
    needles: dict[str, bytes]
    plain_root: Path


@pytest.fixture(scope="module", params=_versions(), ids=lambda v: f"pg{v}" if v else "pg")
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with fresh_store(request.param) as pg:
        fill(pg)
        encrypted_root = tmp_path_factory.mktemp("encrypted") / "clawfs"
        migrate(pg.url, encrypted_root, options(key=KEY, identities=False))
        plain_root = tmp_path_factory.mktemp("plain") / "clawfs"
        migrate(pg.url, plain_root, options(identities=False))
        yield Shared(pg, encrypted_picture(encrypted_root), picture(plain_root), needles_of(pg), plain_root)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("driver") / "driver.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """$CLAWFS_KEY for the command line (the killed child processes inherit it)."""
    monkeypatch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())


def encrypted_args(pg_url: str, root: Path, *selection: str) -> list[str]:
    return [*cli_args(pg_url, root, *selection), "--encrypt", "--no-identities"]


# -- what a reader sees -----------------------------------------------------------------------------------


def encrypted_workspace_picture(db_path: Path, key: Key = KEY) -> dict[str, Any]:
    """test_resume's `workspace_picture` of an encrypted workspace, which has no index file."""
    assert is_encrypted(db_path), f"{db_path} is not encrypted"
    assert not index_path_for(db_path).exists(), f"an index file beside the encrypted {db_path}"
    return workspace_picture(db_path, index_path_for(db_path), key)


def encrypted_picture(root: Path, key: Key = KEY) -> dict[str, Any]:
    out: dict[str, Any] = {"installed": installed(root), "agents": files_under(root / "agents")}
    for ws_dir in sorted((root / "workspaces").iterdir()) if (root / "workspaces").is_dir() else ():
        out[ws_dir.name] = encrypted_workspace_picture(ws_dir / "workspace.db", key)
    return out


def plaintext_in(needles: dict[str, bytes], *places: Path) -> list[str]:
    """Where any needle appears in the raw bytes of the files at or below `places`."""
    files = {}
    for place in places:
        if place.is_file():
            files[place.name] = place.read_bytes()
        else:
            files.update({f"{place.name}/{name}": data for name, data in files_under(place).items()})
    return [f"{what} in {name}" for name, data in files.items() for what, needle in needles.items() if needle in data]


def assert_opens_only_with(key: Key, *db_paths: Path) -> None:
    """Each workspace opens with `key` (nothing wrong in it, text and vector search answer), and neither
    without a key nor with another one."""
    for db_path in db_paths:
        with Workspace.open(db_path, key=key) as ws:
            assert ws.encrypted
            assert ws.check() == []
            assert ws.search(WORDS[0], k=3), f"{db_path}: full-text search finds nothing"
            doc_id, blob = ws.db.execute("SELECT document_id, embedding FROM vectors ORDER BY id DESC").fetchone()
            vector = np.frombuffer(blob, dtype="<f4").tolist()
            assert ws.search(vector=vector, k=1)[0].document_id == doc_id
        for other in (None, *(k for k in (KEY, OTHER_KEY) if k != key)):
            with pytest.raises(KeyProblem):
                Workspace.open(db_path, key=other)


def opens_with(key: Key, db_path: Path) -> bool:
    try:
        Workspace.open(db_path, key=key).close()
    except KeyProblem:
        return False
    return True


def workspace_dbs(root: Path) -> list[Path]:
    return [root / "workspaces" / d / "workspace.db" for d in WS_DIRS.values()]


def assert_plain_workspaces(root: Path, shared: Shared) -> None:
    """Plain workspaces equal to a fresh plain migration, each with its index file and no index table."""
    assert_same(picture(root), shared.plain)  # (checks each index.usearch against its stamp)
    for db_path in workspace_dbs(root):
        assert not is_encrypted(db_path)
        with Workspace.open(db_path) as ws:
            assert not ws.encrypted
            assert ws.check() == []
            assert ws.search(WORDS[1], k=3)
            tables = {r[0] for r in ws.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert INDEX_TABLE not in tables


def assert_encrypted_workspaces(root: Path, shared: Shared, key: Key = KEY) -> None:
    """Encrypted workspaces equal to a fresh encrypted migration, opening with `key` only, with no index
    file anywhere and no plaintext in any file under the root."""
    assert_same(encrypted_picture(root, key), shared.encrypted)
    assert_opens_only_with(key, *workspace_dbs(root))
    assert sorted(p.name for p in root.rglob("*.usearch")) == []
    assert plaintext_in(shared.needles, root) == []


def kept_builds(root: Path) -> list[Path]:
    return sorted((root / ".clawfs" / "tmp").rglob("workspace.db"))


def test_an_encrypted_migration_holds_what_a_plain_one_holds_and_no_plaintext(shared: Shared) -> None:
    """The references: the same rows, FTS5 answers and index keys encrypted or not (the encrypted one has
    the index table); the plaintext search finds every needle in the plain workspaces."""
    for ws_dir in WS_DIRS.values():
        encrypted, plain = shared.encrypted[ws_dir], shared.plain[ws_dir]
        # (SQLCipher's SQLite keeps `PRAGMA optimize`'s statistics in sqlite_stat1 and sqlite_stat4)
        tables = [t for t in encrypted["tables"] if not t.startswith("sqlite_stat")]
        assert tables == sorted([*plain["tables"], INDEX_TABLE])
        assert_same_workspace(ws_dir, {**encrypted, "tables": plain["tables"]}, plain)
    found = plaintext_in(shared.needles, shared.plain_root)
    for what in (*WORDS, METADATA_WORD, SOURCE_METADATA_WORD):
        assert [f for f in found if f.startswith(f"{what} in ")], f"{what} not found in the plain workspaces"
    assert [f for f in found if "(float32) in " in f], "no vector's float32 bytes found in the plain databases"
    assert [f for f in found if "(bf16) in " in f and ".usearch" in f], "no vector's bf16 bytes in the index files"


# -- 1. kill -9, then --resume with the same key ------------------------------------------------------------

ENCRYPTED_KILL_POINTS = {
    "vectors: after the 5th batch": KILL_POINTS["vectors: after the 5th batch"],
    # the first build holds its index table
    "index: after the first index was saved": KILL_POINTS["index: after the first index file was saved"],
    # the index chunks written, not committed: SQLCipher must roll back the (encrypted) hot journal
    "index: inside the transaction that stores it": KillPoint(f"{INDEX_STORE}.put", 1, "after"),
    BETWEEN_RENAMES: KILL_POINTS[BETWEEN_RENAMES],
    "install: all renamed, before the old copies are removed": KILL_POINTS[
        "install: all renamed, before the old copies are removed"
    ],
}


@pytest.mark.parametrize("point", list(ENCRYPTED_KILL_POINTS))
def test_encrypted_kill_9_then_resume_gives_a_fresh_encrypted_migration(
    shared: Shared, point: str, driver: Path, tmp_path: Path, key_env: None
) -> None:
    root = tmp_path / "clawfs"
    kill = ENCRYPTED_KILL_POINTS[point]
    pid = kill_run(driver, kill, encrypted_args(shared.pg.url, root))

    # what the killed run left is encrypted too
    assert plaintext_in(shared.needles, root) == []
    if not kill.journal:
        assert installed(root)["workspaces"] == []
        assert len(kept_builds(root)) == len(WORKSPACES)
        assert all(is_encrypted(db) for db in kept_builds(root))
    if kill.target.startswith(INDEX_STORE):
        hot = [j for j in (root / ".clawfs" / "tmp").rglob("workspace.db-journal") if j.stat().st_size > 0]
        assert len(hot) == 1, "no hot journal: the run was not killed inside the transaction"

    report = resume(UNREACHABLE_PG if kill.journal else shared.pg.url, root, key=KEY, identities=False)

    if kill.journal:
        assert notes_with(report, FINISHED_INSTALL_NOTE), report.notes
    else:
        assert len(notes_with(report, RESUMED_NOTE)) == len(WORKSPACES), report.notes
    assert not notes_with(report, NOTHING_TO_RESUME_NOTE)
    if kill.target.endswith(".add_vectors"):  # it went on from the kept rows
        copied = {s.step: s.rows for s in report.steps}
        everything = sum(len(shared.encrypted[d][t]) for d in WS_DIRS.values() for t in ("document_store", "vectors"))
        assert 0 < copied["documents"] + copied["vectors"] < everything
    assert_encrypted_workspaces(root, shared)
    assert_clean(root)
    [claimed] = [line for line in last_run(root) if line["step"] == "resume" and "interrupted_run" in line]
    assert claimed["interrupted_run"].startswith(f"{pid}-")


def test_encrypted_resume_through_the_command_line(
    shared: Shared, driver: Path, tmp_path: Path, key_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "clawfs"
    kill_run(driver, KILL_POINTS["documents: after the 3rd batch"], encrypted_args(shared.pg.url, root))

    resumed = run_cli(capsys, "migrate", *encrypted_args(shared.pg.url, root), "--resume", "--json")

    assert resumed.code == 0, resumed.stderr
    assert len([n for n in resumed.json()["notes"] if RESUMED_NOTE in n]) == len(WORKSPACES)
    assert_encrypted_workspaces(root, shared)
    assert_clean(root)


def test_a_finished_encrypted_install_is_reported_as_encrypted(
    shared: Shared, driver: Path, tmp_path: Path, key_env: None
) -> None:
    root = tmp_path / "clawfs"
    kill_run(driver, KILL_POINTS[BETWEEN_RENAMES], encrypted_args(shared.pg.url, root))

    report = resume(UNREACHABLE_PG, root, key=KEY, identities=False)

    assert notes_with(report, FINISHED_INSTALL_NOTE), report.notes
    assert all(is_encrypted(db) for db in workspace_dbs(root))
    assert report.encrypted


# -- 2. --resume with another key ------------------------------------------------------------------------------


def test_resume_with_another_key_starts_anew_under_that_key(shared: Shared, driver: Path, tmp_path: Path) -> None:
    """The run is claimed (same selection: encrypted, all workspaces), but its builds do not open with the
    new key (`WorkspaceBuilder._reopen`): each workspace is built anew, none of the kept rows is used."""
    root = tmp_path / "clawfs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())
        pid = kill_run(driver, KILL_POINTS["vectors: after the 5th batch"], encrypted_args(shared.pg.url, root))

    report = resume(shared.pg.url, root, key=OTHER_KEY, identities=False)

    assert notes_with(report, RESUMED_NOTE) == [], report.notes  # nothing kept from the first key's builds
    copied = {s.step: s.rows for s in report.steps}
    everything = {t: sum(len(shared.encrypted[d][t]) for d in WS_DIRS.values()) for t in ("document_store", "vectors")}
    assert (copied["documents"], copied["vectors"]) == (everything["document_store"], everything["vectors"])
    [claimed] = [line for line in last_run(root) if line["step"] == "resume" and "interrupted_run" in line]
    assert claimed["interrupted_run"].startswith(f"{pid}-")
    assert_encrypted_workspaces(root, shared, key=OTHER_KEY)  # (and KEY opens none of them)
    assert_clean(root)


def test_resume_with_another_key_says_the_kept_rows_were_not_used(
    shared: Shared, driver: Path, tmp_path: Path, key_env: None
) -> None:
    root = tmp_path / "clawfs"
    kill_run(driver, KILL_POINTS["vectors: after the 5th batch"], encrypted_args(shared.pg.url, root))

    report = resume(shared.pg.url, root, key=OTHER_KEY, identities=False)

    assert_opens_only_with(OTHER_KEY, *workspace_dbs(root))
    assert [n for n in report.notes if "key" in n], report.notes


def test_resume_with_another_key_after_a_kill_while_installing_does_not_report_success(
    shared: Shared, driver: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The interrupted run had verified its workspaces and set old ones aside: its install is finished (as
    any migrate finishes one), but a run given another key says, in one line and exit 5, that what is now
    installed does not open with it."""
    root = tmp_path / "clawfs"
    monkeypatch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())
    kill_run(driver, KILL_POINTS[BETWEEN_RENAMES], encrypted_args(shared.pg.url, root))
    monkeypatch.setenv("CLAWFS_KEY", OTHER_KEY.secret_for_scrubbing())

    result = run_cli(capsys, "migrate", *encrypted_args(shared.pg.url, root), "--resume")

    assert plaintext_in(shared.needles, root) == []
    if result.code == 0:  # finished, or started anew: either way under the key it was given
        assert [db.parent.name for db in workspace_dbs(root) if not opens_with(OTHER_KEY, db)] == []
        assert_opens_only_with(OTHER_KEY, *workspace_dbs(root))
    else:  # or finished as that run was told, and said so in one line
        assert result.code == EXIT_WORKSPACE and "does not open with this key" in result.error, result.stderr
        assert "installed" in result.error
        assert installed(root)["workspaces"] == ["default", "team%2Fa%2Eb"]
        assert_opens_only_with(KEY, *workspace_dbs(root))


# -- 3. a plain --resume after an encrypted run was killed ----------------------------------------------------


def test_a_plain_resume_does_not_claim_an_encrypted_run(shared: Shared, driver: Path, tmp_path: Path) -> None:
    root = tmp_path / "clawfs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())
        killed = kill_run(driver, KILL_POINTS["vectors: after the 5th batch"], encrypted_args(shared.pg.url, root))
    builds = kept_builds(root)
    kept = {db: db.read_bytes() for db in builds}

    plain = resume(shared.pg.url, root, identities=False)

    assert notes_with(plain, NOTHING_TO_RESUME_NOTE), plain.notes
    assert not notes_with(plain, RESUMED_NOTE)
    assert [line for line in last_run(root) if line["step"] == "resume"] == []
    assert_plain_workspaces(root, shared)  # nothing of the encrypted build in them: equal to a fresh plain run
    # the encrypted build is left, untouched and encrypted, for a --resume with its key
    assert {db: db.read_bytes() for db in kept_builds(root)} == kept
    assert [p for p in build_leftovers(root) if p.startswith(f"run-{killed}-")]
    assert plaintext_in(shared.needles, root / ".clawfs") == []

    report = resume(shared.pg.url, root, key=KEY, identities=False, replace=True)

    assert len(notes_with(report, RESUMED_NOTE)) == len(WORKSPACES), report.notes
    assert_encrypted_workspaces(root, shared)  # the plain workspaces and their index files are gone
    assert_clean(root)


def test_a_plain_resume_after_an_encrypted_run_was_killed_while_installing(
    shared: Shared, driver: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first workspace is in place (encrypted), the second still in the killed run's build: a plain
    --resume claims nothing, and refuses in one line to build over the installed one; the encrypted
    --resume then finishes the install."""
    root = tmp_path / "clawfs"
    monkeypatch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())
    kill_run(driver, KILL_POINTS[BETWEEN_RENAMES], encrypted_args(shared.pg.url, root))
    before = files_under(root / "workspaces")
    monkeypatch.delenv("CLAWFS_KEY")

    plain = run_cli(capsys, "migrate", *cli_args(shared.pg.url, root), "--no-identities", "--resume")

    assert plain.code == EXIT_WORKSPACE, plain.stderr
    assert "'default' already exists" in plain.error
    assert files_under(root / "workspaces") == before
    assert installed(root)["workspaces"] == ["default"]
    assert is_encrypted(root / "workspaces" / "default" / "workspace.db")
    assert plaintext_in(shared.needles, root) == []

    report = resume(UNREACHABLE_PG, root, key=KEY, identities=False)

    assert notes_with(report, FINISHED_INSTALL_NOTE), report.notes
    assert_encrypted_workspaces(root, shared)
    assert_clean(root)


def test_a_stale_encrypted_install_is_not_finished_over_a_newer_plain_workspace(
    shared: Shared, driver: Path, tmp_path: Path
) -> None:
    root = tmp_path / "clawfs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())
        kill_run(driver, KILL_POINTS[BETWEEN_RENAMES], encrypted_args(shared.pg.url, root))
    plain = resume(shared.pg.url, root, identities=False, replace=True)
    assert notes_with(plain, NOTHING_TO_RESUME_NOTE), plain.notes
    assert_plain_workspaces(root, shared)

    with contextlib.suppress(Exception):  # refusing is an answer too
        resume(UNREACHABLE_PG, root, key=KEY, identities=False)

    encrypted = [is_encrypted(db) for db in workspace_dbs(root)]
    assert encrypted in ([True, True], [False, False]), f"a mixed root: encrypted {encrypted} for {WORKSPACES}"


# -- 4. --replace between plain and encrypted --------------------------------------------------------------------


def test_an_encrypted_migration_replaces_a_plain_workspace(shared: Shared, tmp_path: Path) -> None:
    root = tmp_path / "clawfs"
    migrate(shared.pg.url, root, options(identities=False))
    assert sorted(p.parent.name for p in root.rglob("index.usearch")) == sorted(WS_DIRS.values())

    migrate(shared.pg.url, root, options(key=KEY, identities=False, replace=True))

    assert_encrypted_workspaces(root, shared)  # no index.usearch left, no plaintext anywhere
    assert_clean(root)


def test_a_plain_migration_replaces_an_encrypted_workspace(
    shared: Shared, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "clawfs"
    monkeypatch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())
    first = run_cli(capsys, "migrate", *encrypted_args(shared.pg.url, root))
    assert first.code == 0, first.stderr
    monkeypatch.delenv("CLAWFS_KEY")

    replaced = run_cli(capsys, "migrate", *cli_args(shared.pg.url, root), "--no-identities", "--replace")

    assert replaced.code == 0, replaced.stderr
    assert_plain_workspaces(root, shared)  # with its index file, no index table
    assert_clean(root)
    found = run_cli(capsys, "search", "--workspace-id", "default", "--text", WORDS[2], "--json", "--root", root)
    assert found.code == 0, found.stderr
    assert found.json()


@pytest.mark.parametrize(
    "point",
    ["between the first and the second rename", "all renamed, before the old copies are removed"],
)
def test_an_encrypted_replace_killed_while_installing_then_resume(
    shared: Shared, point: str, driver: Path, tmp_path: Path, key_env: None
) -> None:
    root = tmp_path / "clawfs"
    migrate(shared.pg.url, root, options(identities=False))
    kill_run(driver, KILL_POINTS[f"install: {point}"], [*encrypted_args(shared.pg.url, root), "--replace"])

    report = resume(UNREACHABLE_PG, root, key=KEY, identities=False, replace=True)

    assert notes_with(report, FINISHED_INSTALL_NOTE), report.notes
    assert_encrypted_workspaces(root, shared)
    assert_clean(root)


# -- 5. --sqlite-path FILE --encrypt -------------------------------------------------------------------------------


def sqlite_path_args(pg_url: str, root: Path, target: Path) -> list[str]:
    return encrypted_args(pg_url, root, "--workspace-id", "default", "--sqlite-path", str(target))


def assert_encrypted_file(target: Path, shared: Shared, root: Path) -> None:
    """One encrypted workspace at `target`, equal to a fresh encrypted migration's `default`, nothing
    beside it but its WAL files, no plaintext there or under the root."""
    assert {p.name for p in target.parent.iterdir()} <= {target.name, f"{target.name}-wal", f"{target.name}-shm"}
    assert not target.with_suffix(".usearch").exists()
    assert_same_workspace("default", encrypted_workspace_picture(target), shared.encrypted["default"])
    assert_opens_only_with(KEY, target)
    with Workspace.open(target, key=KEY) as ws:
        assert ws.workspace_id == "default"
    assert plaintext_in(shared.needles, target.parent, root) == []
    assert_clean(root, target.parent)


def test_sqlite_path_encrypt_writes_one_encrypted_file_and_no_index_file(
    shared: Shared, tmp_path: Path, key_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root, target = tmp_path / "clawfs", tmp_path / "out" / "memory.db"
    target.parent.mkdir()

    result = run_cli(capsys, "migrate", *sqlite_path_args(shared.pg.url, root, target))

    assert result.code == 0, result.stderr
    assert_encrypted_file(target, shared, root)


SQLITE_PATH_REPLACE = {
    "uninterrupted": None,
    # the moves: old -wal, old -shm and old .usearch aside (nothing new for them), then the database
    "killed after the .usearch was set aside": KillPoint(f"{PLACEMENT}.put", 4, "before", journal=True),
    "killed before the old copies were removed": KILL_POINTS["install: all renamed, before the old copies are removed"],
}


@pytest.mark.parametrize("how", list(SQLITE_PATH_REPLACE))
def test_sqlite_path_encrypt_replace_removes_the_plaintext_index_beside_the_file(
    shared: Shared, how: str, driver: Path, tmp_path: Path, key_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root, target = tmp_path / "clawfs", tmp_path / "out" / "memory.db"
    target.parent.mkdir()
    migrate(shared.pg.url, root, options(workspaces=("default",), sqlite_path=target, identities=False))
    stale = target.with_suffix(".usearch")
    assert stale.is_file() and not is_encrypted(target)
    assert_same_workspace("default", workspace_picture(target, stale), shared.plain["default"])
    assert plaintext_in(shared.needles, stale), "the plain index holds no vector's bytes: a weak plaintext search"

    args = [*sqlite_path_args(shared.pg.url, root, target), "--replace"]
    kill = SQLITE_PATH_REPLACE[how]
    if kill is None:
        result = run_cli(capsys, "migrate", *args)
        assert result.code == 0, result.stderr
    else:
        kill_run(driver, kill, args)
        report = resume(UNREACHABLE_PG, root, workspaces=("default",), sqlite_path=target, identities=False, key=KEY)
        assert notes_with(report, FINISHED_INSTALL_NOTE), report.notes

    assert not stale.exists()
    assert_encrypted_file(target, shared, root)


def test_sqlite_path_encrypt_kill_9_then_resume(shared: Shared, driver: Path, tmp_path: Path, key_env: None) -> None:
    root, target = tmp_path / "clawfs", tmp_path / "out" / "memory.db"
    target.parent.mkdir()
    kill_run(driver, KILL_POINTS["documents: after the 3rd batch"], sqlite_path_args(shared.pg.url, root, target))
    [build] = [p for p in target.parent.iterdir() if ".memory.db.clawfs-build-" in p.name]
    assert is_encrypted(build / "workspace.db")
    assert plaintext_in(shared.needles, target.parent, root) == []

    report = resume(shared.pg.url, root, workspaces=("default",), sqlite_path=target, identities=False, key=KEY)

    assert notes_with(report, RESUMED_NOTE), report.notes
    assert_encrypted_file(target, shared, root)


def test_a_plain_sqlite_path_resume_leaves_the_encrypted_build_for_its_own_resume(
    shared: Shared, driver: Path, tmp_path: Path
) -> None:
    root, target = tmp_path / "clawfs", tmp_path / "out" / "memory.db"
    target.parent.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLAWFS_KEY", KEY.secret_for_scrubbing())
        kill_run(driver, KILL_POINTS["documents: after the 3rd batch"], sqlite_path_args(shared.pg.url, root, target))

    plain = resume(shared.pg.url, root, workspaces=("default",), sqlite_path=target, identities=False)

    assert notes_with(plain, NOTHING_TO_RESUME_NOTE), plain.notes
    assert not is_encrypted(target)
    builds = [p for p in target.parent.iterdir() if ".memory.db.clawfs-build-" in p.name]
    assert builds, "the encrypted run's build beside the target is gone"
    assert all(is_encrypted(b / "workspace.db") for b in builds)

    report = resume(
        shared.pg.url, root, workspaces=("default",), sqlite_path=target, identities=False, key=KEY, replace=True
    )

    assert notes_with(report, RESUMED_NOTE), report.notes
    assert_encrypted_file(target, shared, root)


def test_a_plain_sqlite_path_migration_replaces_an_encrypted_file(shared: Shared, tmp_path: Path) -> None:
    root, target = tmp_path / "clawfs", tmp_path / "out" / "memory.db"
    target.parent.mkdir()
    migrate(shared.pg.url, root, options(workspaces=("default",), sqlite_path=target, identities=False, key=KEY))

    migrate(shared.pg.url, root, options(workspaces=("default",), sqlite_path=target, identities=False, replace=True))

    assert not is_encrypted(target)
    assert_same_workspace("default", workspace_picture(target, target.with_suffix(".usearch")), shared.plain["default"])
    with Workspace.open(target) as ws:
        assert ws.check() == []
        assert ws.search(WORDS[0], k=1)
        assert INDEX_TABLE not in {r[0] for r in ws.db.execute("SELECT name FROM sqlite_master")}
    assert_clean(root, target.parent)
