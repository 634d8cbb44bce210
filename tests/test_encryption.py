"""Encryption at rest (README "Encryption"), end to end against a real PostgreSQL:

- `migrate --encrypt` writes SQLCipher workspaces whose files hold no plaintext of any document, metadata
  value or vector (the raw bytes of every file under the root are searched), and no index file: the HNSW
  index is kept inside the encrypted database;
- they round-trip through verify, search, sync, index rebuild, backup and restore with the key; without it,
  or with another, each command fails with one line and exit 5, and never reads garbage;
- `rekey` changes the key (the old one stops working);
- the key comes from $CLAWFS_KEY or --key-file only and never reaches output, logs, reports or files.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawfs import Key, MigrateOptions, SyncOptions, VerifyOptions, Workspace, migrate, sync, verify
from clawfs.errors import EXIT_USAGE, EXIT_WORKSPACE
from clawfs.workspace import KeyProblem, is_encrypted
from clawfs.workspace._sqlite import RAW_KEY
from cli_runner import files_under, run_cli
from pgstore import PgStore
from test_encryption_resume import bf16  # (its plain migration shows these needles are found)

SECRET = "correct horse Qx7 battery"  # a passphrase
RAW = "8f" * 32  # a raw 256-bit key (64 hex digits)
OTHER = "another passphrase Qx7"
DIMENSION = 8
# words and values that must not appear in any file under the root
CONTENT_WORD = "Xylophonic"
METADATA_VALUE = "zebrawood-ledger"
SOURCE_METADATA = "kumquat-telemetry"


def fill(pg: PgStore, documents: int = 40) -> list[list[float]]:
    pg.create_schema(dimension=DIMENSION)
    ids = pg.add_documents(
        {
            "workspace_id": "default",
            "content": f"{CONTENT_WORD} note {i} about resetting the password",
            "metadata": json.dumps({"tag": f"{METADATA_VALUE}-{i}"}),
        }
        for i in range(documents)
    )
    rng = np.random.default_rng(7)
    vectors = [[float(x) for x in rng.normal(size=DIMENSION) + 3.0] for _ in ids]
    pg.add_vectors({"document_id": d, "embedding": v} for d, v in zip(ids, vectors, strict=True))
    pg.add_metadata({"embedding_model": json.dumps(SOURCE_METADATA)})
    return vectors


def plaintext_in(root: Path, vectors: list[list[float]]) -> list[str]:
    """Where any document word, metadata value or vector's bytes appear in a file under `root`."""
    needles = {
        CONTENT_WORD: CONTENT_WORD.encode(),
        "content (lower case)": CONTENT_WORD.lower().encode(),
        METADATA_VALUE: METADATA_VALUE.encode(),
        SOURCE_METADATA: SOURCE_METADATA.encode(),
        "resetting": b"resetting",
    }
    for n, v in enumerate(vectors[:10]):
        float32 = struct.pack(f"<{DIMENSION}f", *v)
        needles[f"vector {n} (float32)"] = float32[:16]
        needles[f"vector {n} (bf16)"] = b"".join(map(bf16, v))[:12]  # as the index stores it by default
    found = []
    for name, data in files_under(root).items():
        found += [f"{what} in {name}" for what, needle in needles.items() if needle in data]
    return found


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWFS_KEY", SECRET)


def migrate_encrypted(capsys: pytest.CaptureFixture[str], pg: PgStore, root: Path) -> None:
    result = run_cli(
        capsys, "migrate", "--pg-url", pg.url, "--all-workspaces", "--encrypt", "--no-identities", "--root", root
    )
    assert result.code == 0, result.stderr


