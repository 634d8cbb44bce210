"""Benchmark ClawFS search and writes against PostgreSQL + pgvector on the same store, in the same run.

    .venv/bin/python benchmarks/search.py                          # 200 queries per mode, 500 writes of each kind
    .venv/bin/python benchmarks/search.py --queries 50 --writes 100   # quick look

It starts the embedded PostgreSQL 16 of benchmarks/migrate.py (or uses $CLAWFS_BENCH_PG_URL) and reuses
its 100k-document store (`ensure_store`: documents of 50-300 words, one clustered 1536-dimensional vector
each), then:

- gives PostgreSQL the draft's indexes: the GIN index on to_tsvector('english', content) (made by
  `ensure_store`) and a pgvector HNSW index (cosine, m = 16), built once and kept;
- keeps a migrated ClawFS root in benchmarks/.cache/root_100000, migrated again whenever the store was
  rebuilt (root_100000.json records which store it came from);
- draws the queries: stored vectors of sampled documents plus Gaussian noise, and 1-3 content words of
  sampled documents (the sample's filler words, mostly English stop words, are left out); the exact
  top 10 (documents) of each vector query comes from numpy over all vectors;
- reads both systems' files once (so both start from the OS page cache), then times full text, vector
  and hybrid search through `Workspace.search`, and the same three through one PostgreSQL connection with
  prepared statements (full text ranked by ts_rank_cd, vector by the HNSW index, hybrid by reciprocal rank
  fusion (k = 60) of both lists, 50 deep, in one statement), rows fetched as an application would; the
  six take turns in blocks of 10 queries;
- times single writes on a throwaway copy of the root (`Workspace.add` of a document with one vector,
  `Workspace.update` of content and vector) and the same in PostgreSQL (a transaction per document:
  INSERT document + vector, then UPDATE both), those rows deleted again before the end.

Prints a table of p50/p99 latencies, the ratios (PostgreSQL p50 / ClawFS p50) against their targets,
recall@10 of both vector searches and the full-text top-10 overlap, and writes benchmarks/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from migrate import ensure_store  # benchmarks/migrate.py: the same store, built once
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types import TypeInfo
from psycopg.types.json import Jsonb

import clawfs
from clawfs.demo import start_embedded_postgres
from clawfs.source._sample import FILLER, SAMPLE_VERSION, TOPICS

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "search.json"
DOCUMENTS = 100_000
WORKSPACE = "default"
K = 10
DEPTH = 50  # each list of a hybrid search (ClawFS: max(4k, 50))
RRF_K = 60
PG_EF_SEARCH = 40  # pgvector's default; a top-10 query needs no more
PG_EF_SEARCH_HYBRID = DEPTH  # an HNSW scan returns at most ef_search rows: a 50-deep list needs 50
HNSW_INDEX = "idx_vectors_embedding_hnsw"
WARMUP = 10
BLOCK = 10  # queries a way runs before the next one takes over
SEED = 20_240_917

TARGETS = {"fts": 5.0, "vector": 10.0, "hybrid": 10.0}  # PostgreSQL p50 / ClawFS p50 at least
TARGET_RECALL = 0.95
TARGET_WRITE_MS = 1.0  # ClawFS add / update p50 below
DRAFT_CLAIMS_MS = {"fts": "30", "vector": "50", "hybrid": "80", "add": "5-8", "update": "5-8"}
MODES = {"fts": "full text", "vector": "vector", "hybrid": "hybrid"}

PG_FTS = (
    "SELECT id, content, metadata, ts_rank_cd(to_tsvector('english', content), plainto_tsquery('english', %(text)s))"
    " AS rank FROM documents WHERE workspace_id = %(ws)s"
    " AND to_tsvector('english', content) @@ plainto_tsquery('english', %(text)s)"
    " ORDER BY rank DESC, id LIMIT 10"
)
PG_VECTOR = (
    "SELECT d.id, d.content, d.metadata, 1 - (v.embedding <=> %(vec)b) AS similarity"
    " FROM vectors v JOIN documents d ON d.id = v.document_id WHERE d.workspace_id = %(ws)s"
    " ORDER BY v.embedding <=> %(vec)b LIMIT 10"
)
PG_HYBRID = f"""
WITH query AS (SELECT plainto_tsquery('english', %(text)s) AS q),
fts_top AS (
    SELECT d.id, ts_rank_cd(to_tsvector('english', d.content), query.q) AS r
    FROM documents d, query
    WHERE d.workspace_id = %(ws)s AND to_tsvector('english', d.content) @@ query.q
    ORDER BY r DESC, d.id LIMIT {DEPTH}
),
fts AS (SELECT id, row_number() OVER (ORDER BY r DESC, id) AS rank FROM fts_top),
vec_top AS (
    SELECT v.document_id AS id, v.embedding <=> %(vec)b AS distance
    FROM vectors v JOIN documents d ON d.id = v.document_id
    WHERE d.workspace_id = %(ws)s
    ORDER BY distance LIMIT {DEPTH}
),
vec AS (SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM vec_top),
fused AS (
    SELECT coalesce(fts.id, vec.id) AS id,
           coalesce(1.0 / ({RRF_K} + fts.rank), 0) + coalesce(1.0 / ({RRF_K} + vec.rank), 0) AS score
    FROM fts FULL OUTER JOIN vec ON fts.id = vec.id
)
SELECT d.id, d.content, d.metadata, fused.score FROM fused JOIN documents d ON d.id = fused.id
ORDER BY fused.score DESC, d.id LIMIT 10
"""
PG_INSERT_DOCUMENT = "INSERT INTO documents (workspace_id, content, metadata) VALUES (%s, %s, %s) RETURNING id"
PG_INSERT_VECTOR = "INSERT INTO vectors (document_id, embedding) VALUES (%s, %b) RETURNING id"
PG_UPDATE_DOCUMENT = "UPDATE documents SET content = %s, updated_at = now() WHERE id = %s"
PG_UPDATE_VECTOR = "UPDATE vectors SET embedding = %b WHERE id = %s"

SEQUENCES = ("documents_id_seq", "vectors_id_seq")

Floats = npt.NDArray[np.float32]


def first_row(
    conn: psycopg.Connection[Any] | psycopg.Cursor[Any], query: str, params: Any = None, prepare: bool = False
) -> tuple[Any, ...]:
    row = conn.execute(query, params, prepare=prepare).fetchone()
    if row is None:
        raise SystemExit(f"no row from {query!r}")
    return tuple(row)


def one(
    conn: psycopg.Connection[Any] | psycopg.Cursor[Any], query: str, params: Any = None, prepare: bool = False
) -> Any:
    """The first value of the first row."""
    return first_row(conn, query, params, prepare)[0]


class PgVector:
    """A float32 vector sent to PostgreSQL in pgvector's binary format (see `vector_dumper`)."""

    __slots__ = ("values",)

    def __init__(self, values: Floats) -> None:
        self.values = values


