"""Writes to a live workspace, and what survives a crash, a damaged index and a backup (DESIGN §2.3, §3, §4).

Every test works on its own copy of one small migrated root (three workspaces of 32-d vectors, migrated
once from PostgreSQL 16: the PostgreSQL version plays no part in what happens after the migration):

    default   48 documents, 49 vectors (every tenth document has none, every tenth has two)
    twin      the same shape as `default` (so its index file has the same vector count and dimension)
    small     12 documents, 13 vectors

A write is judged by what a user sees: the three search modes, the rows of `workspace.db`, the index
file on disk, `Workspace.check()` and SQLite's own FTS5 integrity check. Writes come from a plan of
operations (`Op`) whose effect a plain Python model (`State`) computes; a workspace that may have lost
the tail of a plan (a crash, a backup taken mid-stream) must hold the model's state after some prefix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pytest
from usearch.index import Index

from clawfs import KEEP, MigrateOptions, UsageError, Workspace, migrate
from clawfs.workspace._layout import fsync_path
from cli_runner import Result, build_leftovers, run_cli
from conftest import fresh_store
from pgstore import PgStore

pytestmark = pytest.mark.pg

DIM = 32
SHAPES = {"default": 48, "twin": 48, "small": 12}  # documents per workspace
WS = "default"
GROUPS = ("alpha", "bravo", "charlie")  # words shared by many documents written by the tests
TOKEN = re.compile(r"[a-z]*tok\d+")  # words that name one document: basetok7, metatok7, rntok12, ...
MATCH = 0.95  # a vector's similarity to itself is above this, that of two random 32-d vectors far below
# Long words for the template's documents: migrate's verification queries each document by its two longest
# letter-only words (it would take "basetok" out of "basetok7", which FTS5 does not match).
VOCABULARY = [
    *("waterfall", "telescope", "blueprint", "harmonica", "marmalade", "trampoline", "avalanche", "chameleon"),
    *("dandelion", "hurricane", "labyrinth", "nightingale", "porcupine", "quicksand", "sandcastle", "saxophone"),
    *("thunderbolt", "watermelon", "kaleidoscope", "accordion", "butterscotch", "cartography", "dragonfly"),
    *("earthquake", "fireworks", "grasshopper", "honeycomb"),
]
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


# -- the migrated template root (once per module) and a copy of it per test -------------------------


def fill_template(pg: PgStore) -> None:
    rng = np.random.default_rng(20240601)
    pg.create_schema(dimension=DIM)
    documents: list[tuple[Any, ...]] = []
    vectors: list[tuple[Any, ...]] = []
    doc_id = vec_id = 0
    for workspace, count in SHAPES.items():
        for i in range(count):
            doc_id += 1
            metadata = None if i % 7 == 3 else json.dumps({"i": i, "label": f"metatok{doc_id}"})
            words = " ".join(rng.choice(VOCABULARY, size=3, replace=False))
            content = f"stored note basetok{doc_id} {words}"
            documents.append((doc_id, workspace, content, metadata, "2024-01-02 03:04:05.5+00"))
            for _ in range(0 if i % 10 == 9 else 2 if i % 10 == 0 else 1):
                vec_id += 1
                text = "[" + ",".join(f"{x:.6f}" for x in rng.standard_normal(DIM)) + "]"
                vectors.append((vec_id, doc_id, text, "2024-01-02 03:04:06+00"))
    with psycopg.connect(pg.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO documents (id, workspace_id, content, metadata, created_at) VALUES (%s, %s, %s, %s, %s)",
            documents,
        )
        cur.executemany("INSERT INTO vectors (id, document_id, embedding, created_at) VALUES (%s, %s, %s, %s)", vectors)
    pg.add_metadata({"embedding_model": '"test-embedding-32"'})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with fresh_store(16) as pg:
        fill_template(pg)
        root = tmp_path_factory.mktemp("writes-template") / "clawfs"
        migrate(pg.url, root, MigrateOptions(all_workspaces=True, sample=20))
    return root


@pytest.fixture
def live(template: Path, tmp_path: Path) -> Path:
    """A root of this test's own, a copy of the migrated template."""
    target = tmp_path / "clawfs"
    shutil.copytree(template, target)
    return target


def db_of(root: Path, workspace: str = WS) -> Path:
    return root / "workspaces" / workspace / "workspace.db"


def index_of(root: Path, workspace: str = WS) -> Path:
    return root / "workspaces" / workspace / "index.usearch"


# -- reading a workspace from the outside --------------------------------------------------------------


def query(db: Path, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return conn.execute(text, params).fetchall()


def fts_integrity(db: Path) -> None:
    """FTS5's own check of its index against `document_store` (raises on any difference)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO documents(documents, rank) VALUES ('integrity-check', 1)")


def assert_clean(ws: Workspace) -> None:
    assert ws.check() == []
    fts_integrity(ws.path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stamp_of(db: Path) -> dict[str, Any]:
    (value,) = query(db, "SELECT value FROM metadata WHERE key = 'hnsw_index'")[0]
    stamp: dict[str, Any] = json.loads(value)
    return stamp


def index_keys(path: Path) -> set[int]:
    index = Index.restore(str(path), view=True)
    assert index is not None, f"{path} is not a usearch index"
    return {int(k) for k in index.keys}


def vector_ids(db: Path) -> set[int]:
    return {int(r[0]) for r in query(db, "SELECT id FROM vectors")}


def assert_index_file_sound(root: Path) -> None:
    """The index file holds exactly the `vectors` ids, and the stamp in metadata names this very file."""
    db, index = db_of(root), index_of(root)
    assert index_keys(index) == vector_ids(db)
    stamp = stamp_of(db)
    assert (stamp["bytes"], stamp["sha256"], stamp["vectors"]) == (
        index.stat().st_size,
        sha256(index),
        len(vector_ids(db)),
    )
    assert stat.S_IMODE(index.stat().st_mode) == 0o600


@contextlib.contextmanager
def clawfs_warnings() -> Iterator[list[str]]:
    """Warnings of the `clawfs` logger (which the CLI stops from propagating to the root logger)."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    logger = logging.getLogger("clawfs")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        yield seen
    finally:
        logger.removeHandler(handler)


# -- the model: documents as a user sees them ----------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    content: str
    metadata: Any
    vectors: tuple[bytes, ...]  # the embeddings as float32 little-endian blobs, sorted


State = dict[int, Doc]


def read_state(db: Path) -> State:
    docs = query(db, "SELECT id, workspace_id, content, metadata, created_at FROM document_store")
    owned: dict[int, list[bytes]] = {}
    for document_id, blob in query(db, "SELECT document_id, embedding FROM vectors"):
        owned.setdefault(document_id, []).append(blob)
    assert set(owned) <= {d[0] for d in docs}, "vectors of missing documents"
    for _, workspace, _, _, created in docs:
        assert workspace == WS
        assert isinstance(created, str) and TIMESTAMP.fullmatch(created), created
    return {i: Doc(c, None if m is None else json.loads(m), tuple(sorted(owned.get(i, [])))) for i, _, c, m, _ in docs}


def blobs(vectors: Sequence[Sequence[float]]) -> tuple[bytes, ...]:
    return tuple(sorted(np.asarray(v, dtype="<f4").tobytes() for v in vectors))


def as_vector(blob: bytes) -> npt.NDArray[np.float32]:
    return np.frombuffer(blob, dtype="<f4")


def words_of(doc: Doc) -> set[str]:
    return set(TOKEN.findall(doc.content)) | set(TOKEN.findall(json.dumps(doc.metadata)))


@dataclass(frozen=True)
class Op:
    """One write: add / update / delete a document, or save the index file."""

    kind: str
    doc: int = 0
    content: str | None = None
    metadata: Any = KEEP  # add: KEEP means None
    vectors: tuple[tuple[float, ...], ...] | None = None
    auto: bool = False  # add: let the workspace choose the id (the plan says which it must choose)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "doc": self.doc,
            "content": self.content,
            "vectors": self.vectors,
            "auto": self.auto,
        }
        if self.metadata is not KEEP:
            out["metadata"] = self.metadata
        return out


