"""DESIGN §3 "Verified" and README "clawfs verify": is a workspace an exact copy of its source?

An honest copy passes (exit 0, per-workspace tables, no `ERROR` line, the search figures). Every kind
of damage — to the workspace's rows, its metadata, its HNSW index, the identity files, or PostgreSQL
changing after the migration — exits 3 with an `ERROR` line that names the workspace and the row ids
(or the agent, or the key) concerned, and no innocent row. verify writes neither to PostgreSQL nor
to the workspace files.

Document ids (1000 + 37·n, spread over several 4096-id checksum ranges) and vector ids (50000 + 53·n)
never overlap, so an id in an error line says by itself which row it blames.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from clawfs import HnswParams, MigrateOptions, VerificationReport, VerifyOptions, migrate, verify
from cli_runner import ERROR_PREFIX, Result, files_under, quiet_fingerprint, run_cli
from pgstore import PgStore

WORKSPACES = ("default", "team/a.b", "ops")
WS_DIRS = {"default": "default", "team/a.b": "team%2Fa%2Eb", "ops": "ops"}
AGENTS = {"agent-1": "agent-1", "ops/bot.2": "ops%2Fbot%2E2"}
DOCUMENTS_PER_WORKSPACE = 100
DIMENSION = 32
WORDS = """
    password restart kernel network gateway firewall database replica backup snapshot cluster
    scheduler pipeline artifact compiler debugger profiler container registry manifest rollback
    deployment migration transaction partition checkpoint heartbeat watchdog telemetry dashboard
    alerting throttle semaphore allocator collector tokenizer embedding retrieval summary ticket
    customer invoice payment refund shipment warehouse inventory supplier contract lawyer meeting
    calendar reminder birthday holiday vacation airport luggage passport hotel museum library garden
    orchard harvest tractor fertilizer irrigation greenhouse