def test_encrypted_migration_leaves_no_plaintext_and_round_trips(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], key_env: None
) -> None:
    vectors = fill(pg)
    migrate_encrypted(capsys, pg, root)
    db = root / "workspaces" / "default" / "workspace.db"
    assert is_encrypted(db)
    assert not (db.parent / "index.usearch").exists()  # the index lives inside the encrypted database
    assert plaintext_in(root, vectors) == []

    verified = run_cli(capsys, "verify", "--pg-url", pg.url, "--all-workspaces", "--no-identities", "--root", root)
    assert verified.code == 0, verified.stdout + verified.stderr

    found = run_cli(capsys, "search", "--workspace-id", "default", "--text", "resetting", "--json", "--root", root)
    assert found.code == 0, found.stderr
    assert len(found.json()) == 10
    like = run_cli(capsys, "search", "--workspace-id", "default", "--like", "3", "--json", "--root", root)
    assert like.code == 0, like.stderr
    assert like.json()[0]["document_id"] == 3

    rebuilt = run_cli(capsys, "index", "rebuild", "--workspace-id", "default", "--json", "--root", root)
    assert rebuilt.code == 0, rebuilt.stderr
    assert rebuilt.json()["location"] == "database"
    assert plaintext_in(root, vectors) == []


def test_sync_keeps_an_encrypted_workspace_encrypted(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], key_env: None
) -> None:
    vectors = fill(pg)
    migrate_encrypted(capsys, pg, root)
    pg.sql("UPDATE documents SET content = %s WHERE id = 5", [f"{CONTENT_WORD} changed Quokka text"])
    new = pg.add_documents([{"workspace_id": "default", "content": f"{CONTENT_WORD} brand new Wombat entry"}])
    pg.add_vectors([{"document_id": new[0], "embedding": [3.0] * DIMENSION}])
    pg.sql("DELETE FROM vectors WHERE document_id = 7")
    pg.sql("DELETE FROM documents WHERE id = 7")

    synced = run_cli(capsys, "sync", "--pg-url", pg.url, "--all-workspaces", "--no-identities", "--root", root)
    assert synced.code == 0, synced.stderr
    with Workspace.open(root, "default", key=Key(SECRET)) as ws:
        assert [h.document_id for h in ws.search("Quokka")] == [5]
        assert [h.document_id for h in ws.search("Wombat")] == [new[0]]
        assert ws.search(vector=[3.0] * DIMENSION, k=1)[0].document_id == new[0]
        assert ws.check() == []
    verified = run_cli(capsys, "verify", "--pg-url", pg.url, "--all-workspaces", "--no-identities", "--root", root)
    assert verified.code == 0, verified.stdout + verified.stderr
    assert plaintext_in(root, vectors) == []
    for word in (b"Quokka", b"Wombat"):
        assert not [name for name, data in files_under(root).items() if word in data]


def test_api_writes_and_index_saves_stay_inside_the_encrypted_file(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], key_env: None
) -> None:
    vectors = fill(pg)
    migrate_encrypted(capsys, pg, root)
    with Workspace.open(root, "default", key=Key(SECRET)) as ws:
        assert ws.encrypted
        added = ws.add(f"{CONTENT_WORD} written by the agent: Pangolin", vectors=[[5.0] * DIMENSION])
        stamp = ws.save_index()  # folds the write into the stored index
        assert stamp.location == "database"
        assert ws.search(vector=[5.0] * DIMENSION, k=1)[0].document_id == added
    with Workspace.open(root, "default", key=Key(SECRET)) as ws:  # a new process would open it like this
        assert ws.search("Pangolin")[0].document_id == added
        assert ws.search(vector=[5.0] * DIMENSION, k=1)[0].document_id == added
        assert ws.check() == []
    assert plaintext_in(root, vectors) == []
    assert not [name for name, data in files_under(root).items() if b"Pangolin" in data]
    assert not list(root.rglob("*.usearch"))