def apply(ws: Workspace, op: Op) -> None:
    if op.kind == "add":
        assert op.content is not None
        got = ws.add(
            op.content,
            metadata=None if op.metadata is KEEP else op.metadata,
            vectors=op.vectors or (),
            document_id=None if op.auto else op.doc,
        )
        assert got == op.doc
    elif op.kind == "update":
        ws.update(op.doc, content=op.content, metadata=op.metadata, vectors=op.vectors)
    elif op.kind == "delete":
        ws.delete(op.doc)
    else:
        ws.save_index()


def model_apply(state: State, op: Op) -> None:
    if op.kind == "add":
        assert op.content is not None and op.doc not in state
        metadata = None if op.metadata is KEEP else op.metadata
        state[op.doc] = Doc(op.content, metadata, blobs(op.vectors or ()))
    elif op.kind == "update":
        old = state[op.doc]
        state[op.doc] = Doc(
            old.content if op.content is None else op.content,
            old.metadata if op.metadata is KEEP else op.metadata,
            old.vectors if op.vectors is None else blobs(op.vectors),
        )
    elif op.kind == "delete":
        del state[op.doc]


def matching_prefixes(base: State, ops: Sequence[Op], actual: State) -> list[int]:
    """Every p such that applying ops[:p] to `base` gives `actual`."""
    state = dict(base)
    found = [0] if state == actual else []
    for p, op in enumerate(ops, start=1):
        model_apply(state, op)
        if state == actual:
            found.append(p)
    return found


class Planner:
    """Random writes and the state they lead to. Words and vectors are unique: each names at most one document."""

    def __init__(self, state: State, seed: int, prefix: str, protected: Sequence[int] = ()) -> None:
        self.state = dict(state)
        self.rng = np.random.default_rng(seed)
        self.prefix = prefix
        self.protected = set(protected)  # documents the plan never updates or deletes
        self.serial = 0
        self.ops: list[Op] = []

    def word(self) -> str:
        self.serial += 1
        return f"{self.prefix}tok{self.serial}"

    def vector(self) -> tuple[float, ...]:
        return tuple(float(x) for x in self.rng.standard_normal(DIM).astype(np.float32))

    def content(self) -> str:
        return f"{GROUPS[int(self.rng.integers(len(GROUPS)))]} {self.word()} note {self.word()}"

    def metadata(self) -> Any:
        choice = int(self.rng.integers(4))
        if choice == 0:
            return None
        if choice == 1:
            return {"tag": self.word()}
        if choice == 2:
            return {"tag": self.word(), "note": "café ☕", "n": int(self.rng.integers(1000))}
        return [self.word(), {"deep": [1, 2.5, None, True]}]

    def push(self, op: Op) -> Op:
        model_apply(self.state, op)
        self.ops.append(op)
        return op

    def add(self, vectors: int | None = None, auto: bool | None = None) -> Op:
        count = int(self.rng.choice([0, 1, 1, 1, 2])) if vectors is None else vectors
        auto = bool(self.rng.random() < 0.7) if auto is None else auto
        top = max(self.state, default=0)
        doc = top + 1 if auto else top + 1 + int(self.rng.integers(1, 4))
        metadata = self.metadata()
        return self.push(Op("add", doc, self.content(), metadata, tuple(self.vector() for _ in range(count)), auto))

    def _victim(self) -> int | None:
        candidates = sorted(d for d in self.state if d not in self.protected)
        return int(self.rng.choice(candidates)) if candidates else None

    def update(self) -> Op:
        doc = self._victim()
        if doc is None:
            return self.add()
        content = self.content() if self.rng.random() < 0.6 else None
        metadata = self.metadata() if self.rng.random() < 0.4 else KEEP
        roll = self.rng.random()
        vectors: tuple[tuple[float, ...], ...] | None = None
        if roll < 0.1:
            vectors = ()
        elif roll < 0.5:
            vectors = tuple(self.vector() for _ in range(int(self.rng.integers(1, 3))))
        return self.push(Op("update", doc, content, metadata, vectors))

    def delete(self) -> Op:
        doc = self._victim()
        return self.add() if doc is None else self.push(Op("delete", doc))

    def save(self) -> Op:
        return self.push(Op("save"))

    def random(self) -> Op:
        roll = self.rng.random()
        return self.add() if roll < 0.45 else self.update() if roll < 0.8 else self.delete()


def used(base: State, ops: Sequence[Op]) -> tuple[set[str], set[bytes]]:
    """Every word and vector of `base` and of the writes `ops` (the retired ones too)."""
    words: set[str] = set().union(*(words_of(d) for d in base.values()))
    vectors = {b for d in base.values() for b in d.vectors}
    for op in ops:
        words |= set(TOKEN.findall(op.content or ""))
        if op.metadata is not KEEP:
            words |= set(TOKEN.findall(json.dumps(op.metadata)))
        vectors |= set(blobs(op.vectors or ()))
    return words, vectors


