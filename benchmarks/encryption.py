"""Benchmark the cost of encryption at rest (`clawfs migrate --encrypt`): plain against encrypted
workspaces of the same store, all measured in the same run.

    .venv/bin/python benchmarks/encryption.py      # 25k documents x 1536-d, 3 rounds: ~6-8 min on 2 cores
    .venv/bin/python benchmarks/encryption.py --documents 2000 --dimension 384 --rounds 1 --queries 50   # quick look

It starts the embedded PostgreSQL 16 of benchmarks/migrate.py (or uses $CLAWFS_BENCH_PG_URL) and builds
a synthetic store once per size, kept there (documents of 50-300 words, one clustered vector each; at
1536 dimensions it is migrate.py's own `bench_<documents>` store: the default is its small one), then:

- migrate: the store migrated plain and encrypted (a passphrase, so SQLCipher's key derivation is
  included; identity files off in both, as an encrypted run requires), `--rounds` times each, taking
  turns (the order swapped every round), each in a child process whose peak memory is sampled from
  outside, with the migration's own verification step and then `clawfs.verify`; medians, the ratio
  encrypted / plain of the medians and of each round, and every step's seconds from the report;
- open: `Workspace.open` + a first vector search, `--opens` times each way, taking turns: plain (the
  index file memory-mapped), encrypted with a new `Key` each time (what every command pays: the
  passphrase's PBKDF2 runs once per Key), encrypted with the Key reused (a long-lived process); and
  what opening costs of that: the stored index read from the database, checked and restored;
- the design not built, an index in memory only: what it would pay at every open instead of reading the
  stored index, i.e. building it from the encrypted `vectors` table (`LiveIndex.rebuild` without a writer:
  the vectors read in one snapshot and added to a new index with the workspace's HnswParams, nothing
  written), `--rounds` times, and apart the part of it that reads the vectors through SQLCipher;
- search: full text, vector and hybrid search through `Workspace.search`, `--queries` queries per mode
  drawn as in benchmarks/search.py (1-3 content words of sampled documents; stored vectors plus noise),
  the same queries on both roots, after 10 warm-up queries each; the six ways take turns in blocks of
  10 queries, both roots' files read once beforehand so both start from the OS page cache;
- sizes: the workspace database of both, the plain root's index file, the bytes of the index stored
  inside the encrypted database, and each database's page size.

Prints a table with the ratios encrypted / plain and writes benchmarks/results/encryption.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import psycopg
from migrate import ensure_store, in_child, with_database  # benchmarks/migrate.py: the same server and stores
from search import percentiles, read_files, text_queries, vector_queries  # benchmarks/search.py

import clawfs
from clawfs.demo import start_embedded_postgres
from clawfs.source import fill_sample_store
from clawfs.source._sample import SAMPLE_VERSION
from clawfs.workspace import INSTALL_HINT, encryption_available
from clawfs.workspace._index_store import DATA_TABLE

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "encryption.json"
WORKSPACE = "default"
PASSPHRASE = "clawfs benchmark passphrase"  # a passphrase, not a raw key: the derivation is part of the cost
KEY_ENV = "CLAWFS_BENCH_KEY"
K = 10
WARMUP = 10
BLOCK = 10
SEED = 20_251_126
KINDS = ("plain", "encrypted")
MODES = {"fts": "full text", "vector": "vector", "hybrid": "hybrid"}

CHILD = f"""
import json, os, sys, time
from clawfs import Key, MigrateOptions, VerifyOptions, migrate, verify
url, root = sys.argv[1], sys.argv[2]
secret = os.environ.get({KEY_ENV!r})
t = time.perf_counter()
key = Key(secret) if secret else None
report = migrate(url, root, MigrateOptions(all_workspaces=True, identities=False, key=key))
seconds = time.perf_counter() - t
out = {{"seconds": seconds, "steps": [s.__dict__ for s in report.steps]}}
t = time.perf_counter()
verification = verify(url, root, VerifyOptions(all_workspaces=True, identities=False, key=key))
out["verify_seconds"] = time.perf_counter() - t
out["verify_ok"] = verification.ok
print(json.dumps(out))
"""

Floats = npt.NDArray[np.float32]


# -- the store and the migrations ------------------------------------------------------------------


def store(server: str, documents: int, dimension: int) -> str:
    """The synthetic store of that size, built once: migrate.py's own at 1536 dimensions, else one of
    the same kind with `dimension`-d vectors (database bench_<documents>_<dimension>d)."""
    if dimension == 1536:
        return ensure_store(server, f"bench_{documents}", documents)
    name = f"bench_{documents}_{dimension}d"
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server, name)
    with psycopg.connect(url, autocommit=True) as conn:
        ready = conn.execute("SELECT to_regclass('documents') IS NOT NULL").fetchone() == (True,)
        found = (
            conn.execute(
                "SELECT (SELECT value::text FROM metadata WHERE key = 'sample_version'),"
                " (SELECT count(*) FROM documents)"
            ).fetchone()
            if ready
            else None
        )
    if found != (str(SAMPLE_VERSION), documents):
        t = time.perf_counter()
        fill_sample_store(
            url,
            documents=documents,
            dimension=dimension,
            workspaces=(WORKSPACE,),
            words=(50, 300),
            vectors_per_document=1.0,
            identities=3,
        )
        print(f"  built store {name}: {documents:,} documents in {time.perf_counter() - t:.0f} s", flush=True)
    return url


def migrate_in_child(url: str, root: Path, encrypted: bool) -> dict[str, Any]:
    """Migrate (and verify) into `root` in a child process, its peak memory sampled as benchmarks/migrate.py
    does; the root is kept."""
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if encrypted:
        env[KEY_ENV] = PASSPHRASE  # not on the command line
    what = f"{'encrypted' if encrypted else 'plain'} migration"
    return in_child([sys.executable, "-c", CHILD, url, str(root)], what, env)


def step_seconds(run: dict[str, Any], name: str) -> float:
    return float(next((s["seconds"] for s in run["steps"] if s["step"] == name), 0.0))


# -- opening --------------------------------------------------------------------------------------


def open_and_search(root: Path, key: clawfs.Key | None, secret: str | None, query: Floats) -> float:
    """Seconds to open the workspace and answer one vector search (a new Key from `secret` when given)."""
    t = time.perf_counter()
    if secret is not None:
        key = clawfs.Key(secret)
    ws = clawfs.Workspace.open(root, WORKSPACE, key=key)
    try:
        ws.search(vector=query, k=K)
        return time.perf_counter() - t
    finally:
        ws.close()


def index_load_seconds(ws: clawfs.Workspace) -> float:
    """What an encrypted open spends on its index: the chunks read from the database, the sha256 checked
    against the stamp, usearch restoring it from the bytes."""
    live = ws._live  # the workspace's index (private): its stamp says what to load
    assert live is not None and live.stamp is not None
    t = time.perf_counter()
    index, problem = ws.index_store.open(ws.db, live.stamp)
    seconds = time.perf_counter() - t
    if index is None:
        raise SystemExit(f"the encrypted workspace's stored index does not load: {problem}")
    return seconds


def measure_opens(roots: dict[str, Path], opens: int, queries: Floats) -> dict[str, list[float]]:
    """Each way `opens` times (after one untimed open each), taking turns, the order rotating."""
    key = clawfs.Key(PASSPHRASE)
    ways: dict[str, Callable[[Floats], float]] = {
        "plain": lambda q: open_and_search(roots["plain"], None, None, q),
        "encrypted_new_key": lambda q: open_and_search(roots["encrypted"], None, PASSPHRASE, q),
        "encrypted_key_reused": lambda q: open_and_search(roots["encrypted"], key, None, q),
    }
    names = list(ways)
    for name in names:
        ways[name](queries[-1])
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for i in range(opens):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(ways[name](queries[i % (len(queries) - 1)]))
    with clawfs.Workspace.open(roots["encrypted"], WORKSPACE, key=key) as ws:
        seconds["encrypted_index_load"] = [index_load_seconds(ws) for _ in range(opens)]
    return seconds


def key_derivation_seconds(db_path: Path) -> float:
    """SQLCipher 4's PBKDF2-HMAC-SHA512 of the passphrase with the file's salt (its first 16 bytes), as a
    new `Key` does it once."""
    with open(db_path, "rb") as f:
        salt = f.read(16)
    t = time.perf_counter()
    clawfs.Key(PASSPHRASE).pragma_value(salt)
    return time.perf_counter() - t


def memory_only_rebuild(root: Path, rounds: int) -> dict[str, list[float]]:
    """The design not built: an index kept in memory only, built from the encrypted `vectors` table at
    every open. Timed: the rebuild as the workspace does it (`LiveIndex.rebuild` with no writer: the
    vectors read in one snapshot and added to a new index, nothing written), and apart, the part of it
    that reads them (through SQLCipher) and decodes them."""
    out: dict[str, list[float]] = {"rebuild": [], "read_vectors": []}
    with clawfs.Workspace.open(root, WORKSPACE, key=clawfs.Key(PASSPHRASE)) as ws:
        live = ws._live  # the workspace's index (private): its rebuild without a writer is the alternative
        assert live is not None
        for _ in range(rounds):
            t = time.perf_counter()
            live.rebuild(ws.db, None)
            out["rebuild"].append(time.perf_counter() - t)

            t = time.perf_counter()
            rows = ws.db.execute("SELECT id, embedding FROM vectors ORDER BY id").fetchall()
            np.asarray([r[0] for r in rows], dtype=np.int64)
            np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            out["read_vectors"].append(time.perf_counter() - t)
            del rows
    return out


# -- searching ------------------------------------------------------------------------------------


def measure_searches(
    spaces: dict[str, clawfs.Workspace], texts: list[str], vectors: Floats, warmup: int
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """Every query in all six ways (3 modes x plain/encrypted), after `warmup` queries of each; returns
    milliseconds and document ids per way. The ways take turns in blocks of BLOCK queries, the order
    rotating from block to block (as in benchmarks/search.py)."""
    ways: dict[str, Callable[[int], list[int]]] = {}
    for kind, ws in spaces.items():
        ways[f"{kind}_fts"] = lambda i, ws=ws: [h.document_id for h in ws.search(texts[i], k=K)]
        ways[f"{kind}_vector"] = lambda i, ws=ws: [h.document_id for h in ws.search(vector=vectors[i], k=K)]
        ways[f"{kind}_hybrid"] = lambda i, ws=ws: [h.document_id for h in ws.search(texts[i], vector=vectors[i], k=K)]
    names = list(ways)
    n = len(texts) - warmup
    for i in range(n, n + warmup):
        for name in names:
            ways[name](i)
    ms: dict[str, list[float]] = {name: [] for name in names}
    ids: dict[str, list[list[int]]] = {name: [] for name in names}
    for start in range(0, n, BLOCK):
        shift = (start // BLOCK) % len(names)
        for name in names[shift:] + names[:shift]:
            for i in range(start, min(start + BLOCK, n)):
                t = time.perf_counter()
                found = ways[name](i)
                ms[name].append((time.perf_counter() - t) * 1000)
                ids[name].append(found)
    return ms, ids


def same_lists(a: list[list[int]], b: list[list[int]]) -> float:
    """Share of queries whose two top-10 lists are equal."""
    return float(np.mean([x == y for x, y in zip(a, b, strict=True)])) if a else 1.0


def overlap(a: list[list[int]], b: list[list[int]]) -> float:
    """Mean |A ∩ B| / max(|A|, |B|) of two top-10 lists (1 when both are empty)."""
    return float(
        np.mean([len(set(x) & set(y)) / max(len(x), len(y)) if x or y else 1.0 for x, y in zip(a, b, strict=True)])
    )


def stored_vectors(db_path: Path, count: int, rng: np.random.Generator) -> Floats:
    """`count` stored vectors of the plain workspace, sampled (the queries are drawn around them)."""
    db = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    try:
        top = db.execute("SELECT max(id) FROM vectors").fetchone()[0]
        ids = rng.choice(np.arange(1, top + 1), size=min(top, 20 * count), replace=False).tolist()
        marks = ",".join("?" * len(ids))
        rows = db.execute(f"SELECT embedding FROM vectors WHERE id IN ({marks})", ids).fetchall()
    finally:
        db.close()
    return np.frombuffer(b"".join(r[0] for r in rows), dtype="<f4").reshape(len(rows), -1).astype(np.float32)


# -- sizes and the machine ------------------------------------------------------------------------


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def sizes(roots: dict[str, Path], key: clawfs.Key) -> dict[str, Any]:
    with clawfs.Workspace.open(roots["plain"], WORKSPACE) as plain:
        plain_db, plain_index = plain.path, plain.index_path
        plain_page = plain.db.execute("PRAGMA page_size").fetchone()[0]
    with clawfs.Workspace.open(roots["encrypted"], WORKSPACE, key=key) as enc:
        enc_db = enc.path
        enc_page = enc.db.execute("PRAGMA page_size").fetchone()[0]
        index_inside = enc.db.execute(f"SELECT coalesce(sum(length(data)), 0) FROM {DATA_TABLE}").fetchone()[0]
        cipher = {
            name: (enc.db.execute(f"PRAGMA {name}").fetchone() or [None])[0]
            for name in ("cipher_version", "cipher_provider", "cipher_hmac_algorithm", "cipher_kdf_algorithm")
        }
    return {
        "plain_db_bytes": plain_db.stat().st_size,
        "plain_index_file_bytes": plain_index.stat().st_size,
        "plain_total_bytes": plain_db.stat().st_size + plain_index.stat().st_size,
        "encrypted_db_bytes": enc_db.stat().st_size,
        "encrypted_index_inside_db_bytes": index_inside,
        "plain_root_bytes": tree_bytes(roots["plain"]),
        "encrypted_root_bytes": tree_bytes(roots["encrypted"]),
        "plain_page_size": plain_page,
        "encrypted_page_size": enc_page,
        "sqlcipher": cipher,
    }


def machine() -> dict[str, Any]:
    versions = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}
    for pkg in ("clawfs", "sqlcipher3", "usearch", "numpy"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "not installed"
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "versions": versions,
    }


# -- the run --------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=25_000)
    parser.add_argument("--dimension", type=int, default=1536)
    parser.add_argument("--rounds", type=int, default=3, help="migrations of each kind; memory-only rebuilds")
    parser.add_argument("--queries", type=int, default=200, help="queries per mode and root")
    parser.add_argument("--opens", type=int, default=10, help="opens of each kind")
    parser.add_argument("--noise", type=float, default=0.1, help="query noise, relative to the vector's length")
    args = parser.parse_args()
    if min(args.documents, args.dimension, args.rounds, args.queries, args.opens) < 1:
        parser.error("--documents, --dimension, --rounds, --queries and --opens must be at least 1")
    if not encryption_available():
        raise SystemExit(f"SQLCipher is not installed: {INSTALL_HINT}")
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()

    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    server = os.environ.get("CLAWFS_BENCH_PG_URL") or start_embedded_postgres(cache / "pg16", keep=True)
    print(f"PostgreSQL ready; building the {args.documents:,} x {args.dimension}-d store if needed", flush=True)
    url = store(server, args.documents, args.dimension)
    key = clawfs.Key(PASSPHRASE)

    with tempfile.TemporaryDirectory(prefix="clawfs-bench-encryption-", dir=cache) as tmp:
        roots = {kind: Path(tmp) / kind for kind in KINDS}
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for i in range(args.rounds):
            order = KINDS if i % 2 == 0 else KINDS[::-1]
            print(f"  round {i + 1}/{args.rounds}: migrate + verify, {' then '.join(order)}", flush=True)
            for kind in order:
                shutil.rmtree(roots[kind], ignore_errors=True)
                runs[kind].append(migrate_in_child(url, roots[kind], kind == "encrypted"))
        figures_sizes = sizes(roots, key)

        with clawfs.Workspace.open(roots["plain"], WORKSPACE) as ws:
            plain_db, plain_index = ws.path, ws.index_path
            hnsw, n_vectors = ws.hnsw, ws.db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        with clawfs.Workspace.open(roots["encrypted"], WORKSPACE, key=key) as ws:
            enc_db = ws.path
        read_files([plain_db, plain_index, enc_db])

        print(f"  timing {args.opens} opens of each kind", flush=True)
        warmup = min(WARMUP, args.queries)
        stored = stored_vectors(plain_db, args.queries + warmup, rng)
        vectors = vector_queries(stored, args.queries + warmup, args.noise, rng)
        texts = text_queries(plain_db, args.queries + warmup, rng)
        opens = measure_opens(roots, args.opens, vectors)
        kdf_seconds = med([key_derivation_seconds(enc_db) for _ in range(3)])

        print(f"  timing the memory-only alternative: {args.rounds} rebuilds from the encrypted vectors", flush=True)
        rebuilds = memory_only_rebuild(roots["encrypted"], args.rounds)

        print(f"  measuring {args.queries} queries x 3 modes x 2 roots (after {warmup} warm-up each)", flush=True)
        read_files([plain_db, plain_index, enc_db])
        spaces = {
            "plain": clawfs.Workspace.open(roots["plain"], WORKSPACE),
            "encrypted": clawfs.Workspace.open(roots["encrypted"], WORKSPACE, key=key),
        }
        try:
            ms, ids = measure_searches(spaces, texts, vectors, warmup)
        finally:
            for ws in spaces.values():
                ws.close()

    # -- figures --
    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    step_names = list(dict.fromkeys(s["step"] for s in runs["plain"][0]["steps"] + runs["encrypted"][0]["steps"]))
    migrate_fig: dict[str, Any] = {}
    for kind in KINDS:
        rs = runs[kind]
        migrate_fig[kind] = {
            "seconds": med([r["seconds"] for r in rs]),
            "verify_seconds": med([r["verify_seconds"] for r in rs]),
            "peak_rss_mb": med([r["peak_rss_mb"] for r in rs]),
            "verify_all_ok": all(r["verify_ok"] for r in rs),
            "steps": {name: med([step_seconds(r, name) for r in rs]) for name in step_names},
            "copy_seconds": med([step_seconds(r, "documents") + step_seconds(r, "vectors") for r in rs]),
        }
    per_round = [ratio(e["seconds"], p["seconds"]) for p, e in zip(runs["plain"], runs["encrypted"], strict=True)]
    migrate_fig["ratio_encrypted_over_plain"] = ratio(
        migrate_fig["encrypted"]["seconds"], migrate_fig["plain"]["seconds"]
    )
    migrate_fig["ratio_per_round"] = per_round
    migrate_fig["ratio_median_of_rounds"] = med(per_round)
    migrate_fig["verify_ratio"] = ratio(
        migrate_fig["encrypted"]["verify_seconds"], migrate_fig["plain"]["verify_seconds"]
    )
    migrate_fig["step_ratios"] = {
        name: ratio(migrate_fig["encrypted"]["steps"][name], migrate_fig["plain"]["steps"][name]) for name in step_names
    }
    migrate_fig["runs"] = runs

    open_med = {name: med(values) for name, values in opens.items()}
    rebuild_med = {name: med(values) for name, values in rebuilds.items()}
    # the memory-only design would open as the encrypted one does, less reading the stored index, plus a rebuild
    memory_only_open = open_med["encrypted_new_key"] - open_med["encrypted_index_load"] + rebuild_med["rebuild"]
    open_fig = {
        "median_seconds": open_med,
        "runs": opens,
        "key_derivation_seconds": kdf_seconds,
        "memory_only_rebuild_seconds": rebuild_med["rebuild"],
        "memory_only_read_vectors_seconds": rebuild_med["read_vectors"],
        "memory_only_rebuild_runs": rebuilds,
        "memory_only_open_seconds_estimate": memory_only_open,
        "memory_only_open_estimate_is": "encrypted open (new key) - stored index load + rebuild",
        "ratio_encrypted_new_key_over_plain": ratio(open_med["encrypted_new_key"], open_med["plain"]),
        "ratio_encrypted_key_reused_over_plain": ratio(open_med["encrypted_key_reused"], open_med["plain"]),
        "ratio_memory_only_over_encrypted": ratio(memory_only_open, open_med["encrypted_new_key"]),
    }

    latency = {name: percentiles(values) for name, values in ms.items()}
    search_fig = {
        "latency": latency,
        "ratio_p50_encrypted_over_plain": {
            m: ratio(latency[f"encrypted_{m}"]["p50_ms"], latency[f"plain_{m}"]["p50_ms"]) for m in MODES
        },
        "ratio_p99_encrypted_over_plain": {
            m: ratio(latency[f"encrypted_{m}"]["p99_ms"], latency[f"plain_{m}"]["p99_ms"]) for m in MODES
        },
        "same_top10_share": {m: same_lists(ids[f"plain_{m}"], ids[f"encrypted_{m}"]) for m in MODES},
        "top10_overlap": {m: overlap(ids[f"plain_{m}"], ids[f"encrypted_{m}"]) for m in MODES},
        "queries": args.queries,
        "warmup_queries": warmup,
        "measurement": f"after {warmup} warm-up queries per way, the six ways take turns in blocks of {BLOCK}",
        "sample_text_queries": texts[:20],
    }

    # -- the table --
    print(
        f"\nclawfs encryption benchmark: {args.documents:,} documents, {n_vectors:,} vectors x {args.dimension}, "
        f"hnsw {hnsw.dtype} m {hnsw.m}; medians of {args.rounds} migration(s), {args.opens} opens, "
        f"{args.queries} queries per mode"
    )
    print(f"{'':34}{'plain':>10}{'encrypted':>12}{'enc/plain':>11}")

    def row(label: str, plain: float, enc: float, unit: str = "", fmt: str = ".2f") -> None:
        print(f"{label:<34}{format(plain, fmt) + unit:>10}{format(enc, fmt) + unit:>12}{ratio(enc, plain):>10.2f}x")

    mp, me = migrate_fig["plain"], migrate_fig["encrypted"]
    row("migrate, end to end (s)", mp["seconds"], me["seconds"])
    for name in step_names:
        if max(mp["steps"][name], me["steps"][name]) >= 0.005:
            row(f"  step {name} (s)", mp["steps"][name], me["steps"][name])
    row("  copy = documents + vectors (s)", mp["copy_seconds"], me["copy_seconds"])
    row("clawfs.verify afterwards (s)", mp["verify_seconds"], me["verify_seconds"])
    row("migrate peak memory (MB)", mp["peak_rss_mb"], me["peak_rss_mb"], fmt=".0f")
    print(
        f"{'  migrate ratio per round':<34}{', '.join(f'{x:.2f}' for x in per_round)}"
        f"  (median {migrate_fig['ratio_median_of_rounds']:.2f}); all verified: "
        f"{mp['verify_all_ok'] and me['verify_all_ok']}"
    )
    op = open_med
    row("open + 1st vector search (ms)", op["plain"] * 1000, op["encrypted_new_key"] * 1000, fmt=".1f")
    row("  same, Key reused (ms)", op["plain"] * 1000, op["encrypted_key_reused"] * 1000, fmt=".1f")
    print(
        f"{'  of which':<34}PBKDF2 of the passphrase {kdf_seconds * 1000:.0f} ms (a new Key only); "
        f"stored index read + sha256 + restore {op['encrypted_index_load'] * 1000:.1f} ms"
    )
    print(
        f"{'memory-only index, per open':<34}rebuild from the encrypted vectors {rebuild_med['rebuild']:.2f} s "
        f"(of which reading and decoding them {rebuild_med['read_vectors']:.3f} s)"
    )
    print(
        f"{'  open with it (estimate)':<34}{memory_only_open * 1000:.0f} ms = "
        f"{open_fig['ratio_memory_only_over_encrypted']:.1f}x the encrypted open as built"
    )
    for m, label in MODES.items():
        a, b = latency[f"plain_{m}"], latency[f"encrypted_{m}"]
        row(f"search {label}, p50 (ms)", a["p50_ms"], b["p50_ms"])
        row(f"search {label}, p99 (ms)", a["p99_ms"], b["p99_ms"])
    print(
        f"{'  same top 10, plain vs encrypted':<34}"
        + ", ".join(f"{MODES[m]} {search_fig['same_top10_share'][m]:.0%}" for m in MODES)
        + " (the two indexes are built separately: vector lists may differ a little)"
    )
    s = figures_sizes
    row("workspace.db (MB)", s["plain_db_bytes"] / 1e6, s["encrypted_db_bytes"] / 1e6, fmt=".1f")
    row("db + index (MB)", s["plain_total_bytes"] / 1e6, s["encrypted_db_bytes"] / 1e6, fmt=".1f")
    print(
        f"{'  of which the index':<34}{s['plain_index_file_bytes'] / 1e6:>9.1f}M"
        f"{s['encrypted_index_inside_db_bytes'] / 1e6:>11.1f}M  (a file beside / a table inside)"
    )
    print(
        f"{'  page size':<34}{s['plain_page_size']:>10}{s['encrypted_page_size']:>12}"
        f"  (SQLCipher {s['sqlcipher'].get('cipher_version')}, {s['sqlcipher'].get('cipher_provider')})"
    )

    figures = {
        "benchmark": "encryption",
        "created_unix": int(time.time()),
        "command": " ".join([Path(sys.executable).as_posix(), *sys.argv]),
        "documents": args.documents,
        "vectors": n_vectors,
        "dimension": args.dimension,
        "rounds": args.rounds,
        "opens": args.opens,
        "noise": args.noise,
        "seed": SEED,
        "sample_version": SAMPLE_VERSION,
        "hnsw": {
            "m": hnsw.m,
            "ef_construction": hnsw.ef_construction,
            "ef_search": hnsw.ef_search,
            "dtype": hnsw.dtype,
        },
        "key": "a passphrase (SQLCipher 4 PBKDF2-HMAC-SHA512, 256,000 iterations)",
        "migrate": migrate_fig,
        "open": open_fig,
        "search": search_fig,
        "sizes": figures_sizes,
        "machine": machine(),
        "total_runtime_s": time.perf_counter() - started,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwritten {RESULTS.relative_to(HERE.parent)} (total {figures['total_runtime_s']:.0f} s)")


if __name__ == "__main__":
    main()