"""
VOCABULARY = WORDS.split()
SAMPLE = 20  # sampled searches per workspace where the test is about the tables (verify's default: 100)
TARGET = "team/a.b"  # the workspace most damage is done to: its directory name needs encoding


# -- the store: built in PostgreSQL, migrated, remembered ------------------------------------------


@dataclass
class Store:
    """A migrated IronClaw store: what PostgreSQL holds, and where ClawFS put it."""

    pg: PgStore
    root: Path
    documents: dict[str, list[int]] = field(default_factory=dict)  # workspace -> document ids
    vectors: dict[str, list[int]] = field(default_factory=dict)  # workspace -> vector ids
    vector_document: dict[int, int] = field(default_factory=dict)  # vector id -> document id
    next_document: int = 20_001  # ids for rows added later (outside the ranges of the fill)
    next_vector: int = 90_001

    def db(self, workspace: str = TARGET) -> Path:
        return self.root / "workspaces" / WS_DIRS[workspace] / "workspace.db"

    def index(self, workspace: str = TARGET) -> Path:
        return self.root / "workspaces" / WS_DIRS[workspace] / "index.usearch"

    def identity(self, agent: str) -> Path:
        return self.root / "agents" / AGENTS[agent] / "identity.json"

    def vectors_of(self, document_id: int) -> list[int]:
        return sorted(v for v, d in self.vector_document.items() if d == document_id)

    def add_pg_document(self, workspace: str, content: str) -> tuple[int, int]:
        """A document and one vector inserted in PostgreSQL; their ids."""
        doc, vec = self.next_document, self.next_vector
        self.next_document += 1
        self.next_vector += 1
        vector = "[" + ",".join(["0.5"] * DIMENSION) + "]"
        self.pg.sql(
            "INSERT INTO documents (id, workspace_id, content, metadata, created_at) VALUES (%s, %s, %s, %s, %s)",
            [doc, workspace, content, '{"late": true}', "2024-05-01 12:00:00.5+00"],
        )
        self.pg.sql(
            "INSERT INTO vectors (id, document_id, embedding, created_at) VALUES (%s, %s, %s, %s)",
            [vec, doc, vector, "2024-05-01 12:00:01.25+00"],
        )
        return doc, vec


HNSW = HnswParams(m=32, ef_search=128, dtype="f32")


def fill(pg: PgStore, root: Path, seed: int = 7, migrated: bool = True) -> Store:
    """Three workspaces of 100 documents with 0, 1 or 2 32-d vectors each (100 per workspace, loosely
    clustered around 8 centres), NULLs and non-ASCII where the schema allows them, source metadata rows
    and two identities; then migrated into `root`.

    The index is built with M 32 and ef_search 128 (f32): for a workspace of 100 vectors the search is
    then exhaustive, so the recall check cannot fail by chance (with the defaults it sometimes does)."""
    rng = np.random.default_rng(seed)
    store = Store(pg, root)
    centres = 0.5 * rng.normal(size=(8, DIMENSION))
    documents: list[tuple[Any, ...]] = []
    vectors: list[tuple[Any, ...]] = []
    n = 0
    v = 0
    for workspace in WORKSPACES:
        store.documents[workspace] = []
        store.vectors[workspace] = []
        for i in range(DOCUMENTS_PER_WORKSPACE):
            doc = 1000 + 37 * n
            words = " ".join(rng.choice(VOCABULARY, size=9, replace=False))
            metadata = None if i % 11 == 0 else json.dumps({"n": i, "tag": "café ☕" if i % 7 == 0 else "plain"})
            created = None if i % 13 == 5 else f"2024-01-{1 + i % 28:02d} 08:{i % 60:02d}:{n % 60:02d}.{n:06d}+00"
            documents.append((doc, workspace, f"note {i} of {workspace}: {words}", metadata, created))
            store.documents[workspace].append(doc)
            for _ in range({0: 2, 9: 0}.get(i % 10, 1)):
                vec = 50_000 + 53 * v
                v += 1
                embedding = centres[v % 8] + rng.normal(size=DIMENSION)
                text = "[" + ",".join(f"{x:.6f}" for x in embedding) + "]"
                vectors.append((vec, doc, text, f"2024-02-{1 + v % 28:02d} 09:00:00.{v:06d}+00"))
                store.vectors[workspace].append(vec)
                store.vector_document[vec] = doc
            n += 1
    pg.create_schema(dimension=DIMENSION)
    with psycopg.connect(pg.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO documents (id, workspace_id, content, metadata, created_at) VALUES (%s, %s, %s, %s, %s)",
            documents,
        )
        cur.executemany("INSERT INTO vectors (id, document_id, embedding, created_at) VALUES (%s, %s, %s, %s)", vectors)
    pg.add_metadata(
        {
            "embedding_model": '"test-embedding-32"',
            "vector_dimension": str(DIMENSION),
            "retention": '{"days": 30, "policy": "keep"}',
            "owner": '"ops team"',
        }
    )
    pg.add_identity(
        "agent-1",
        memory=json.dumps({"learned_patterns": ["retry on timeout"], "heuristics": [{"weight": 0.25}]}),
        created_at="2024-03-01 10:00:00.123456+00",
    )
    pg.add_identity("ops/bot.2", state=json.dumps({"status": "idle", "custom": {"a": [1, 2]}}), version=3)
    if migrated:
        migrate(pg.url, root, MigrateOptions(all_workspaces=True, hnsw=HNSW, sample=SAMPLE))
    return store


# -- helpers ----------------------------------------------------------------------------------------


def verify_cli(
    capsys: pytest.CaptureFixture[str], store: Store, *args: str | os.PathLike[str], sample: int | None = SAMPLE
) -> Result:
    """`clawfs verify` of the store (--all-workspaces unless workspaces are named); a small --sample unless
    `sample` is None (then verify's default of 100 applies)."""
    scope = args if any(a in ("--workspace-id", "--all-workspaces") for a in args) else ("--all-workspaces", *args)
    if sample is not None:
        scope = (*scope, "--sample", str(sample))
    return run_cli(capsys, "verify", "--pg-url", store.pg.url, "--root", store.root, *scope)


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("ERROR")]


def named_ids(lines: Sequence[str]) -> set[int]:
    """Every row id an error line names (`... id 12, 345 and 3 more`)."""
    out: set[int] = set()
    for line in lines:
        for group in re.findall(r"\bid (\d+(?:, \d+)*)", line):
            out.update(int(x) for x in group.split(", "))
    return out


def assert_mismatch(result: Result) -> list[str]:
    """Exit 3, one ERROR line per problem on stdout, no traceback, no crash line."""
    assert result.code == 3, f"exit {result.code}, expected 3\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith(ERROR_PREFIX)], result.stderr
    lines = error_lines(result)
    assert lines, f"no ERROR line:\n{result.stdout}"
    assert "NOT an exact copy" in result.stdout
    return lines


def assert_names(lines: Sequence[str], workspace: str, ids: Sequence[int]) -> None:
    for id_ in ids:
        assert any(f"workspace {workspace!r}" in line and id_ in named_ids([line]) for line in lines), (
            f"no ERROR line of workspace {workspace!r} names id {id_}:\n" + "\n".join(lines)
        )