def vector_dumper(conn: psycopg.Connection[Any]) -> None:
    """Send `PgVector` parameters in binary (int16 dimension, int16 unused, big-endian float4), as
    pgvector's own Python package does: no float formatting or parsing on either side."""
    info = TypeInfo.fetch(conn, "vector")
    if info is None:
        raise SystemExit("pgvector's type `vector` is not in the bench database")
    vector_oid = info.oid

    class VectorDumper(Dumper):
        format = Format.BINARY
        oid = vector_oid

        def dump(self, obj: Any) -> bytes:
            values: Floats = obj.values
            return struct.pack(">HH", len(values), 0) + values.astype(">f4").tobytes()

    conn.adapters.register_dumper(PgVector, VectorDumper)


# -- the set-up: PostgreSQL's HNSW index, the migrated root ---------------------------------------


def ensure_hnsw_index(url: str) -> float | None:
    """The HNSW index of the draft's vectors table (built once; seconds it took, None when it existed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", [HNSW_INDEX]).fetchone() == (True,):
            return None
        print("  building pgvector's HNSW index (m = 16, cosine) on 100k x 1536 vectors: takes minutes", flush=True)
        conn.execute("SET maintenance_work_mem = '2GB'")
        conn.execute(f"SET max_parallel_maintenance_workers = {max(1, (os.cpu_count() or 2) - 1)}")
        t = time.perf_counter()
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON vectors USING hnsw (embedding vector_cosine_ops) WITH (m = 16)"
        )
        seconds = time.perf_counter() - t
        conn.execute("ANALYZE vectors")
        print(f"  built {HNSW_INDEX} in {seconds:.0f} s", flush=True)
        return seconds


def store_signature(url: str) -> dict[str, Any]:
    """What identifies one build of the store: a rebuilt store has new tables (new oids)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT value::text FROM metadata WHERE key = 'sample_version'),"
            " (SELECT count(*) FROM documents), (SELECT count(*) FROM vectors),"
            " 'documents'::regclass::oid::int8, 'vectors'::regclass::oid::int8"
        ).fetchone()
    assert row is not None
    keys = ("sample_version", "documents", "vectors", "documents_oid", "vectors_oid")
    return dict(zip(keys, row, strict=True))