def test_a_missing_or_wrong_key_fails_with_one_line_and_exit_5(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fill(pg)
    monkeypatch.setenv("CLAWFS_KEY", SECRET)
    migrate_encrypted(capsys, pg, root)
    commands = [
        ("search", "--workspace-id", "default", "--text", "note"),
        ("index", "rebuild", "--workspace-id", "default"),
        ("verify", "--pg-url", pg.url, "--all-workspaces", "--no-identities"),
        ("sync", "--pg-url", pg.url, "--all-workspaces", "--no-identities"),
        ("backup", "--workspace-id", "default", "--to", tmp_path / "backup"),
    ]
    for key in (None, OTHER):
        if key is None:
            monkeypatch.delenv("CLAWFS_KEY")
        else:
            monkeypatch.setenv("CLAWFS_KEY", key)
        for args in commands:
            result = run_cli(capsys, *args, "--root", root)
            assert result.code == EXIT_WORKSPACE, (args, key, result.stdout, result.stderr)
            line = result.error
            assert ("does not open with this key" if key else "is encrypted") in line, line
            assert "Traceback" not in result.stderr
        assert not (tmp_path / "backup").exists()
    with pytest.raises(KeyProblem, match="does not open with this key"):
        Workspace.open(root, "default", key=Key(OTHER))
    with pytest.raises(KeyProblem, match="is encrypted"):
        Workspace.open(root, "default")


def test_backup_and_restore_of_an_encrypted_workspace(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], key_env: None, tmp_path: Path
) -> None:
    vectors = fill(pg)
    migrate_encrypted(capsys, pg, root)
    backup_dir = tmp_path / "backup"
    made = run_cli(capsys, "backup", "--workspace-id", "default", "--to", backup_dir, "--root", root)
    assert made.code == 0, made.stderr
    assert is_encrypted(backup_dir / "workspace.db")
    assert not (backup_dir / "index.usearch").exists()
    assert plaintext_in(backup_dir, vectors) == []

    other_root = tmp_path / "other"
    other_root.mkdir()
    os.environ.pop("CLAWFS_KEY")
    refused = run_cli(capsys, "restore", "--from", backup_dir, "--root", other_root)
    assert refused.code == EXIT_WORKSPACE
    assert "is encrypted" in refused.error
    assert not (other_root / "workspaces" / "default").exists()

    os.environ["CLAWFS_KEY"] = SECRET
    restored = run_cli(capsys, "restore", "--from", backup_dir, "--root", other_root)
    assert restored.code == 0, restored.stderr
    db = other_root / "workspaces" / "default" / "workspace.db"
    assert is_encrypted(db)
    assert plaintext_in(other_root, vectors) == []
    with Workspace.open(other_root, "default", key=Key(SECRET)) as ws:
        assert len(ws.search("resetting", k=100)) == 40
        assert ws.search(vector=vectors[4], k=1)[0].document_id == 5
        assert ws.check() == []