def edit_db(db: Path, *statements: tuple[str, Sequence[Any]] | str) -> None:
    """Run statements on a workspace database, commit, close (the WAL is checkpointed on close)."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            for statement in statements:
                query, params = (statement, ()) if isinstance(statement, str) else statement
                changed = conn.execute(query, params).rowcount
                assert changed != 0, f"the damage did nothing: {query}"
    finally:
        conn.close()
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0


def db_value(db: Path, query: str, params: Sequence[Any] = ()) -> Any:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute(query, params).fetchone()[0]
    finally:
        conn.close()


def db_content(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of a workspace database (schema included), read fresh."""
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {
            "sqlite_master": conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
            ).fetchall()
        }
        for table in tables:
            out[table] = sorted(conn.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr)
        return out
    finally:
        conn.close()


def workspace_state(store: Store) -> dict[str, Any]:
    """What verify must leave as it was: every table of every workspace, the index and identity bytes."""
    state: dict[str, Any] = {ws: db_content(store.db(ws)) for ws in WORKSPACES}
    for ws in WORKSPACES:
        state[f"{ws}/index"] = store.index(ws).read_bytes()
    state["agents"] = files_under(store.root / "agents")
    return state


def target_row(store: Store, n: int = 3) -> tuple[int, int]:
    """The n-th document of the target workspace that has exactly one vector, and that vector."""
    candidates = [d for d in store.documents[TARGET] if len(store.vectors_of(d)) == 1]
    doc = candidates[n]
    return doc, store.vectors_of(doc)[0]


# -- an honest copy passes --------------------------------------------------------------------------