# -- what every search mode must find -------------------------------------------------------------------


def ids(hits: Sequence[Any]) -> list[int]:
    return [h.document_id for h in hits]


def assert_searches(ws: Workspace, state: State, words: set[str], vectors: set[bytes]) -> None:
    """Full text, vector and hybrid search give what `state` says, for every word and vector ever used."""
    owner = {b: d for d, doc in state.items() for b in doc.vectors}
    doc_words = {d: words_of(doc) for d, doc in state.items()}

    for word in sorted(words):
        hits = ws.search(word, k=20)
        assert set(ids(hits)) == {d for d, w in doc_words.items() if word in w}, f"full text {word!r}"
        for h in hits:
            assert (h.content, h.metadata) == (state[h.document_id].content, state[h.document_id].metadata)
    for group in GROUPS:
        expected = {d for d, doc in state.items() if group in doc.content.split()}
        assert set(ids(ws.search(group, k=10_000))) == expected, f"full text {group!r}"

    for blob in sorted(vectors):
        hits = ws.search(vector=as_vector(blob), k=3)
        assert len(set(ids(hits))) == len(hits), "a document appears twice"
        for h in hits:
            assert h.document_id in state and state[h.document_id].vectors, f"hit {h.document_id} has no vector"
            assert (h.content, h.metadata) == (state[h.document_id].content, state[h.document_id].metadata)
        if blob in owner:
            assert hits and hits[0].document_id == owner[blob], f"vector of {owner[blob]}: {ids(hits)}"
            assert hits[0].score > MATCH
        else:
            assert all(h.score < MATCH for h in hits), f"a retired vector is still found: {hits[:1]}"

    for d, doc in state.items():
        if doc.vectors and doc_words[d]:
            hits = ws.search(min(doc_words[d]), vector=as_vector(doc.vectors[0]), k=3)
            assert hits[0].document_id == d, f"hybrid search for {d}: {ids(hits)}"


def check_workspace(root: Path, state: State, words: set[str], vectors: set[bytes]) -> None:
    """Open the workspace afresh: rows, searches and consistency are those of `state`."""
    assert read_state(db_of(root)) == state
    with Workspace.open(root, WS) as ws:
        assert_clean(ws)
        assert_searches(ws, state, words, vectors)


# -- 1. writes, then searches ---------------------------------------------------------------------------


def test_each_write_is_seen_by_full_text_vector_and_hybrid_search(live: Path) -> None:
    db = db_of(live)
    rng = np.random.default_rng(11)
    v1, v2, v3, v4 = (rng.standard_normal(DIM).astype(np.float32) for _ in range(4))

    def fts(ws: Workspace, text: str) -> set[int]:
        return set(ids(ws.search(text, k=100)))

    def row(doc: int) -> tuple[Any, ...]:
        columns = "workspace_id, content, metadata, created_at"
        return query(db, f"SELECT {columns} FROM document_store WHERE id = ?", [doc])[0]

    def stored_vectors(doc: int) -> list[bytes]:
        return [r[0] for r in query(db, "SELECT embedding FROM vectors WHERE document_id = ? ORDER BY id", [doc])]

    with Workspace.open(live, WS) as ws:
        assert_clean(ws)
        top = max(read_state(db))

        # add
        doc = ws.add("quokka harbour lighthouse", metadata={"tag": "metaquokka"}, vectors=np.stack([v1]))
        assert doc == top + 1
        workspace, content, metadata, created = row(doc)
        assert (workspace, content, json.loads(metadata)) == (WS, "quokka harbour lighthouse", {"tag": "metaquokka"})
        assert TIMESTAMP.fullmatch(created)
        assert stored_vectors(doc) == [v1.astype("<f4").tobytes()]
        assert fts(ws, "quokka") == fts(ws, "lighthouse harbour") == fts(ws, "metaquokka") == {doc}
        hit = ws.search(vector=v1, k=5)[0]
        assert (hit.document_id, hit.content, hit.metadata) == (doc, "quokka harbour lighthouse", {"tag": "metaquokka"})
        assert hit.score > MATCH
        assert ws.search("lighthouse", vector=v1, k=5)[0].document_id == doc
        assert_clean(ws)

        # new content (metadata and vectors kept)
        ws.update(doc, content="walrus glacier")
        assert fts(ws, "quokka") == fts(ws, "lighthouse") == set()
        assert fts(ws, "walrus") == fts(ws, "metaquokka") == {doc}
        hit = ws.search(vector=v1, k=5)[0]
        assert (hit.document_id, hit.content, hit.metadata) == (doc, "walrus glacier", {"tag": "metaquokka"})
        assert ws.search("glacier", vector=v1, k=5)[0].document_id == doc
        assert [h.document_id for h in ws.search("quokka", vector=v4, k=5)] != [doc]
        assert_clean(ws)

        # new vectors
        ws.update(doc, vectors=np.stack([v2]))
        assert stored_vectors(doc) == [v2.astype("<f4").tobytes()]
        hits = ws.search(vector=v2, k=5)
        assert hits[0].document_id == doc and hits[0].score > MATCH
        hits = ws.search(vector=v1, k=5)
        assert all(h.score < MATCH for h in hits)
        assert hits[0].document_id != doc
        assert ws.search("walrus", vector=v2, k=5)[0].document_id == doc
        assert_clean(ws)

        # metadata: None clears it, a value sets it, KEEP (the default) leaves it
        ws.update(doc, metadata=None)
        assert row(doc)[1:3] == ("walrus glacier", None)
        assert fts(ws, "metaquokka") == set()
        assert ws.search(vector=v2, k=1)[0].metadata is None
        assert_clean(ws)
        ws.update(doc, metadata={"tag": "metanarwhal", "note": "café ☕"})
        assert json.loads(row(doc)[2]) == {"tag": "metanarwhal", "note": "café ☕"}
        assert fts(ws, "metanarwhal") == fts(ws, "café") == {doc}
        ws.update(doc, content="walrus tundra")
        assert json.loads(row(doc)[2]) == {"tag": "metanarwhal", "note": "café ☕"}
        ws.update(doc, content=None, metadata=KEEP)
        assert row(doc)[1] == "walrus tundra" and row(doc)[3] == created
        assert json.loads(row(doc)[2]) == {"tag": "metanarwhal", "note": "café ☕"}
        assert fts(ws, "tundra") == fts(ws, "metanarwhal") == {doc}
        assert fts(ws, "glacier") == set()
        assert_clean(ws)

        # two vectors: the document is found by either, once
        ws.update(doc, vectors=np.stack([v2, v3]))
        for v in (v2, v3):
            hits = ws.search(vector=v, k=10)
            assert hits[0].document_id == doc and ids(hits).count(doc) == 1
        assert_clean(ws)

        # no vectors: vector search never returns it, full text still does
        ws.update(doc, vectors=[])
        assert stored_vectors(doc) == []
        for v in (v1, v2, v3):
            assert doc not in ids(ws.search(vector=v, k=100))
        assert fts(ws, "tundra") == {doc}
        hybrid = {h.document_id: h.score for h in ws.search("tundra", vector=v2, k=5)}
        assert hybrid[doc] == pytest.approx(1 / 61)  # by its words alone: rank 1 of the full-text list only
        assert_clean(ws)

        # delete
        ws.update(doc, vectors=np.stack([v4]))
        ws.delete(doc)
        assert query(db, "SELECT count(*) FROM document_store WHERE id = ?", [doc]) == [(0,)]
        assert query(db, "SELECT count(*) FROM vectors WHERE document_id = ?", [doc]) == [(0,)]
        assert fts(ws, "tundra") == fts(ws, "walrus") == fts(ws, "metanarwhal") == set()
        for v in (v1, v2, v3, v4):
            assert doc not in ids(ws.search(vector=v, k=100))
            assert doc not in ids(ws.search("tundra walrus", vector=v, k=100))
        assert_clean(ws)

        # the freed ids are taken again (the document's and its vector's): nothing of the old one shows
        old_vector_id = query(db, "SELECT max(id) FROM vectors")[0][0] + 1
        again = ws.add("pelican estuary", vectors=np.stack([v1]))
        assert again == doc
        assert query(db, "SELECT id FROM vectors WHERE document_id = ?", [again]) == [(old_vector_id,)]
        assert ws.search(vector=v1, k=1)[0].document_id == again
        assert all(h.score < MATCH for h in ws.search(vector=v4, k=5))
        assert fts(ws, "tundra") == set() and fts(ws, "pelican") == {again}
        assert_clean(ws)
        state = read_state(db)

    with Workspace.open(live, WS) as ws:  # the pending index changes come back from the log
        assert_clean(ws)
        assert ws.search(vector=v1, k=1)[0].document_id == again
        assert all(h.score < MATCH for h in ws.search(vector=v4, k=5))
        ws.save_index()
    assert_index_file_sound(live)
    assert read_state(db) == state
    with Workspace.open(live, WS) as ws:
        assert_clean(ws)
        assert ws.search(vector=v1, k=1)[0].document_id == again
        assert fts(ws, "pelican") == {again}