def test_rekey_changes_the_key_and_the_old_one_stops_working(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fill(pg)
    monkeypatch.setenv("CLAWFS_KEY", SECRET)
    migrate_encrypted(capsys, pg, root)
    new_key_file = tmp_path / "new.key"
    new_key_file.write_text(RAW + "\n")
    new_key_file.chmod(0o600)
    changed = run_cli(capsys, "rekey", "--all-workspaces", "--new-key-file", new_key_file, "--root", root)
    assert changed.code == 0, changed.stderr
    assert "no longer opens it" in changed.stdout
    with pytest.raises(KeyProblem):
        Workspace.open(root, "default", key=Key(SECRET))
    with Workspace.open(root, "default", key=Key(RAW)) as ws:
        assert len(ws.search("resetting", k=100)) == 40
        assert ws.check() == []
    old = run_cli(capsys, "search", "--workspace-id", "default", "--text", "note", "--root", root)
    assert old.code == EXIT_WORKSPACE and "does not open with this key" in old.error
    monkeypatch.delenv("CLAWFS_KEY")
    new = run_cli(
        capsys, "search", "--workspace-id", "default", "--text", "note", "--key-file", new_key_file, "--root", root
    )
    assert new.code == 0, new.stderr
    # and back, from a raw key to a passphrase given by the environment
    monkeypatch.setenv("CLAWFS_NEW_KEY", SECRET)
    back = run_cli(capsys, "rekey", "--workspace-id", "default", "--key-file", new_key_file, "--root", root)
    assert back.code == 0, back.stderr
    with Workspace.open(root, "default", key=Key(SECRET)) as ws:
        assert ws.check() == []


def test_a_passphrase_key_opens_in_any_sqlcipher_4(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], key_env: None
) -> None:
    """clawfs derives the passphrase's key itself (once per process); the file is SQLCipher 4's own format."""
    from sqlcipher3 import dbapi2 as sqlcipher

    fill(pg)
    migrate_encrypted(capsys, pg, root)
    db = sqlcipher.connect(str(root / "workspaces" / "default" / "workspace.db"))
    db.execute("PRAGMA key = '" + SECRET.replace("'", "''") + "'")
    assert db.execute("SELECT count(*) FROM document_store").fetchone()[0] == 40
    db.close()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--encrypt",), {}, "--encrypt needs a key"),
        ((), {"CLAWFS_KEY": SECRET}, "but not --encrypt"),
        (("--encrypt",), {"CLAWFS_KEY": SECRET, "_identities": "yes"}, "--no-identities"),
    ],
)
def test_usage_errors(
    pg: PgStore,
    root: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    env: dict[str, str],
    message: str,
) -> None:
    fill(pg, documents=2)
    monkeypatch.delenv("CLAWFS_KEY", raising=False)
    env = dict(env)  # (the parameters are shared by both PostgreSQL versions)
    identities = () if env.pop("_identities", None) else ("--no-identities",)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run_cli(capsys, "migrate", "--pg-url", pg.url, "--all-workspaces", *identities, *args, "--root", root)
    assert result.code == EXIT_USAGE
    assert message in result.error
    assert not (root / "workspaces").exists()


def test_the_key_never_shows(tmp_path: Path) -> None:
    key = Key(SECRET)
    assert SECRET not in repr(key) and SECRET not in str(key) and SECRET not in f"{key!r} {key}"
    options = MigrateOptions(all_workspaces=True, key=key, identities=False)
    assert SECRET not in repr(options)
    assert SECRET not in repr(SyncOptions(all_workspaces=True, key=key, identities=False))
    assert SECRET not in repr(VerifyOptions(all_workspaces=True, key=key))
    assert Key(RAW) != Key(SECRET) and Key(SECRET) == Key(SECRET)


def test_the_api_migrates_verifies_and_syncs_encrypted(pg: PgStore, root: Path) -> None:
    vectors = fill(pg)
    key = Key(SECRET)
    report = migrate(pg.url, root, MigrateOptions(all_workspaces=True, key=key, identities=False))
    assert report.workspaces[0].documents == 40
    assert verify(pg.url, root, VerifyOptions(all_workspaces=True, key=key, identities=False)).ok
    pg.sql("UPDATE documents SET content = 'Narwhal' WHERE id = 2")
    sync(pg.url, root, SyncOptions(all_workspaces=True, key=key, identities=False))
    with Workspace.open(root, "default", key=key) as ws:
        assert [h.document_id for h in ws.search("Narwhal")] == [2]
    assert plaintext_in(root, vectors) == []


def test_sync_through_a_replication_slot_and_cutover_with_a_key(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], key_env: None
) -> None:
    vectors = fill(pg)
    migrate_encrypted(capsys, pg, root)
    base = ("--pg-url", pg.url, "--root", root)
    try:
        refused = run_cli(capsys, "sync", "setup", *base)  # the first comparison would write identity files
        assert refused.code == EXIT_USAGE and "--no-identities" in refused.error
        made = run_cli(capsys, "sync", "setup", "--no-identities", *base)
        assert made.code == 0, made.stderr
        pg.sql("UPDATE documents SET content = 'Axolotl through the slot' WHERE id = 9")
        synced = run_cli(capsys, "sync", "--all-workspaces", "--no-identities", "--json", *base)
        assert synced.code == 0, synced.stderr
        assert synced.json()["method"] == "slot"
        with Workspace.open(root, "default", key=Key(SECRET)) as ws:
            assert [h.document_id for h in ws.search("Axolotl")] == [9]
        done = run_cli(capsys, "cutover", "--all-workspaces", "--no-identities", *base)
        assert done.code == 0, done.stdout + done.stderr
        assert "Dropped replication slot" in done.stdout
    finally:
        pg.drop_slots()
    assert plaintext_in(root, vectors) == []
    assert not [name for name, data in files_under(root).items() if b"Axolotl" in data]