def ensure_root(url: str, root: Path) -> float | None:
    """The store migrated into `root` (seconds the migration took, None when the cached one is current)."""
    stamp = root.with_name(root.name + ".json")
    signature = store_signature(url)
    if root.is_dir() and stamp.is_file() and json.loads(stamp.read_text()) == signature:
        try:
            clawfs.Workspace.open(root, WORKSPACE).close()
            return None
        except clawfs.ClawfsError as e:
            print(f"  the cached root does not open ({e}): migrating again", flush=True)
    if root.exists():
        shutil.rmtree(root)
    stamp.unlink(missing_ok=True)
    print(f"  migrating the store into {root.relative_to(HERE.parent)} (no verification)", flush=True)
    t = time.perf_counter()
    clawfs.migrate(url, root, clawfs.MigrateOptions(all_workspaces=True, verify=False))
    seconds = time.perf_counter() - t
    stamp.write_text(json.dumps(signature, indent=2) + "\n")
    print(f"  migrated in {seconds:.0f} s", flush=True)
    return seconds


# -- queries and the exact truth ------------------------------------------------------------------


def all_vectors(db_path: Path) -> tuple[npt.NDArray[np.int64], Floats]:
    """(document id of each vector, vectors), read once from the workspace's `vectors` table."""
    db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT document_id, embedding FROM vectors ORDER BY id").fetchall()
    finally:
        db.close()
    owners = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return owners, vectors.astype(np.float32)


def exact_top_documents(owners: npt.NDArray[np.int64], vectors: Floats, queries: Floats) -> list[list[int]]:
    """Exact cosine top 10 documents of each query (a document once, with its best vector)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    out = []
    for start in range(0, len(queries), 64):
        q = queries[start : start + 64]
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ unit.T
        for row in sims:
            near = np.argpartition(-row, 200)[:200]
            documents: list[int] = []
            for i in near[np.argsort(-row[near], kind="stable")]:
                doc = int(owners[i])
                if doc not in documents:
                    documents.append(doc)
                if len(documents) == K:
                    break
            out.append(documents)
    return out


def text_queries(db_path: Path, count: int, rng: np.random.Generator) -> list[str]:
    """1-3 distinct content words of each of `count` sampled documents."""
    filler = set(FILLER)
    db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    try:
        top = db.execute("SELECT max(id) FROM document_store").fetchone()[0]
        queries: list[str] = []
        while len(queries) < count:
            row = db.execute("SELECT content FROM document_store WHERE id = ?", (int(rng.integers(1, top + 1)),))
            found = row.fetchone()
            if found is None:
                continue
            words = sorted({w for w in re.findall(r"[a-z0-9]+", found[0].lower()) if w not in filler})
            if not words:
                continue
            n = min(len(words), int(rng.integers(1, 4)))
            queries.append(" ".join(rng.choice(words, size=n, replace=False).tolist()))
    finally:
        db.close()
    return queries


def vector_queries(vectors: Floats, count: int, noise: float, rng: np.random.Generator) -> Floats:
    """Stored vectors of sampled documents plus Gaussian noise of `noise` times their length."""
    picked = vectors[rng.choice(len(vectors), size=count, replace=False)]
    scale = noise * np.linalg.norm(picked, axis=1, keepdims=True) / np.sqrt(picked.shape[1])
    noisy: Floats = (picked + rng.normal(size=picked.shape) * scale).astype(np.float32)
    return noisy


# -- searching ------------------------------------------------------------------------------------


def read_files(paths: list[Path]) -> int:
    """Read files once, so that the OS page cache holds them; bytes read."""
    total = 0
    for path in paths:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                total += len(chunk)
    return total


def pg_files(url: str) -> tuple[list[Path], dict[str, int]]:
    """The data files of the tables and indexes the queries read (for `read_files`), and their sizes."""
    relations = ("documents", "vectors", "documents_pkey", "vectors_pkey", "idx_documents_content_gin", HNSW_INDEX)
    with psycopg.connect(url) as conn:
        data = Path(one(conn, "SHOW data_directory"))
        rows = conn.execute(
            "SELECT coalesce((SELECT o.relname || ' (toast)' FROM pg_class o WHERE o.reltoastrelid = c.oid),"
            " c.relname), pg_relation_filepath(c.oid), pg_relation_size(c.oid) FROM pg_class c"
            " WHERE c.relname = ANY(%(r)s) OR c.oid IN"
            " (SELECT reltoastrelid FROM pg_class WHERE relname = ANY(%(r)s) AND reltoastrelid != 0)",
            {"r": list(relations)},
        ).fetchall()
    files = [f for _, path, _ in rows for f in sorted(data.glob(f"{path}*")) if f.is_file()]
    return files, {name: size for name, _, size in rows}


def short_plan(plan: str) -> str:
    """A plan with vector literals shortened."""
    return re.sub(r"'\[[^\]]{40,}\]'", "'[...]'", plan)


class PgSearch:
    """One persistent connection, prepared statements, rows fetched."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        vector_dumper(self.conn)
        self.cur = self.conn.cursor()
        self.ef_search = 0

    def set_ef_search(self, value: int) -> None:
        if value != self.ef_search:
            self.conn.execute(f"SET hnsw.ef_search = {int(value)}")
            self.ef_search = value

    def fts(self, text: str) -> list[int]:
        rows = self.cur.execute(PG_FTS, {"text": text, "ws": WORKSPACE}, prepare=True).fetchall()
        return [r[0] for r in rows]

    def vector(self, vector: Floats) -> list[int]:
        rows = self.cur.execute(PG_VECTOR, {"vec": PgVector(vector), "ws": WORKSPACE}, prepare=True).fetchall()
        return [r[0] for r in rows]

    def hybrid(self, text: str, vector: Floats) -> list[int]:
        params = {"text": text, "vec": PgVector(vector), "ws": WORKSPACE}
        rows = self.cur.execute(PG_HYBRID, params, prepare=True).fetchall()
        return [r[0] for r in rows]

    def explain(self, query: str, params: dict[str, Any]) -> str:
        rows = self.conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, params).fetchall()
        return "\n".join(r[0] for r in rows)

    def close(self) -> None:
        self.conn.close()


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "n": len(ms),
    }