def test_a_refused_write_changes_nothing(live: Path) -> None:
    db = db_of(live)
    before = read_state(db)
    existing = min(before)
    good = [0.5] * DIM
    with Workspace.open(live, WS) as ws:
        refused: list[Any] = [
            lambda: ws.add("x", vectors=[[1.0] * (DIM - 1)]),
            lambda: ws.add("x", vectors=[[float("nan")] * DIM]),
            lambda: ws.add("x", vectors=[1.0] * DIM),  # type: ignore[list-item]  # one vector, not a list
            lambda: ws.add("x", vectors=[good], document_id=existing),  # refused inside the transaction
            lambda: ws.add("x", metadata={"bad": float("inf")}),
            lambda: ws.update(999_999, content="y"),
            lambda: ws.update(existing, content="y", vectors=[[1.0, 2.0]]),
            lambda: ws.delete(999_999),
        ]
        for write in refused:
            with pytest.raises(UsageError):
                write()
        assert read_state(db) == before
        assert_clean(ws)
        doc = ws.add("written after the refusals", vectors=[good])  # nothing was left locked
        assert ws.search(vector=good, k=1)[0].document_id == doc
        assert_clean(ws)


def test_random_writes_match_a_model(live: Path) -> None:
    db = db_of(live)
    base = read_state(db)
    planner = Planner(base, seed=300, prefix="rn")
    with Workspace.open(live, WS) as ws:
        for n in range(1, 301):
            apply(ws, planner.random())
            if n % 10 == 0:
                assert ws.check() == [], f"after {n} writes"
            if n % 100 == 0:
                fts_integrity(db)
        assert len({op.kind for op in planner.ops}) == 3
        assert read_state(db) == planner.state
        assert_clean(ws)
        words, vectors = used(base, planner.ops)
        assert_searches(ws, planner.state, words, vectors)
        ws.save_index()
        assert_clean(ws)
    assert_index_file_sound(live)
    with Workspace.open(live, WS) as ws:
        assert_clean(ws)
    assert index_keys(index_of(live)) == vector_ids(db)
    check_workspace(live, planner.state, words, vectors)


# -- 2. crashes ------------------------------------------------------------------------------------------

CHILD = """
import json, os, sys
from clawfs import KEEP, Workspace

root, plan_path, mode = sys.argv[1:4]
with open(plan_path, encoding="utf-8") as f:
    plan = json.load(f)
ws = Workspace.open(root, "default")
for n, op in enumerate(plan, start=1):
    if op["kind"] == "add":
        got = ws.add(
            op["content"],
            metadata=op.get("metadata"),
            vectors=op["vectors"] or (),
            document_id=None if op["auto"] else op["doc"],
        )
        assert got == op["doc"], (got, op)
    elif op["kind"] == "update":
        ws.update(op["doc"], content=op["content"], metadata=op.get("metadata", KEEP), vectors=op["vectors"])
    elif op["kind"] == "delete":
        ws.delete(op["doc"])
    else:
        ws.save_index()
    print(n, flush=True)
if mode == "crash-in-install":
    real_replace = os.replace
    def replace_then_die(src, dst):
        real_replace(src, dst)
        if os.path.basename(dst) == "index.usearch":
            os._exit(0)  # the new file is in place, its stamp not yet committed
    os.replace = replace_then_die
    ws.save_index()
    print("saved without crashing", flush=True)
    os._exit(3)
os._exit(0)  # no close, nothing saved
"""


def write_plan(path: Path, ops: Sequence[Op]) -> Path:
    path.write_text(json.dumps([op.as_json() for op in ops]), encoding="utf-8")
    return path


def run_child(root: Path, plan: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(plan), mode], capture_output=True, text=True, timeout=120
    )