def test_rekey_checks_every_workspace_before_changing_any(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A root with a plain workspace beside an encrypted one: rekey --all-workspaces changes neither."""
    fill(pg)
    pg.add_documents([{"workspace_id": "plain", "content": "a plain workspace"}])
    plain = run_cli(capsys, "migrate", "--pg-url", pg.url, "--workspace-id", "plain", "--root", root)
    assert plain.code == 0, plain.stderr
    monkeypatch.setenv("CLAWFS_KEY", SECRET)
    encrypted = run_cli(
        capsys,
        "migrate",
        "--pg-url",
        pg.url,
        "--workspace-id",
        "default",
        "--encrypt",
        "--no-identities",
        "--root",
        root,
    )
    assert encrypted.code == 0, encrypted.stderr
    monkeypatch.setenv("CLAWFS_NEW_KEY", OTHER)
    refused = run_cli(capsys, "rekey", "--all-workspaces", "--root", root)
    assert refused.code == EXIT_USAGE and "'plain'" in refused.error and "not encrypted" in refused.error
    with Workspace.open(root, "default", key=Key(SECRET)) as ws:  # still the old key
        assert ws.check() == []
    monkeypatch.setenv("CLAWFS_KEY", OTHER)
    wrong = run_cli(capsys, "rekey", "--workspace-id", "default", "--root", root)
    assert wrong.code == EXIT_WORKSPACE and "does not open with this key" in wrong.error
    missing_new = run_cli(capsys, "rekey", "--workspace-id", "default", "--root", root, "--new-key-file", root / "nope")
    assert missing_new.code == EXIT_USAGE and "cannot read the key file" in missing_new.error


@settings(max_examples=12, deadline=None)
@given(passphrase=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s and not RAW_KEY.fullmatch(s)))
def test_any_passphrase_opens_its_file_in_sqlcipher_itself(passphrase: str) -> None:
    """The key clawfs derives from a passphrase is the one SQLCipher 4 derives: any text, any Unicode
    (trailing spaces and quotes included), works both ways."""
    from sqlcipher3 import dbapi2 as sqlcipher

    from clawfs.workspace._sqlite import connect

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.db"
        db = connect(path, Key(passphrase))
        db.execute("CREATE TABLE t (x)")
        db.execute("INSERT INTO t VALUES ('kept')")
        db.commit()
        db.close()
        assert is_encrypted(path)
        other = sqlcipher.connect(str(path))
        other.execute("PRAGMA key = '" + passphrase.replace("'", "''") + "'")
        assert other.execute("SELECT x FROM t").fetchall() == [("kept",)]
        other.close()
        with connect(path, Key(passphrase), read_only=True) as again:  # and clawfs' own derivation, again
            assert again.execute("SELECT x FROM t").fetchall() == [("kept",)]


def test_a_raw_key_is_64_hex_digits_and_anything_else_a_passphrase() -> None:
    from clawfs.errors import UsageError

    assert Key(RAW).pragma_value(b"\x01" * 16) == f"x'{RAW}'"
    assert Key(RAW.upper()).pragma_value(b"\x01" * 16) == f"x'{RAW.upper().lower()}'"
    assert len(Key(RAW).pragma_value(None)) == len("x''") + 64 + 32  # a new file: the salt given explicitly
    derived = Key(RAW[:-1]).pragma_value(b"\x01" * 16)  # 63 digits: a passphrase
    assert derived != f"x'{RAW[:-1]}'" and len(derived) == len("x''") + 64
    for bad in ("", "a\x00b"):
        with pytest.raises(UsageError):
            Key(bad)