def test_an_honest_copy_passes_with_tables_figures_and_no_error(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fill(pg, root)
    counts = dict(pg.sql("SELECT workspace_id, count(*) FROM documents GROUP BY 1"))
    vector_counts = dict(
        pg.sql("SELECT d.workspace_id, count(*) FROM vectors v JOIN documents d ON d.id = v.document_id GROUP BY 1")
    )

    text = verify_cli(capsys, store, sample=None)
    as_json = verify_cli(capsys, store, "--json", sample=None)
    again = verify_cli(capsys, store, "--json", sample=None)

    assert text.code == 0, text.stdout + text.stderr
    assert error_lines(text) == []
    assert "MISMATCH" not in text.stdout
    for ws in WORKSPACES:
        assert f"workspace {ws}" in text.stdout
    assert "identities: 2 checked" in text.stdout
    assert "an exact copy" in text.stdout
    assert "recall@10" in text.stdout and "overlap" in text.stdout

    assert as_json.code == 0, as_json.stderr
    report = as_json.json()
    assert report["ok"] is True
    assert report["errors"] == []
    assert report["identities_checked"] == 2
    assert sorted(w["workspace_id"] for w in report["workspaces"]) == sorted(WORKSPACES)
    for ws in report["workspaces"]:
        wid = ws["workspace_id"]
        assert ws["errors"] == []
        tables = {t["table"]: t for t in ws["tables"]}
        assert tables["documents"]["source_rows"] == tables["documents"]["workspace_rows"] == counts[wid]
        assert tables["vectors"]["source_rows"] == tables["vectors"]["workspace_rows"] == vector_counts[wid]
        for t in tables.values():
            assert t["source_checksum"] == t["workspace_checksum"]
            assert t["missing"] == t["extra"] == t["changed"] == []
        searches = {s["check"]: s for s in ws["searches"]}
        assert searches["fts"]["ok"] and searches["vector"]["ok"]
        assert searches["fts"]["queries"] == DOCUMENTS_PER_WORKSPACE  # --sample 100 covers them all
        assert searches["vector"]["queries"] == min(100, vector_counts[wid])
        assert 0.8 <= searches["fts"]["figure"] <= 1.0
        assert 0.95 <= searches["vector"]["figure"] <= 1.0

    assert again.code == 0
    second = again.json()
    for key in ("ok", "errors", "workspaces", "identities_checked", "source"):
        assert second[key] == report[key], f"a second verify differs in {key}"


def test_verify_in_the_library_returns_a_report(pg: PgStore, root: Path) -> None:
    store = fill(pg, root)

    report = verify(pg.url, root, VerifyOptions(workspaces=(TARGET,), sample=20))

    assert isinstance(report, VerificationReport)
    assert report.ok and report.errors == ()
    assert [w.workspace_id for w in report.workspaces] == [TARGET]
    (check,) = report.workspaces
    assert Path(check.database) == store.db()
    rows = {t.table: t.source_rows for t in check.tables}
    assert rows == {"documents": len(store.documents[TARGET]), "vectors": len(store.vectors[TARGET])}
    assert report.asdict()["ok"] is True


# -- verify never writes ----------------------------------------------------------------------------


def test_verify_writes_neither_postgresql_nor_the_workspace(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fill(pg, root)
    before = workspace_state(store)
    modes = {p: p.stat().st_mode for p in root.rglob("*") if p.is_file()}
    pg_before = quiet_fingerprint(pg)

    honest = verify_cli(capsys, store, sample=None)
    after_honest = workspace_state(store)
    edit_db(
        store.db("ops"),
        ("UPDATE document_store SET content = content || '!' WHERE id = ?", [store.documents["ops"][5]]),
    )
    damaged = workspace_state(store)
    failed = verify_cli(capsys, store, sample=None)

    assert honest.code == 0, honest.stdout
    assert failed.code == 3, failed.stdout
    assert quiet_fingerprint(pg) == pg_before
    assert after_honest == before
    assert damaged != before  # the comparison sees a change when there is one
    assert workspace_state(store) == damaged
    for path, mode in modes.items():
        assert path.stat().st_mode == mode, path


# -- damage to the workspace files ------------------------------------------------------------------

# Each damage changes the migrated files (or PostgreSQL) and returns (workspace, ids verify must name,
# whether those are ALL the ids it may name, words the error must contain).
Damage = Callable[[Store], tuple[str, list[int], bool, list[str]]]


def flip_embedding_byte(store: Store) -> tuple[str, list[int], bool, list[str]]:
    _, vec = target_row(store)
    blob = bytearray(db_value(store.db(), "SELECT embedding FROM vectors WHERE id = ?", [vec]))
    blob[4 * 7] ^= 0x01  # the lowest mantissa bit of value 7: a change of one part in ten million
    assert np.isfinite(np.frombuffer(bytes(blob), "<f4")).all()
    edit_db(store.db(), ("UPDATE vectors SET embedding = ? WHERE id = ?", [bytes(blob), vec]))
    return TARGET, [vec], True, ["vectors"]


def change_one_character(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc, _ = target_row(store)
    content = db_value(store.db(), "SELECT content FROM document_store WHERE id = ?", [doc])
    changed = content[:-1] + ("x" if content[-1] != "x" else "y")
    edit_db(store.db(), ("UPDATE document_store SET content = ? WHERE id = ?", [changed, doc]))
    return TARGET, [doc], True, ["documents"]


def change_document_timestamp(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc, _ = target_row(store)
    stamp = db_value(store.db(), "SELECT created_at FROM document_store WHERE id = ?", [doc])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    later = stamp[:-2] + str((int(stamp[-2]) + 1) % 10) + "Z"  # one microsecond off
    edit_db(store.db(), ("UPDATE document_store SET created_at = ? WHERE id = ?", [later, doc]))
    return TARGET, [doc], True, ["documents"]


def change_vector_timestamp(store: Store) -> tuple[str, list[int], bool, list[str]]:
    _, vec = target_row(store)
    edit_db(
        store.db(), ("UPDATE vectors SET created_at = replace(created_at, '2024-02-', '2023-02-') WHERE id = ?", [vec])
    )
    return TARGET, [vec], True, ["vectors"]


def change_document_metadata(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc = next(
        d
        for d in store.documents[TARGET][1:]
        if db_value(store.db(), "SELECT metadata FROM document_store WHERE id = ?", [d])
    )
    metadata = db_value(store.db(), "SELECT metadata FROM document_store WHERE id = ?", [doc])
    edit_db(
        store.db(), ("UPDATE document_store SET metadata = ? WHERE id = ?", [metadata.replace('"n": ', '"n":  '), doc])
    )
    return TARGET, [doc], True, ["documents"]


def null_document_metadata(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc = store.documents[TARGET][0]  # its metadata is SQL NULL: the JSON text 'null' is not the same
    assert db_value(store.db(), "SELECT metadata IS NULL FROM document_store WHERE id = ?", [doc]) == 1
    edit_db(store.db(), ("UPDATE document_store SET metadata = 'null' WHERE id = ?", [doc]))
    return TARGET, [doc], True, ["documents"]


def delete_document_row(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc, _ = target_row(store, 10)
    edit_db(store.db(), ("DELETE FROM document_store WHERE id = ?", [doc]))
    return TARGET, [doc], True, ["documents", "missing"]


def delete_vector_row(store: Store) -> tuple[str, list[int], bool, list[str]]:
    _, vec = target_row(store, 10)
    edit_db(store.db(), ("DELETE FROM vectors WHERE id = ?", [vec]))
    return TARGET, [vec], True, ["vectors", "missing"]


def extra_document_row(store: Store) -> tuple[str, list[int], bool, list[str]]:
    extra = store.documents[TARGET][-1] + 1
    edit_db(
        store.db(),
        (
            "INSERT INTO document_store (id, workspace_id, content, metadata, created_at) VALUES (?, ?, ?, NULL, NULL)",
            [extra, TARGET, "a note nobody wrote in PostgreSQL"],
        ),
    )
    return TARGET, [extra], True, ["documents", "not in PostgreSQL"]


def extra_vector_row(store: Store) -> tuple[str, list[int], bool, list[str]]:
    _, vec = target_row(store)
    extra = max(store.vectors[TARGET]) + 1
    edit_db(
        store.db(),
        (
            "INSERT INTO vectors (id, document_id, embedding, created_at) SELECT ?, document_id, embedding, created_at"
            " FROM vectors WHERE id = ?",
            [extra, vec],
        ),
    )
    return TARGET, [extra], True, ["vectors", "not in PostgreSQL"]


def move_vector(store: Store) -> tuple[str, list[int], bool, list[str]]:
    _, vec = target_row(store)
    other, _ = target_row(store, 20)
    edit_db(store.db(), ("UPDATE vectors SET document_id = ? WHERE id = ?", [other, vec]))
    return TARGET, [vec], True, ["vectors"]


def change_source_metadata_value(store: Store) -> tuple[str, list[int], bool, list[str]]:
    edit_db(store.db(), ("UPDATE metadata SET value = ? WHERE key = 'retention'", ['{"days": 31, "policy": "keep"}']))
    return TARGET, [], False, ["metadata", "'retention'"]


def delete_source_metadata_row(store: Store) -> tuple[str, list[int], bool, list[str]]:
    edit_db(store.db(), "DELETE FROM metadata WHERE key = 'owner'")
    return TARGET, [], False, ["metadata", "'owner'"]


def extra_metadata_row(store: Store) -> tuple[str, list[int], bool, list[str]]:
    edit_db(store.db(), "INSERT INTO metadata (key, value) VALUES ('planted', '\"by hand\"')")
    return TARGET, [], False, ["metadata", "'planted'", "not in PostgreSQL"]


def recorded_workspace_id_changed(store: Store) -> tuple[str, list[int], bool, list[str]]:
    edit_db(store.db(), "UPDATE metadata SET value = '\"ops\"' WHERE key = 'workspace_id'")
    return TARGET, [], False, ["metadata", "workspace_id"]


def index_of_another_workspace(store: Store) -> tuple[str, list[int], bool, list[str]]:
    shutil.copyfile(store.index("ops"), store.index())
    return TARGET, [min(store.vectors[TARGET]), min(store.vectors["ops"])], False, ["index"]


def missing_index(store: Store) -> tuple[str, list[int], bool, list[str]]:
    store.index().unlink()
    return TARGET, [], False, ["index", "missing"]


def older_index(store: Store) -> tuple[str, list[int], bool, list[str]]:
    """The index of the previous migration, put back after a row was added and migrated."""
    old = store.index().read_bytes()
    _, vec = store.add_pg_document(TARGET, "a decision recorded after the first migration")
    migrate(store.pg.url, store.root, MigrateOptions(workspaces=(TARGET,), replace=True, hnsw=HNSW, sample=SAMPLE))
    assert store.index().read_bytes() != old
    store.index().write_bytes(old)
    return TARGET, [vec], True, ["index", "stale"]


def pg_document_updated(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc, _ = target_row(store, 5)
    store.pg.sql("UPDATE documents SET content = content || ' (edited)' WHERE id = %s", [doc])
    return TARGET, [doc], True, ["documents"]


def pg_document_inserted(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc, vec = store.add_pg_document(TARGET, "an escalation written after the migration")
    return TARGET, [doc, vec], True, ["missing from the workspace"]


def pg_document_deleted(store: Store) -> tuple[str, list[int], bool, list[str]]:
    doc = next(d for d in store.documents[TARGET][1:] if len(store.vectors_of(d)) == 2)
    store.pg.sql("DELETE FROM documents WHERE id = %s", [doc])  # its vectors go with it (ON DELETE CASCADE)
    return TARGET, [doc, *store.vectors_of(doc)], True, ["not in PostgreSQL"]


def pg_vector_updated(store: Store) -> tuple[str, list[int], bool, list[str]]:
    _, vec = target_row(store, 6)
    store.pg.sql(
        "UPDATE vectors SET embedding = embedding + %s::vector WHERE id = %s",
        [f"[{','.join(['0.001'] * DIMENSION)}]", vec],
    )
    return TARGET, [vec], True, ["vectors"]


DAMAGES: dict[str, Damage] = {
    "one flipped bit in one embedding": flip_embedding_byte,
    "one changed character in one document": change_one_character,
    "a document's created_at one microsecond off": change_document_timestamp,
    "a vector's created_at changed": change_vector_timestamp,
    "a document's metadata JSON changed": change_document_metadata,
    "a NULL metadata became JSON null": null_document_metadata,
    "a document row deleted": delete_document_row,
    "a vector row deleted": delete_vector_row,
    "an extra document row": extra_document_row,
    "an extra vector row": extra_vector_row,
    "a vector moved to another document": move_vector,
    "a source metadata value changed": change_source_metadata_value,
    "a source metadata row deleted": delete_source_metadata_row,
    "a metadata row PostgreSQL does not have": extra_metadata_row,
    "the recorded workspace_id changed": recorded_workspace_id_changed,
    "the index of another workspace": index_of_another_workspace,
    "the index file missing": missing_index,
    "the index of an older migration": older_index,
    "PostgreSQL: a document updated after the migration": pg_document_updated,
    "PostgreSQL: a document inserted after the migration": pg_document_inserted,
    "PostgreSQL: a document deleted after the migration": pg_document_deleted,
    "PostgreSQL: an embedding updated after the migration": pg_vector_updated,
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damage_exits_3_and_names_the_rows(
    pg: PgStore, root: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fill(pg, root)
    workspace, ids, only_these, words = DAMAGES[damage](store)

    result = verify_cli(capsys, store)

    lines = assert_mismatch(result)
    assert all(f"workspace {workspace!r}" in line for line in lines), "\n".join(lines)
    assert_names(lines, workspace, ids)
    if only_these:
        assert named_ids(lines) == set(ids), "\n".join(lines)
    text = "\n".join(lines)
    for word in words:
        assert word in text, text


def test_the_library_report_sorts_the_differing_rows_into_missing_extra_and_changed(pg: PgStore, root: Path) -> None:
    store = fill(pg, root)
    docs = store.documents[TARGET]
    vecs = store.vectors[TARGET]
    edit_db(
        store.db(),
        ("DELETE FROM document_store WHERE id = ?", [docs[4]]),
        ("UPDATE document_store SET content = 'rewritten' WHERE id = ?", [docs[60]]),  # another checksum range
        ("INSERT INTO document_store (id, workspace_id, content) VALUES (?, ?, 'new')", [docs[-1] + 5000, TARGET]),
        ("DELETE FROM vectors WHERE id = ?", [vecs[7]]),
        ("UPDATE vectors SET created_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?", [vecs[50]]),
        ("INSERT INTO vectors SELECT ?, document_id, embedding, created_at FROM vectors WHERE id = ?", [1, vecs[0]]),
    )

    report = verify(pg.url, root, VerifyOptions(workspaces=(TARGET, "ops"), sample=0))

    assert not report.ok
    checks = {w.workspace_id: w for w in report.workspaces}
    assert checks["ops"].ok and all(t.ok for t in checks["ops"].tables)
    tables = {t.table: t for t in checks[TARGET].tables}
    documents, vectors = tables["documents"], tables["vectors"]
    assert (documents.missing, documents.extra, documents.changed) == ((docs[4],), (docs[-1] + 5000,), (docs[60],))
    assert (vectors.missing, vectors.extra, vectors.changed) == ((vecs[7],), (1,), (vecs[50],))
    assert (documents.source_rows, documents.workspace_rows) == (len(docs), len(docs))
    assert (vectors.source_rows, vectors.workspace_rows) == (len(vecs), len(vecs))
    assert documents.source_checksum != documents.workspace_checksum
    assert all(e.startswith(f"workspace {TARGET!r}: ") for e in report.errors)
    assert report.asdict()["ok"] is False


# -- damage the checker must survive: reported, not a crash ------------------------------------------


def odd_sized_embedding(store: Store) -> tuple[list[int], list[str]]:
    _, vec = target_row(store)
    edit_db(
        store.db(), ("UPDATE vectors SET embedding = substr(embedding, 1, ?) WHERE id = ?", [4 * DIMENSION - 1, vec])
    )
    return [vec], ["vectors"]


def content_not_utf8(store: Store) -> tuple[list[int], list[str]]:
    doc, _ = target_row(store)
    edit_db(store.db(), ("UPDATE document_store SET content = CAST(? AS TEXT) WHERE id = ?", [b"note \xff\xfe", doc]))
    return [doc], ["documents"]


def embedding_stored_as_text(store: Store) -> tuple[list[int], list[str]]:
    _, vec = target_row(store)
    edit_db(store.db(), ("UPDATE vectors SET embedding = 'abcd' || substr(embedding, 5) WHERE id = ?", [vec]))
    return [vec], ["vectors"]


def hnsw_setting_not_json(store: Store) -> tuple[list[int], list[str]]:
    edit_db(store.db(), "UPDATE metadata SET value = 'fifty' WHERE key = 'hnsw_ef_search'")
    return [], ["hnsw_ef_search"]


CORRUPTIONS: dict[str, Callable[[Store], tuple[list[int], list[str]]]] = {
    "an embedding of 127 bytes": odd_sized_embedding,
    "content that is not UTF-8": content_not_utf8,
    "an embedding stored as text": embedding_stored_as_text,
    "an HNSW setting that is not JSON": hnsw_setting_not_json,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_values_are_reported_as_a_mismatch_not_a_crash(
    pg: PgStore, root: Path, corruption: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify reads the workspace trusting nothing (workspace/_files.py): a value no honest migration
    writes is one more difference to name, never an `unexpected error` with exit 1."""
    store = fill(pg, root)
    ids, words = CORRUPTIONS[corruption](store)

    result = verify_cli(capsys, store)

    lines = assert_mismatch(result)
    assert_names(lines, TARGET, ids)
    text = "\n".join(lines)
    for word in words:
        assert word in text, text


# -- identity files ---------------------------------------------------------------------------------


def rewrite_identity(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    doc = json.loads(path.read_text("utf-8"))
    path.write_text(json.dumps(change(doc), indent=2, ensure_ascii=False) + "\n", "utf-8")


def memory_value_changed(store: Store) -> tuple[str, list[str]]:
    path = store.identity("agent-1")
    text = path.read_text("utf-8")
    assert text.count("retry on timeout") == 1
    path.write_text(text.replace("retry on timeout", "retry on timeouts"), "utf-8")
    return "agent-1", ["memory"]


def top_level_keys_reordered(store: Store) -> tuple[str, list[str]]:
    def swap(doc: dict[str, Any]) -> dict[str, Any]:
        keys = list(doc)
        i, j = keys.index("memory"), keys.index("history")
        keys[i], keys[j] = keys[j], keys[i]
        return {k: doc[k] for k in keys}

    rewrite_identity(store.identity("ops/bot.2"), swap)
    return "ops/bot.2", ["keys"]


def state_keys_reordered(store: Store) -> tuple[str, list[str]]:
    def move_status_last(doc: dict[str, Any]) -> dict[str, Any]:
        state = dict(doc["state"])
        status = state.pop("status")
        return doc | {"state": state | {"status": status}}

    rewrite_identity(store.identity("ops/bot.2"), move_status_last)
    return "ops/bot.2", ["state"]


def version_changed(store: Store) -> tuple[str, list[str]]:
    rewrite_identity(store.identity("ops/bot.2"), lambda doc: doc | {"version": 4})
    return "ops/bot.2", ["version"]


def identity_deleted(store: Store) -> tuple[str, list[str]]:
    store.identity("ops/bot.2").unlink()
    return "ops/bot.2", ["missing"]


def identity_without_row(store: Store) -> tuple[str, list[str]]:
    ghost = store.root / "agents" / "ghost%2Eagent" / "identity.json"
    ghost.parent.mkdir(mode=0o700)
    ghost.write_text(store.identity("agent-1").read_text("utf-8").replace('"agent-1"', '"ghost.agent"'), "utf-8")
    return "ghost.agent", ["no row in PostgreSQL"]


IDENTITY_DAMAGES: dict[str, Callable[[Store], tuple[str, list[str]]]] = {
    "one value inside memory changed": memory_value_changed,
    "top-level keys reordered": top_level_keys_reordered,
    "state keys reordered": state_keys_reordered,
    "version changed": version_changed,
    "the file deleted": identity_deleted,
    "a file for an agent PostgreSQL does not have": identity_without_row,
}


@pytest.mark.parametrize("damage", list(IDENTITY_DAMAGES))
def test_identity_damage_exits_3_and_names_the_agent(
    pg: PgStore, root: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fill(pg, root)
    agent, words = IDENTITY_DAMAGES[damage](store)

    result = verify_cli(capsys, store)
    unchecked = verify_cli(capsys, store, "--no-identities")

    lines = assert_mismatch(result)
    assert lines == [line for line in lines if line.startswith(f"ERROR identity {agent!r}")], "\n".join(lines)
    for word in words:
        assert word in lines[0], lines
    assert unchecked.code == 0, unchecked.stdout


# -- workspaces missing on one side -----------------------------------------------------------------


def test_a_workspace_missing_on_disk_exits_3(pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = fill(pg, root)
    shutil.rmtree(store.db("ops").parent)

    everything = verify_cli(capsys, store)
    named = verify_cli(capsys, store, "--workspace-id", "ops", "--workspace-id", TARGET)
    others = verify_cli(capsys, store, "--workspace-id", "default", "--workspace-id", TARGET)

    for result in (everything, named):
        lines = assert_mismatch(result)
        assert len(lines) == 1 and "workspace 'ops'" in lines[0], lines
        assert f"workspace {TARGET}" in result.stdout  # the others are still verified
    assert others.code == 0, others.stdout


def test_a_workspace_on_disk_that_postgresql_does_not_have_exits_3_with_all_workspaces(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fill(pg, root)
    shutil.copytree(store.db("ops").parent, root / "workspaces" / "ghost%2Fws")

    everything = verify_cli(capsys, store)
    named = verify_cli(capsys, store, "--workspace-id", "ops")

    lines = assert_mismatch(everything)
    assert len(lines) == 1 and "workspace 'ghost/ws'" in lines[0] and "not in PostgreSQL" in lines[0], lines
    assert named.code == 0, named.stdout


# -- options ----------------------------------------------------------------------------------------


def test_sample_0_skips_the_searches_but_still_catches_table_damage(
    pg: PgStore, root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fill(pg, root)
    honest = verify_cli(capsys, store, "--json", sample=0)
    _, ids, _, _ = flip_embedding_byte(store)

    damaged = verify_cli(capsys, store, "--json", sample=0)
    text = verify_cli(capsys, store, sample=0)

    assert honest.code == 0, honest.stdout
    assert [w["searches"] for w in honest.json()["workspaces"]] == [[], [], []]
    assert damaged.code == 3
    report = damaged.json()
    assert report["ok"] is False
    (target,) = [w for w in report["workspaces"] if w["workspace_id"] == TARGET]
    assert {t["table"]: t["changed"] for t in target["tables"]} == {"documents": [], "vectors": ids}
    assert named_ids(assert_mismatch(text)) == set(ids)


@pytest.mark.parametrize(
    "args",
    [
        ["--all-workspaces", "--min-recall", "1.01"],
        ["--all-workspaces", "--min-recall", "-0.5"],
        ["--all-workspaces", "--min-fts-recall", "1.5"],
        ["--all-workspaces", "--sample", "-1"],
        ["--all-workspaces", "--workspace-id", "default"],
        [],
        ["--all-workspaces", "--sqlite-path", "x.db"],
        ["--workspace-id", "a", "--workspace-id", "b", "--sqlite-path", "x.db"],
    ],
    ids=lambda args: " ".join(args) or "no workspace",
)
def test_bad_options_are_a_usage_error(args: list[str], root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run_cli(capsys, "verify", "--pg-url", "postgresql://nobody@127.0.0.1:1/none", "--root", root, *args)

    assert result.code == 2, f"exit {result.code}; stderr:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert result.error  # exactly one error line
    assert not root.exists()


def test_sqlite_path_verifies_the_file_migrate_wrote(
    pg: PgStore, root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = fill(pg, root, migrated=False)
    db = tmp_path / "elsewhere" / "team.db"
    db.parent.mkdir()
    hnsw = ["--hnsw-m", str(HNSW.m), "--hnsw-ef-search", str(HNSW.ef_search), "--hnsw-dtype", HNSW.dtype]
    scope = ["--workspace-id", TARGET]
    migrated = run_cli(capsys, "migrate", "--pg-url", pg.url, "--root", root, *scope, "--sqlite-path", db, *hnsw)
    assert migrated.code == 0, migrated.stderr
    assert db.is_file() and db.with_suffix(".usearch").is_file()

    honest = verify_cli(capsys, store, *scope, "--sqlite-path", db)
    under_root = verify_cli(capsys, store, *scope)
    doc, _ = target_row(store)
    edit_db(db, ("UPDATE document_store SET created_at = NULL WHERE id = ?", [doc]))
    damaged = verify_cli(capsys, store, *scope, "--sqlite-path", db)

    assert honest.code == 0, honest.stdout + honest.stderr
    assert error_lines(honest) == []
    assert "no workspace" in " ".join(assert_mismatch(under_root))
    lines = assert_mismatch(damaged)
    assert named_ids(lines) == {doc}