def scripted_plan(planner: Planner) -> None:
    """Adds (with and without vectors), updates of every kind and deletes, of old and new documents."""
    base = sorted(planner.state)
    with_vector = [d for d in base if len(planner.state[d].vectors) == 1]
    with_two = [d for d in base if len(planner.state[d].vectors) == 2]
    new = [planner.add(vectors=n, auto=auto).doc for n, auto in ((1, True), (2, False), (0, True))]
    planner.push(Op("update", with_vector[0], planner.content(), KEEP, (planner.vector(),)))
    planner.push(Op("update", with_vector[1], None, KEEP, (planner.vector(), planner.vector())))
    planner.push(Op("update", with_vector[2], None, {"tag": planner.word()}, None))
    planner.push(Op("update", with_two[0], None, None, ()))
    planner.push(Op("update", new[2], planner.content(), KEEP, (planner.vector(),)))
    planner.push(Op("delete", with_vector[3]))
    planner.push(Op("delete", new[0]))
    planner.push(Op("delete", new[2]))  # the highest document id, and the owner of the highest vector id
    assert planner.add(vectors=1, auto=True).doc == new[2]  # takes both ids again


def test_a_crash_after_the_commits_loses_nothing(live: Path, tmp_path: Path) -> None:
    db, index = db_of(live), index_of(live)
    base = read_state(db)
    planner = Planner(base, seed=21, prefix="cr")
    scripted_plan(planner)
    words, vectors = used(base, planner.ops)
    file_before, stamp_before, keys_before = sha256(index), stamp_of(db), index_keys(index)

    with Workspace.open(live, WS) as early:  # a handle opened before the writer, in another process
        done = run_child(live, write_plan(tmp_path / "plan.json", planner.ops), "exit")
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [str(n) for n in range(1, len(planner.ops) + 1)]

        # nothing was saved: the file and its stamp are the old ones, the new vectors are not in it
        assert (sha256(index), stamp_of(db)) == (file_before, stamp_before)
        assert index_keys(index) == keys_before != vector_ids(db)
        assert read_state(db) == planner.state

        assert_clean(early)  # it follows the other process's writes
        assert_searches(early, planner.state, words, vectors)

    with clawfs_warnings() as warnings:
        check_workspace(live, planner.state, words, vectors)
    assert warnings == []  # nothing stale: the log carries what the file lacks
    with Workspace.open(live, WS) as ws:
        ws.save_index()
    assert_index_file_sound(live)
    check_workspace(live, planner.state, words, vectors)


@pytest.mark.parametrize("kill_after", [23, 71])
def test_kill_9_in_a_stream_of_writes_keeps_every_committed_write(live: Path, tmp_path: Path, kill_after: int) -> None:
    db = db_of(live)
    base = read_state(db)
    planner = Planner(base, seed=kill_after, prefix="kl")
    for n in range(1, 1501):
        planner.random()
        if n % 6 == 0:
            planner.save()
    plan = write_plan(tmp_path / "plan.json", planner.ops)
    with (
        open(tmp_path / "stderr", "w") as err,
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(live), str(plan), "exit"], stdout=subprocess.PIPE, stderr=err, text=True
        ) as proc,
    ):
        try:
            assert proc.stdout is not None
            committed = 0
            for line in proc.stdout:
                committed = int(line)
                if committed >= kill_after:
                    break
            os.kill(proc.pid, signal.SIGKILL)
            committed = max([committed, *(int(x) for x in proc.stdout.read().split())])
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert kill_after <= committed < len(planner.ops), (tmp_path / "stderr").read_text()

    actual = read_state(db)
    prefixes = matching_prefixes(base, planner.ops, actual)
    assert any(committed <= p <= committed + 1 for p in prefixes), f"{committed} committed, state of {prefixes}"
    with Workspace.open(live, WS) as ws:
        assert_clean(ws)
        assert_searches(ws, actual, *used(base, planner.ops[: committed + 1]))
        ws.save_index()
    assert_index_file_sound(live)


def test_a_crash_between_the_index_rename_and_its_stamp_is_repaired_on_open(live: Path, tmp_path: Path) -> None:
    db, index = db_of(live), index_of(live)
    base = read_state(db)
    planner = Planner(base, seed=33, prefix="ri")
    scripted_plan(planner)

    done = run_child(live, write_plan(tmp_path / "plan.json", planner.ops), "crash-in-install")
    assert done.returncode == 0, done.stderr
    assert "saved without crashing" not in done.stdout

    stamp = stamp_of(db)
    assert index_keys(index) == vector_ids(db)  # the new file is in place...
    assert (stamp["bytes"], stamp["sha256"]) != (index.stat().st_size, sha256(index))  # ...under the old stamp
    with clawfs_warnings() as warnings, Workspace.open(live, WS) as ws:
        assert_clean(ws)
    assert any("rebuil" in w for w in warnings), warnings
    assert_index_file_sound(live)
    check_workspace(live, planner.state, *used(base, planner.ops))