def measure_searches(
    ws: clawfs.Workspace, pg: PgSearch, texts: list[str], vectors: Floats, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """Every query in all six ways, after `warmup` queries of each; returns milliseconds and document ids
    per way. The ways take turns in blocks of BLOCK queries (the order rotating from block to block):
    noise from other work on the machine spreads over all of them, while within a block each system runs
    with its own data in the CPU caches, as it would in an application that uses only it."""
    ways: dict[str, Callable[[int], list[int]]] = {
        "clawfs_fts": lambda i: [h.document_id for h in ws.search(texts[i], k=K)],
        "clawfs_vector": lambda i: [h.document_id for h in ws.search(vector=vectors[i], k=K)],
        "clawfs_hybrid": lambda i: [h.document_id for h in ws.search(texts[i], vector=vectors[i], k=K)],
        "pg_fts": lambda i: pg.fts(texts[i]),
        "pg_vector": lambda i: pg.vector(vectors[i]),
        "pg_hybrid": lambda i: pg.hybrid(texts[i], vectors[i]),
    }
    ef = {"pg_vector": PG_EF_SEARCH, "pg_hybrid": PG_EF_SEARCH_HYBRID}
    names = list(ways)
    n = len(texts) - warmup
    for i in range(n, n + warmup):
        for name in names:
            if name in ef:
                pg.set_ef_search(ef[name])
            ways[name](i)
    ms: dict[str, list[float]] = {name: [] for name in names}
    ids: dict[str, list[list[int]]] = {name: [] for name in names}
    for start in range(0, n, BLOCK):
        shift = (start // BLOCK) % len(names)
        for name in names[shift:] + names[:shift]:
            if name in ef:
                pg.set_ef_search(ef[name])  # outside the timing: a session setting, not part of a query
            for i in range(start, min(start + BLOCK, n)):
                t = time.perf_counter()
                found = ways[name](i)
                ms[name].append((time.perf_counter() - t) * 1000)
                ids[name].append(found)
    return ms, ids


def recall(found: list[list[int]], truth: list[list[int]]) -> float:
    return float(np.mean([len(set(f[:K]) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def overlap(a: list[list[int]], b: list[list[int]]) -> float:
    """Mean |A ∩ B| / max(|A|, |B|) of two top-10 lists (1 when both are empty)."""
    return float(
        np.mean([len(set(x) & set(y)) / max(len(x), len(y)) if x or y else 1.0 for x, y in zip(a, b, strict=True)])
    )


# -- writes ---------------------------------------------------------------------------------------


def new_texts(count: int, rng: np.random.Generator) -> list[str]:
    """Documents like the sample's: half the words from one topic, half filler, 50-300 words."""
    vocab = [words.split() for words in TOPICS.values()]
    out = []
    for _ in range(count):
        length = int(rng.integers(50, 301))
        own = rng.choice(vocab[int(rng.integers(len(vocab)))], size=length // 2)
        fill = rng.choice(FILLER, size=length - len(own))
        out.append(" ".join(rng.permutation(np.concatenate([own, fill])).tolist()).capitalize() + ".")
    return out


def clawfs_writes(
    root: Path, count: int, texts: list[str], vectors: Floats, rng: np.random.Generator
) -> dict[str, Any]:
    """`add` then `update`, one document at a time, on a copy of the root."""
    with tempfile.TemporaryDirectory(prefix="clawfs-bench-search-", dir=root.parent) as tmp:
        copy = Path(tmp) / "root"
        t = time.perf_counter()
        shutil.copytree(root, copy)
        copy_seconds = time.perf_counter() - t
        ws = clawfs.Workspace.open(copy, WORKSPACE)
        try:
            top = int(ws.db.execute("SELECT max(id) FROM document_store").fetchone()[0])
            targets = rng.choice(np.arange(1, top + 1), size=count, replace=False).tolist()
            for i in range(3):  # the writer connection and its statements, once
                ws.update(int(targets[i]), content=texts[count + i], vectors=[vectors[count + i]])
            add_ms, update_ms = [], []
            for i in range(count):
                t = time.perf_counter()
                ws.add(texts[i], metadata={"source": "bench", "n": i}, vectors=[vectors[i]])
                add_ms.append((time.perf_counter() - t) * 1000)
            for i in range(count):
                t = time.perf_counter()
                ws.update(int(targets[i]), content=texts[-1 - i], vectors=[vectors[-1 - i]])
                update_ms.append((time.perf_counter() - t) * 1000)
            hits = ws.search(vector=vectors[0], k=1)
            found_added = bool(hits) and hits[0].content == texts[0]
        finally:
            ws.close()
    return {"add": add_ms, "update": update_ms, "copy_seconds": copy_seconds, "found_added": found_added}


def pg_writes(url: str, count: int, texts: list[str], vectors: Floats) -> dict[str, Any]:
    """INSERT document + vector, then UPDATE both, a transaction per document (synchronous_commit on, the
    default; then the inserts once more with it off); every row inserted is deleted again at the end
    and the id sequences are set back, so the bench store is left as it was."""
    conn = psycopg.connect(url, autocommit=True)
    vector_dumper(conn)
    out: dict[str, Any] = {"insert": [], "update": [], "insert_async_commit": []}
    sequences = {name: first_row(conn, f"SELECT last_value, is_called FROM {name}") for name in SEQUENCES}
    rows: list[tuple[int, int]] = []
    try:
        cur = conn.cursor()
        out["synchronous_commit"] = one(conn, "SHOW synchronous_commit")

        def insert(i: int) -> float:
            t = time.perf_counter()
            with conn.transaction():
                doc = one(cur, PG_INSERT_DOCUMENT, [WORKSPACE, texts[i], Jsonb({"source": "bench", "n": i})], True)
                vec = one(cur, PG_INSERT_VECTOR, [doc, PgVector(vectors[i])], True)
            rows.append((doc, vec))
            return (time.perf_counter() - t) * 1000

        for i in range(3):
            insert(count + i)
        out["insert"] = [insert(i) for i in range(count)]
        for n, (doc, vec) in enumerate(rows[3 : 3 + count]):
            t = time.perf_counter()
            with conn.transaction():
                cur.execute(PG_UPDATE_DOCUMENT, [texts[-1 - n], doc], prepare=True)
                cur.execute(PG_UPDATE_VECTOR, [PgVector(vectors[-1 - n]), vec], prepare=True)
            out["update"].append((time.perf_counter() - t) * 1000)
        conn.execute("SET synchronous_commit = off")
        out["insert_async_commit"] = [insert(i) for i in range(count)]
        conn.execute("RESET synchronous_commit")
    finally:
        t = time.perf_counter()
        with conn.transaction():
            # vectors first, by id; then the documents without the cascade's per-row scan of vectors
            # (vectors.document_id has no index in the draft's schema)
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("DELETE FROM vectors WHERE id = ANY(%s)", [[v for _, v in rows]])
            conn.execute("DELETE FROM documents WHERE id = ANY(%s)", [[d for d, _ in rows]])
            for name, (value, called) in sequences.items():
                conn.execute("SELECT setval(%s, %s, %s)", [name, value, called])
        # INDEX_CLEANUP ON: so few dead rows would otherwise leave their entries in the indexes (HNSW too)
        conn.execute("VACUUM (INDEX_CLEANUP ON) documents, vectors")
        out["cleanup_seconds"] = time.perf_counter() - t
        out["rows_left_behind"] = one(conn, "SELECT count(*) FROM documents WHERE id = ANY(%s)", [[d for d, _ in rows]])
        conn.close()
    return out


# -- the run --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200, help="queries per mode")
    parser.add_argument("--writes", type=int, default=500, help="writes of each kind")
    parser.add_argument("--noise", type=float, default=0.1, help="query noise, relative to the vector's length")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)

    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    server = os.environ.get("CLAWFS_BENCH_PG_URL") or start_embedded_postgres(cache / "pg16", keep=True)
    print(f"PostgreSQL ready; building the {DOCUMENTS:,}-document store if needed", flush=True)
    url = ensure_store(server, f"bench_{DOCUMENTS}", DOCUMENTS)
    hnsw_seconds = ensure_hnsw_index(url)
    root = cache / f"root_{DOCUMENTS}"
    migrate_seconds = ensure_root(url, root)
    with clawfs.Workspace.open(root, WORKSPACE) as ws:
        db_path, index_path, hnsw = ws.path, ws.index_path, ws.hnsw
    with psycopg.connect(url) as conn:
        settings = {
            s: one(conn, f"SHOW {s}")
            for s in (
                "server_version",
                "shared_buffers",
                "work_mem",
                "effective_cache_size",
                "jit",
                "synchronous_commit",
            )
        }
        settings["pgvector"] = one(conn, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")

    print(f"  drawing {args.queries} queries per mode and their exact top {K}", flush=True)
    warmup = min(WARMUP, args.queries)
    owners, stored = all_vectors(db_path)
    texts = text_queries(db_path, args.queries + warmup, rng)
    vectors = vector_queries(stored, args.queries + warmup, args.noise, rng)
    t = time.perf_counter()
    truth = exact_top_documents(owners, stored, vectors[: args.queries])
    exact_seconds = time.perf_counter() - t
    write_vectors = vector_queries(stored, 2 * args.writes + 3, args.noise, rng)
    write_texts = new_texts(2 * args.writes + 3, rng)
    del stored

    files, pg_sizes = pg_files(url)
    t = time.perf_counter()
    read_pg = read_files(files)
    read_clawfs = read_files([db_path, index_path])
    print(
        f"  read PostgreSQL's files ({read_pg / 1e6:,.0f} MB) and ClawFS' ({read_clawfs / 1e6:,.0f} MB) once"
        f" in {time.perf_counter() - t:.1f} s",
        flush=True,
    )

    pg = PgSearch(url)
    ws = clawfs.Workspace.open(root, WORKSPACE)
    try:
        pg.set_ef_search(PG_EF_SEARCH)
        plan = short_plan(pg.explain(PG_VECTOR, {"vec": PgVector(vectors[0]), "ws": WORKSPACE}))
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the PostgreSQL vector query, hnsw.ef_search = {PG_EF_SEARCH}:")
        print("  " + plan.replace("\n", "\n  "))
        pg.set_ef_search(PG_EF_SEARCH_HYBRID)
        params = {"text": texts[0], "vec": PgVector(vectors[0]), "ws": WORKSPACE}
        hybrid_plan = short_plan(pg.explain(PG_HYBRID, params))
        fts_plan = pg.explain(PG_FTS, {"text": texts[0], "ws": WORKSPACE})
        uses_hnsw = {"vector": HNSW_INDEX in plan, "hybrid": HNSW_INDEX in hybrid_plan}
        for mode, used in uses_hnsw.items():
            if not used:
                print(f"  WARNING: the plan of the {mode} query does not use {HNSW_INDEX}", flush=True)
        print(f"\n  measuring {args.queries} queries x 6 (after {warmup} warm-up queries each)", flush=True)
        ms, ids = measure_searches(ws, pg, texts, vectors, warmup)
    finally:
        ws.close()
        pg.close()

    print(f"  measuring {args.writes} writes of each kind: ClawFS on a copy of the root, then PostgreSQL", flush=True)
    claw_w = clawfs_writes(root, args.writes, write_texts, write_vectors, rng)
    pg_w = pg_writes(url, args.writes, write_texts, write_vectors)

    latency = {name: percentiles(values) for name, values in ms.items()}
    latency["clawfs_add"] = percentiles(claw_w["add"])
    latency["clawfs_update"] = percentiles(claw_w["update"])
    latency["pg_insert"] = percentiles(pg_w["insert"])
    latency["pg_update"] = percentiles(pg_w["update"])
    latency["pg_insert_async_commit"] = percentiles(pg_w["insert_async_commit"])
    ratios = {m: latency[f"pg_{m}"]["p50_ms"] / latency[f"clawfs_{m}"]["p50_ms"] for m in MODES}
    ratios["add"] = latency["pg_insert"]["p50_ms"] / latency["clawfs_add"]["p50_ms"]
    ratios["update"] = latency["pg_update"]["p50_ms"] / latency["clawfs_update"]["p50_ms"]
    recalls = {"clawfs_vector": recall(ids["clawfs_vector"], truth), "pg_vector": recall(ids["pg_vector"], truth)}
    fts_overlap = overlap(ids["clawfs_fts"], ids["pg_fts"])
    empty = {name: sum(1 for found in ids[name] if not found) for name in ("clawfs_fts", "pg_fts")}
    targets = {
        **{
            f"{m}_ratio": {"target": f">= {TARGETS[m]:g}", "value": ratios[m], "met": ratios[m] >= TARGETS[m]}
            for m in MODES
        },
        "clawfs_recall": {
            "target": f">= {TARGET_RECALL}",
            "value": recalls["clawfs_vector"],
            "met": recalls["clawfs_vector"] >= TARGET_RECALL,
        },
        **{
            f"{w}_p50": {
                "target": f"< {TARGET_WRITE_MS:g} ms",
                "value": latency[f"clawfs_{w}"]["p50_ms"],
                "met": latency[f"clawfs_{w}"]["p50_ms"] < TARGET_WRITE_MS,
            }
            for w in ("add", "update")
        },
    }

    print(
        f"\nclawfs search benchmark: {DOCUMENTS:,} documents, {len(owners):,} vectors x 1536, "
        f"{args.queries} queries per mode, {args.writes} writes of each kind"
    )
    print(
        f"{'ms':<12}{'ClawFS p50':>11}{'p99':>9}{'PostgreSQL p50':>16}{'p99':>9}{'PG/ClawFS':>11}"
        f"{'draft claims':>14}   target"
    )
    rows: list[tuple[str, str, str, str]] = [
        ("fts", "clawfs_fts", "pg_fts", "fts_ratio"),
        ("vector", "clawfs_vector", "pg_vector", "vector_ratio"),
        ("hybrid", "clawfs_hybrid", "pg_hybrid", "hybrid_ratio"),
        ("add", "clawfs_add", "pg_insert", "add_p50"),
        ("update", "clawfs_update", "pg_update", "update_p50"),
    ]
    for mode, ours, theirs, target in rows:
        a, b, goal = latency[ours], latency[theirs], targets[target]
        verdict = "met" if goal["met"] else "MISSED"
        what = f"ratio {goal['target']}" if target.endswith("ratio") else f"ClawFS p50 {goal['target']}"
        label = MODES.get(mode, mode)
        print(
            f"{label:<12}{a['p50_ms']:>11.2f}{a['p99_ms']:>9.2f}{b['p50_ms']:>16.2f}{b['p99_ms']:>9.2f}"
            f"{b['p50_ms'] / a['p50_ms']:>10.1f}x{DRAFT_CLAIMS_MS[mode]:>14}   {what}: {verdict}"
        )
    c = latency["pg_insert_async_commit"]
    lines = [
        (
            "PG insert, async commit",
            f"p50 {c['p50_ms']:.2f} ms, p99 {c['p99_ms']:.2f} ms (synchronous_commit = off; ClawFS commits "
            "are not fsynced either: WAL, synchronous = NORMAL)",
        ),
        (
            "recall@10 vs exact",
            f"ClawFS {recalls['clawfs_vector']:.3f} (ef {hnsw.ef_search}, {hnsw.dtype}): "
            f"{'met' if targets['clawfs_recall']['met'] else 'MISSED'} (target >= {TARGET_RECALL}); "
            f"pgvector HNSW {recalls['pg_vector']:.3f} (ef_search {PG_EF_SEARCH})",
        ),
        (
            "full-text top-10 overlap",
            f"{fts_overlap:.2f} ClawFS bm25 vs PostgreSQL ts_rank_cd (a figure, not a criterion); "
            f"queries with no hit: ClawFS {empty['clawfs_fts']}, PostgreSQL {empty['pg_fts']}",
        ),
        (
            "draft's claims (ClawFS)",
            "full text 30 ms, vector 50 ms, hybrid 80 ms, document/vector insert 5-8 ms (spec §11.2)",
        ),
        (
            "sizes",
            f"ClawFS workspace.db {db_path.stat().st_size / 1e6:,.0f} MB + index.usearch "
            f"{index_path.stat().st_size / 1e6:,.0f} MB; PostgreSQL HNSW index "
            f"{pg_sizes.get(HNSW_INDEX, 0) / 1e6:,.0f} MB (shared_buffers {settings['shared_buffers']})",
        ),
        (
            "set-up",
            f"HNSW index {'existed' if hnsw_seconds is None else f'built in {hnsw_seconds:.0f} s'}; "
            f"root {'cached' if migrate_seconds is None else f'migrated in {migrate_seconds:.0f} s'}; "
            f"exact top 10 in {exact_seconds:.1f} s",
        ),
        (
            "PostgreSQL",
            ", ".join(f"{k} {v}" for k, v in settings.items()) + f"; hnsw.ef_search {PG_EF_SEARCH} "
            f"(hybrid {PG_EF_SEARCH_HYBRID})",
        ),
    ]
    for label, value in lines:
        print(f"{label:<26}{value}")
    if not claw_w["found_added"]:
        print("WARNING: a document added through Workspace.add was not found by its own vector")
    if pg_w["rows_left_behind"]:
        print(f"WARNING: {pg_w['rows_left_behind']} benchmark row(s) left in PostgreSQL")

    figures = {
        "documents": DOCUMENTS,
        "vectors": len(owners),
        "dimension": 1536,
        "queries": args.queries,
        "warmup_queries": warmup,
        "writes": args.writes,
        "noise": args.noise,
        "seed": SEED,
        "sample_version": SAMPLE_VERSION,
        "latency": latency,
        "ratios_pg_over_clawfs_p50": ratios,
        "recall_at_10": recalls,
        "fts_top10_overlap": fts_overlap,
        "fts_queries_without_hits": empty,
        "targets": targets,
        "measurement": f"after {warmup} warm-up queries per way, the six ways take turns in blocks of {BLOCK} queries",
        "draft_claims_ms": DRAFT_CLAIMS_MS,
        "clawfs_hnsw": {"ef_search": hnsw.ef_search, "dtype": hnsw.dtype, "m": hnsw.m},
        "pg_hnsw": {"index": HNSW_INDEX, "m": 16, "ef_search": PG_EF_SEARCH, "ef_search_hybrid": PG_EF_SEARCH_HYBRID},
        "pg_settings": settings,
        "pg_relation_bytes": pg_sizes,
        "clawfs_file_bytes": {"workspace.db": db_path.stat().st_size, "index.usearch": index_path.stat().st_size},
        "pg_plans_use_hnsw": uses_hnsw,
        "pg_vector_plan": plan,
        "pg_hybrid_plan": hybrid_plan,
        "pg_fts_plan": fts_plan,
        "hnsw_build_seconds": hnsw_seconds,
        "migrate_seconds": migrate_seconds,
        "exact_seconds": exact_seconds,
        "root_copy_seconds": claw_w["copy_seconds"],
        "pg_cleanup_seconds": pg_w["cleanup_seconds"],
        "pg_synchronous_commit": pg_w["synchronous_commit"],
        "pg_rows_left_behind": pg_w["rows_left_behind"],
        "sample_text_queries": texts[:20],
        "python": sys.version.split()[0],
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwritten {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