def test_a_failure_between_the_index_rename_and_its_stamp_is_repaired(
    live: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, index = db_of(live), index_of(live)
    base = read_state(db)
    planner = Planner(base, seed=34, prefix="fi")
    scripted_plan(planner)

    def fsync_fails_on_directories(path: Path) -> None:
        if path.is_dir():  # `_install` syncs the directory right after the rename
            raise OSError(errno.EIO, "injected: the disk went away")
        fsync_path(path)

    with Workspace.open(live, WS) as ws:
        for op in planner.ops:
            apply(ws, op)
        monkeypatch.setattr("clawfs.workspace._index_store.fsync_path", fsync_fails_on_directories)
        with pytest.raises(OSError, match="injected"):
            ws.save_index()
        monkeypatch.undo()
        stamp = stamp_of(db)
        assert (stamp["bytes"], stamp["sha256"]) != (index.stat().st_size, sha256(index))
        assert_clean(ws)  # the handle that failed still answers right
        assert_searches(ws, planner.state, *used(base, planner.ops))
        apply(ws, planner.add(vectors=1))  # and still takes writes
        assert_clean(ws)

    with clawfs_warnings() as warnings, Workspace.open(live, WS) as ws:
        assert_clean(ws)
    assert any("rebuil" in w for w in warnings), warnings
    assert_index_file_sound(live)
    check_workspace(live, planner.state, *used(base, planner.ops))


# -- 3. a stale, foreign or damaged index file ----------------------------------------------------------


def damage_index(root: Path, kind: str) -> None:
    index = index_of(root)
    data = index.read_bytes()
    if kind == "missing":
        index.unlink()
    elif kind in ("twin", "small"):  # another workspace's index (twin: same vector count and dimension)
        shutil.copyfile(index_of(root, kind), index)
    elif kind == "truncated":
        index.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        index.write_bytes(b"")
    elif kind == "garbage":
        index.write_bytes(np.random.default_rng(5).bytes(len(data)))
    elif kind.startswith("garbage-"):  # the same size, the headers intact, the stored vectors or the graph not
        rows, row_bytes = int.from_bytes(data[0:4], "little"), int.from_bytes(data[4:8], "little")
        assert (rows, row_bytes) == (len(vector_ids(db_of(root))), 2 * DIM)  # usearch: a bf16 matrix comes first
        end = 8 + rows * row_bytes
        start, stop = (8, end) if kind == "garbage-vectors" else (end + (len(data) - end) // 3, len(data) - 64)
        index.write_bytes(data[:start] + np.random.default_rng(6).bytes(stop - start) + data[stop:])
    else:
        raise AssertionError(kind)


SEARCH_EVERY_VECTOR = """
import resource, sqlite3, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a damaged graph makes usearch allocate without end
import numpy as np
from clawfs import Workspace
ws = Workspace.open(sys.argv[1], "default")
for vector_id, document_id, blob in sqlite3.connect(ws.path).execute("SELECT id, document_id, embedding FROM vectors"):
    hits = ws.search(vector=np.frombuffer(blob, dtype="<f4"), k=3)
    assert hits and hits[0].document_id == document_id, (vector_id, document_id, hits[:1])
print("ok", flush=True)
"""


@pytest.mark.parametrize(
    "kind", ["missing", "twin", "small", "truncated", "empty", "garbage", "garbage-vectors", "garbage-graph"]
)
def test_a_bad_index_file_is_found_and_rebuilt_on_open(live: Path, kind: str) -> None:
    db = db_of(live)
    state = read_state(db)
    words, vectors = used(state, [])
    damage_index(live, kind)
    if kind == "garbage-graph":  # a damaged graph can crash usearch: first open and search in a child process
        child = subprocess.run(
            [sys.executable, "-c", SEARCH_EVERY_VECTOR, str(live)], capture_output=True, text=True, timeout=120
        )
        assert (child.returncode, child.stdout) == (0, "ok\n"), f"exit {child.returncode}: {child.stderr[-2000:]}"
        assert_index_file_sound(live)
        damage_index(live, kind)

    with clawfs_warnings() as warnings, Workspace.open(live, WS) as ws:
        assert_clean(ws)
        assert_searches(ws, state, words, vectors)
    assert any("rebuil" in w for w in warnings), f"no warning about the {kind} index: {warnings}"
    assert_index_file_sound(live)
    assert read_state(db) == state
    with clawfs_warnings() as warnings:
        check_workspace(live, state, words, vectors)
    assert warnings == []


def test_index_rebuild_from_the_command_line(live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, index = db_of(live), index_of(live)
    base = read_state(db)
    planner = Planner(base, seed=8, prefix="ix")
    with Workspace.open(live, WS) as ws:
        for _ in range(40):
            apply(ws, planner.random())
    inode = index.stat().st_ino
    assert index_keys(index) != vector_ids(db)  # the changes are in the log, not in the file

    result = run_cli(capsys, "index", "rebuild", "--workspace-id", WS, "--root", live, "--json")

    assert result.code == 0, result.stderr
    assert index.stat().st_ino != inode  # a new file was put in place
    assert_index_file_sound(live)
    report = result.json()
    stamp = stamp_of(db)
    assert (report["workspace_id"], Path(report["index"])) == (WS, index)
    assert {k: report[k] for k in stamp} == stamp
    assert report["vectors"] == len(vector_ids(db))
    words, vectors = used(base, planner.ops)
    check_workspace(live, planner.state, words, vectors)

    damage_index(live, "garbage")
    text = run_cli(capsys, "index", "rebuild", "--workspace-id", WS, "--root", live)
    assert text.code == 0, text.stderr
    assert f"{len(vector_ids(db)):,} vectors" in text.stdout
    assert_index_file_sound(live)
    check_workspace(live, planner.state, words, vectors)


# -- 4. backup and restore ----------------------------------------------------------------------------


def backup_cli(capsys: pytest.CaptureFixture[str], root: Path, destination: Path) -> Result:
    return run_cli(capsys, "backup", "--workspace-id", WS, "--to", destination, "--root", root, "--json")


def restore_cli(capsys: pytest.CaptureFixture[str], source: Path, root: Path, *extra: str) -> Result:
    return run_cli(capsys, "restore", "--from", source, "--root", root, "--json", *extra)


def assert_one_error_line(result: Result, code: int) -> None:
    assert result.code == code, f"exit {result.code}, expected {code}: {result.stderr}"
    assert result.stderr.count("\n") == 1 and result.error, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def table_rows(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "document_store": query(db, "SELECT * FROM document_store ORDER BY id"),
        "vectors": query(db, "SELECT * FROM vectors ORDER BY id"),
        "metadata": [without_file_identity(row) for row in query(db, "SELECT * FROM metadata ORDER BY key")],
    }


def without_file_identity(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The index stamp records the file's inode and mtime (a copy has new ones); the rest must be equal."""
    if row[0] != "hnsw_index":
        return row
    stamp = json.loads(row[1])
    return (row[0], {k: v for k, v in stamp.items() if k not in ("inode", "mtime_ns")})


def test_backup_of_an_idle_workspace_restores_the_same_rows(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db, index = db_of(live), index_of(live)
    rows, index_bytes, db_bytes = table_rows(db), index.read_bytes(), db.read_bytes()

    made = backup_cli(capsys, live, tmp_path / "backup")
    assert made.code == 0, made.stderr
    assert sorted(os.listdir(tmp_path / "backup")) == ["index.usearch", "manifest.json", "workspace.db"]
    report = made.json()
    assert (report["workspace_id"], report["documents"], report["vectors"]) == (WS, 48, 49)
    assert (db.read_bytes(), index.read_bytes()) == (db_bytes, index_bytes)  # the source is only read

    target = tmp_path / "elsewhere"
    restored = restore_cli(capsys, tmp_path / "backup", target)
    assert restored.code == 0, restored.stderr
    assert restored.json()["replaced"] is False
    assert table_rows(db_of(target)) == rows
    assert index_of(target).read_bytes() == index_bytes
    state = read_state(db)
    check_workspace(
        target,
        state,
        set().union(*(words_of(d) for d in state.values())),
        {b for d in state.values() for b in d.vectors},
    )
    assert build_leftovers(target) == []


def test_backups_taken_while_a_writer_writes_restore_to_consistent_states(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = db_of(live)
    base = read_state(db)
    planner = Planner(base, seed=44, prefix="bk")
    for n in range(1, 3001):
        if n % 3:
            planner.add(vectors=1)
        else:
            planner.random()
        if n % 10 == 0:
            planner.save()
    ops = planner.ops
    plan = write_plan(tmp_path / "plan.json", ops)
    backups: list[tuple[Path, int]] = []  # a backup, and how many writes were committed before it began
    committed = 0
    progress = threading.Condition()

    def follow(stdout: Any) -> None:  # the writer's progress, read as it comes
        nonlocal committed
        for line in stdout:
            with progress:
                committed = int(line)
                progress.notify_all()

    def wait_for(count: int) -> int:
        with progress:
            progress.wait_for(lambda: committed >= count or proc.poll() is not None, timeout=120)
            assert committed >= count, f"the writer stopped at {committed}: {(tmp_path / 'stderr').read_text()}"
            return committed

    with (
        open(tmp_path / "stderr", "w") as err,
        subprocess.Popen(  # the writer: another process, on the other core
            [sys.executable, "-c", CHILD, str(live), str(plan), "exit"], stdout=subprocess.PIPE, stderr=err, text=True
        ) as proc,
    ):
        follower = threading.Thread(target=follow, args=(proc.stdout,))
        follower.start()
        try:
            for n in range(4):
                started = wait_for(15 + 40 * n)
                destination = tmp_path / f"backup-{n}"
                made = backup_cli(capsys, live, destination)
                assert made.code == 0, made.stderr
                backups.append((destination, started))
                wait_for(committed + 10)  # the writer goes on after each backup
        finally:
            proc.kill()
            proc.wait(timeout=30)
            follower.join(timeout=30)
    assert committed < len(ops), "the writer finished before it was stopped"

    applied = ops[: committed + 1]
    assert any(committed <= p for p in matching_prefixes(base, applied, read_state(db)))
    words, vectors = used(base, applied)
    last = 0
    for n, (destination, started) in enumerate(backups):
        target = tmp_path / f"restored-{n}"
        restored = restore_cli(capsys, destination, target)
        assert restored.code == 0, restored.stderr
        state = read_state(db_of(target))
        prefixes = [p for p in matching_prefixes(base, applied, state) if p >= started]
        assert prefixes, f"backup {n} is not the state after any prefix of the writes from {started} on"
        assert max(prefixes) >= last  # later backups hold later states
        last = min(prefixes)
        assert restored.json()["documents"] == len(state)
        check_workspace(target, state, words, vectors)
    with Workspace.open(live, WS) as ws:
        assert_clean(ws)


@pytest.fixture
def made_backup(live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    made = backup_cli(capsys, live, tmp_path / "backup")
    assert made.code == 0, made.stderr
    return tmp_path / "backup"


def test_restore_refuses_an_existing_workspace_unless_told_to_replace_it(
    live: Path, made_backup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = db_of(live)
    backed_up = read_state(db)
    with Workspace.open(live, WS) as ws:
        ws.add("written after the backup", vectors=[[0.25] * DIM])
        ws.delete(min(backed_up))
    changed = read_state(db)

    refused = restore_cli(capsys, made_backup, live)
    assert_one_error_line(refused, 5)
    assert "--replace" in refused.error
    assert read_state(db) == changed

    replaced = restore_cli(capsys, made_backup, live, "--replace")
    assert replaced.code == 0, replaced.stderr
    assert replaced.json()["replaced"] is True
    check_workspace(
        live,
        backed_up,
        set().union(*(words_of(d) for d in changed.values()), *(words_of(d) for d in backed_up.values())),
        {b for s in (backed_up, changed) for d in s.values() for b in d.vectors},
    )
    assert sorted(os.listdir(live / "workspaces")) == ["default", "small", "twin"]
    assert build_leftovers(live) == []


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "code"),
    [
        ("flip workspace.db", 5),
        ("flip index.usearch", 5),
        ("no workspace.db", 5),
        ("no manifest", 2),
        ("manifest not json", 5),
        ("manifest of another format", 5),
        ("manifest without files", 5),
        ("not a directory", 2),
    ],
)
def test_a_damaged_backup_is_refused_and_nothing_is_installed(
    made_backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, code: int
) -> None:
    manifest_path = made_backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    source = made_backup
    if damage.startswith("flip "):
        flip_byte(made_backup / damage.removeprefix("flip "))
    elif damage == "no workspace.db":
        (made_backup / "workspace.db").unlink()
    elif damage == "no manifest":
        manifest_path.unlink()
    elif damage == "manifest not json":
        manifest_path.write_text('{"format": "clawfs-backup-v1", "files": ')
    elif damage == "manifest of another format":
        manifest_path.write_text(json.dumps(manifest | {"format": "something-else"}))
    elif damage == "manifest without files":
        manifest_path.write_text(json.dumps({k: v for k, v in manifest.items() if k != "files"}))
    else:
        source = made_backup / "workspace.db"
    target = tmp_path / "target"

    result = restore_cli(capsys, source, target)

    assert_one_error_line(result, code)
    assert not (target / "workspaces").exists()
    assert build_leftovers(target) == []


def test_backup_wants_a_new_or_empty_directory(live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert_one_error_line(backup_cli(capsys, live, busy), 2)
    assert os.listdir(busy) == ["keep.txt"] and (busy / "keep.txt").read_text() == "mine"

    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    assert_one_error_line(backup_cli(capsys, live, a_file), 2)
    assert a_file.read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["a-file", "busy", "clawfs"]  # no staging directory left

    empty = tmp_path / "empty"
    empty.mkdir()
    made = backup_cli(capsys, live, empty)
    assert made.code == 0, made.stderr
    assert sorted(os.listdir(empty)) == ["index.usearch", "manifest.json", "workspace.db"]


def test_backup_and_restore_create_private_files_whatever_the_umask(
    live: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    destination, target = tmp_path / "backup", tmp_path / "restored"
    old_umask = os.umask(0)
    try:
        made = backup_cli(capsys, live, destination)
        restored = restore_cli(capsys, destination, target)
    finally:
        os.umask(old_umask)
    assert made.code == 0, made.stderr
    assert restored.code == 0, restored.stderr
    modes = {
        str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode)
        for top in (destination, target)
        for p in [top, *top.rglob("*")]
    }
    wrong = {
        name: oct(mode) for name, mode in modes.items() if mode != (0o700 if (tmp_path / name).is_dir() else 0o600)
    }
    assert wrong == {}
    assert {"backup/workspace.db", "restored/workspaces/default/index.usearch"} <= set(modes)


# -- 5. threads -------------------------------------------------------------------------------------------


def test_readers_search_while_a_writer_writes(live: Path) -> None:
    db = db_of(live)
    base = read_state(db)
    planner = Planner(base, seed=55, prefix="th", protected=sorted(base))
    for n in range(1, 241):
        planner.random()
        if n % 40 == 0:
            planner.save()
    stable = sorted(d for d, doc in base.items() if doc.vectors)
    errors: list[str] = []
    writing = threading.Event()
    writing.set()
    searches = [0] * 3
    start = threading.Barrier(4, timeout=60)  # the writer begins once every reader is searching

    def reader(n: int, ws: Workspace) -> None:
        rng = np.random.default_rng(n)
        try:
            start.wait()
            while writing.is_set() or searches[n] < 30:
                doc = int(rng.choice(stable))
                vector = as_vector(base[doc].vectors[0])
                word = f"basetok{doc}"
                assert ws.search(vector=vector, k=5)[0].document_id == doc
                assert ids(ws.search(word, k=5)) == [doc]
                assert ws.search(word, vector=vector, k=5)[0].document_id == doc
                ws.search(f"thtok{rng.integers(1, planner.serial)}", vector=rng.standard_normal(DIM), k=5)
                searches[n] += 1
        except BaseException:
            errors.append(traceback.format_exc())

    with Workspace.open(live, WS) as ws, Workspace.open(live, WS) as other:
        readers = [threading.Thread(target=reader, args=(n, ws if n < 2 else other)) for n in range(3)]
        for thread in readers:
            thread.start()
        try:
            start.wait()
            for op in planner.ops:
                apply(ws, op)
        except BaseException:
            errors.append(traceback.format_exc())
        finally:
            writing.clear()
            for thread in readers:
                thread.join(timeout=120)
        assert errors == []
        assert min(searches) >= 30
        assert read_state(db) == planner.state
        assert_clean(ws)
        assert_clean(other)  # another handle follows the writes of the first one
        words, vectors = used(base, planner.ops)
        assert_searches(other, planner.state, words, vectors)
    check_workspace(live, planner.state, words, vectors)


# -- 6. a single write -----------------------------------------------------------------------------------


def test_a_single_add_and_a_single_update_are_complete(live: Path) -> None:
    vector = np.random.default_rng(6).standard_normal(DIM).astype(np.float32)
    other = np.random.default_rng(7).standard_normal(DIM).astype(np.float32)
    with Workspace.open(live, WS) as ws:
        doc = ws.add("a single heron", metadata={"k": 1}, vectors=np.stack([vector]))
        assert ids(ws.search("heron", k=3)) == [doc]
        assert ws.search(vector=vector, k=1)[0].document_id == doc
        ws.update(doc, content="a single egret", vectors=np.stack([other]))
        assert ids(ws.search("heron", k=3)) == []
        assert ids(ws.search("egret", k=3)) == [doc]
        assert ws.search(vector=other, k=1)[0].document_id == doc
        assert ws.search(vector=other, k=1)[0].metadata == {"k": 1}
        assert_clean(ws)


def test_opening_and_searching_a_sound_workspace_writes_nothing(live: Path) -> None:
    db = db_of(live)
    before = (db.read_bytes(), index_of(live).read_bytes())

    with Workspace.open(live, "default") as ws:
        ws.search("alpha")
        ws.search(vector=ws.document_vector(1))

    assert (db.read_bytes(), index_of(live).read_bytes()) == before
    assert not (db.parent / "workspace.db-wal").exists() or (db.parent / "workspace.db-wal").stat().st_size == 0


# -- two handles on one workspace (as two processes would have) -----------------------------------------


def unit_vectors(seed: int, count: int, dimension: int) -> list[npt.NDArray[np.float32]]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(dimension).astype(np.float32) for _ in range(count)]


def test_a_rebuild_never_installs_over_a_newer_save_by_another_handle(
    live: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = Workspace.open(live, WS), Workspace.open(live, WS)
    assert a.dimension is not None
    vectors = unit_vectors(11, 5, a.dimension)
    install = type(a._live)._install  # type: ignore[union-attr]

    def b_saves_first(self: Any, db: sqlite3.Connection, index: Any, position: int) -> Any:
        if self is a._live:
            for n, v in enumerate(vectors):
                b.add(f"written during the rebuild {n}", vectors=[v])
            b.save_index()
        return install(self, db, index, position)

    monkeypatch.setattr(type(a._live), "_install", b_saves_first)
    a.rebuild_index()
    monkeypatch.undo()
    a.close()
    b.close()

    with Workspace.open(live, WS) as fresh:
        assert fresh.check() == []
        for v in vectors:
            assert fresh.search(vector=v, k=1)[0].score == pytest.approx(1.0, abs=1e-3)


def test_a_handle_opened_while_another_saves_sees_every_vector(live: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clawfs.workspace import _live_index

    b = Workspace.open(live, WS)
    assert b.dimension is not None
    vectors = unit_vectors(12, 5, b.dimension)
    open_file = _live_index.LiveIndex._open_file
    fired: list[bool] = []

    def b_saves_meanwhile(self: Any, stamp: Any, db: Any) -> Any:
        found = open_file(self, stamp, db)
        if not fired:
            fired.append(True)
            for n, v in enumerate(vectors):
                b.add(f"written while another opens {n}", vectors=[v])
            b.save_index()
        return found

    monkeypatch.setattr(_live_index.LiveIndex, "_open_file", b_saves_meanwhile)
    a = Workspace.open(live, WS)
    monkeypatch.undo()
    try:
        for v in vectors:
            assert a.search(vector=v, k=1)[0].score == pytest.approx(1.0, abs=1e-3)
        assert a.check() == []
    finally:
        a.close()
        b.close()


def test_a_vector_of_the_wrong_size_stops_an_index_rebuild_with_one_line(
    live: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = sqlite3.connect(db_of(live))
    with db:
        db.execute("UPDATE vectors SET embedding = x'00000000' WHERE id = (SELECT min(id) FROM vectors)")
    db.close()

    result = run_cli(capsys, "index", "rebuild", "--workspace-id", WS, "--root", live)

    assert result.code == 5
    assert len(result.error_lines) == 1 and "float32 values" in result.error
