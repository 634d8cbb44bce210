"""Benchmark `clawfs migrate` against its floors, all measured in the same run.

    .venv/bin/python benchmarks/migrate.py                    # 100k documents + 100k vectors, and 25k
    .venv/bin/python benchmarks/migrate.py --documents 20000 --small 5000 --repeat 1   # quick look

It starts an embedded PostgreSQL 16 with pgvector (or uses $CLAWFS_BENCH_PG_URL), builds a synthetic
store once per size (documents of 50-300 words, one clustered 1536-dimensional vector each), then:

- migrates it end to end in a child process (so its peak memory is its own), `--repeat` times, and
  then runs `clawfs verify` on the result (verifying must cost well under half the migration);
- times, from the same server, the raw `COPY ... (FORMAT BINARY)` read of both tables (bytes only);
- times usearch alone building the same index (same M, ef, dtype, all cores) from vectors in memory;
- times the draft's own method (LIMIT/OFFSET pages in text, row-by-row inserts) on a slice;
- repeats the end-to-end migration on the small store, to show peak memory does not grow with the store.

Prints a table of figures and ratios (medians over repeats) and writes benchmarks/results/migrate.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg
from usearch.index import Index

from clawfs.demo import start_embedded_postgres
from clawfs.source import Source, fill_sample_store
from clawfs.source._sample import SAMPLE_VERSION
from clawfs.workspace import DEFAULT_DTYPE, HnswParams, IndexWorker, WorkspaceBuilder

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "migrate.json"

CHILD = """
import json, sys, time
from clawfs import MigrateOptions, VerifyOptions, migrate, verify
url, root, checked = sys.argv[1], sys.argv[2], sys.argv[3] == "verify"
t = time.perf_counter()
report = migrate(url, root, MigrateOptions(all_workspaces=True, replace=True, verify=checked))
seconds = time.perf_counter() - t
out = {"seconds": seconds, "steps": [s.__dict__ for s in report.steps]}
if checked:
    t = time.perf_counter()
    verification = verify(url, root, VerifyOptions(all_workspaces=True))
    out["verify_seconds"] = time.perf_counter() - t
    out["verify_ok"] = verification.ok
    out["verify_searches"] = [s.__dict__ for w in verification.workspaces for s in w.searches]
print(json.dumps(out))
"""


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))


def ensure_store(server_url: str, name: str, documents: int) -> str:
    """A database holding the synthetic store of that size, built once (kept across runs of a kept server)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    with psycopg.connect(url, autocommit=True) as conn:
        ready = conn.execute("SELECT to_regclass('documents') IS NOT NULL").fetchone()
        count = conn.execute("SELECT count(*) FROM documents").fetchone()[0] if ready and ready[0] else 0  # type: ignore[index]
        version = (
            conn.execute("SELECT value::text FROM metadata WHERE key = 'sample_version'").fetchone()
            if ready and ready[0]
            else None
        )
    if version is None or version[0] != str(SAMPLE_VERSION):
        count = -1  # built by another version of the sample generator
    if count == documents:  # stores built before the sample store had the draft's GIN index
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE INDEX IF NOT EXISTS idx_documents_content_gin ON documents"
                " USING GIN(to_tsvector('english', content))"
            )
    if count != documents:
        t = time.perf_counter()
        fill_sample_store(
            url,
            documents=documents,
            dimension=1536,
            workspaces=("default",),
            words=(50, 300),
            vectors_per_document=1.0,
            identities=3,
        )
        print(f"  built store {name}: {documents:,} documents in {time.perf_counter() - t:.0f} s", flush=True)
    return url


def migrate_in_child(url: str, verify: bool = True) -> dict[str, Any]:
    """Migrate in a child process (see `in_child`)."""
    with tempfile.TemporaryDirectory(prefix="clawfs-bench-") as root:
        return in_child([sys.executable, "-c", CHILD, url, root, "verify" if verify else "no-verify"], "migration")


def in_child(args: list[str], what: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a child that prints one JSON object; add its peak resident memory, sampled from outside every
    20 ms (ru_maxrss would not do: Linux carries the parent's high-water mark across fork and exec)."""
    child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, process.memory_info().rss)
        time.sleep(0.02)
    out = child.stdout.read() if child.stdout else ""
    if child.returncode != 0:
        raise SystemExit(f"the {what} failed with exit code {child.returncode}")
    result: dict[str, Any] = json.loads(out)
    result["peak_rss_mb"] = peak / 1e6
    return result


def raw_copy(url: str) -> dict[str, float]:
    """Bytes of COPY BINARY for both tables, read and thrown away."""
    out = {}
    with psycopg.connect(url) as conn:
        for table, query in (
            ("documents", "SELECT id, workspace_id, content, metadata::text, created_at FROM documents"),
            ("vectors", "SELECT id, document_id, embedding, created_at FROM vectors"),
        ):
            t = time.perf_counter()
            nbytes = 0
            with conn.cursor() as cur, cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
                for chunk in copy:
                    nbytes += len(chunk)
            out[f"{table}_seconds"] = time.perf_counter() - t
            out[f"{table}_mb"] = nbytes / 1e6
    return out


def copy_alone(url: str) -> float:
    """Vectors per second of the vectors step's own work (COPY BINARY read, numpy decode, SQLite blob
    writes) with no index building beside it: what the copy does when it has the CPU to itself."""
    with tempfile.TemporaryDirectory(prefix="clawfs-bench-") as tmp, Source(url) as source:
        worker = IndexWorker()
        build = WorkspaceBuilder("copy", Path(tmp) / "copy.db", Path(tmp) / "build", None, HnswParams(), worker)
        rows = 0
        t = time.perf_counter()
        for batch in source.read_vectors(source.workspace_ids(), 1000, lambda e: None, include_orphans=False):
            build.add_vectors(batch.ids, batch.document_ids, batch.embeddings, batch.created_at)
            rows += len(batch)
        seconds = time.perf_counter() - t
        build.discard()
        worker.join()
    return rows / seconds


def vectors_in_memory(url: str) -> tuple[np.ndarray, np.ndarray]:
    ids, chunks = [], []
    with Source(url) as source:
        workspaces = source.workspace_ids()
        for batch in source.read_vectors(workspaces, 4096, lambda e: None, include_orphans=False):
            ids.append(batch.ids)
            chunks.append(batch.embeddings)
    return np.concatenate(ids), np.concatenate(chunks)


def index_alone(keys: np.ndarray, vectors: np.ndarray) -> float:
    index = Index(
        ndim=vectors.shape[1],
        metric="cos",
        dtype=DEFAULT_DTYPE,
        connectivity=16,
        expansion_add=200,
        expansion_search=50,
    )
    t = time.perf_counter()
    index.add(keys.astype(np.uint64), vectors, threads=0)
    return time.perf_counter() - t


def draft_method(url: str, rows: int, page: int = 1000) -> dict[str, float]:
    """The draft's §5.3 loop: LIMIT/OFFSET pages, text values parsed float by float, one INSERT per row."""
    with tempfile.TemporaryDirectory() as tmp, psycopg.connect(url) as conn:
        db = sqlite3.connect(Path(tmp) / "draft.db")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute(
            "CREATE TABLE vectors (id INTEGER PRIMARY KEY, document_id INTEGER, embedding BLOB, created_at TEXT)"
        )
        db.execute("CREATE VIRTUAL TABLE documents USING fts5(id, workspace_id, content, metadata, created_at)")
        out = {}
        for table, query, insert in (
            (
                "documents",
                "SELECT id, workspace_id, content, metadata::text, to_json(created_at)::text FROM documents"
                " WHERE workspace_id = 'default' ORDER BY id LIMIT %s OFFSET %s",
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
            ),
            (
                "vectors",
                "SELECT v.id, v.document_id, v.embedding::text, v.created_at FROM vectors v"
                " JOIN documents d ON v.document_id = d.id WHERE d.workspace_id = 'default'"
                " ORDER BY v.id LIMIT %s OFFSET %s",
                "INSERT INTO vectors VALUES (?, ?, ?, ?)",
            ),
        ):
            t = time.perf_counter()
            for offset in range(0, rows, page):
                fetched = conn.execute(query, [page, offset]).fetchall()
                with db:
                    for row in fetched:
                        if table == "vectors":
                            floats = [float(x) for x in row[2].strip("[]").split(",")]
                            blob = b"".join(struct.pack("<f", x) for x in floats)
                            db.execute(insert, (row[0], row[1], blob, row[3].isoformat()))
                        else:
                            db.execute(insert, row)
            out[f"{table}_per_second"] = rows / (time.perf_counter() - t)
        db.close()
    return out


def step(report: dict[str, Any], name: str) -> dict[str, float]:
    return next(s for s in report["steps"] if s["step"] == name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=25_000, help="the smaller store, for peak memory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--draft-rows", type=int, default=5_000)
    args = parser.parse_args()

    cache = HERE / ".cache"
    cache.mkdir(exist_ok=True)
    server = os.environ.get("CLAWFS_BENCH_PG_URL") or start_embedded_postgres(cache / "pg16", keep=True)
    print(f"PostgreSQL ready; building stores ({args.documents:,} and {args.small:,} documents) if needed", flush=True)
    big = ensure_store(server, f"bench_{args.documents}", args.documents)
    small = ensure_store(server, f"bench_{args.small}", args.small)

    runs, alone, copies, copy_rates = [], [], [], []
    keys, vectors = vectors_in_memory(big)
    for i in range(args.repeat):
        print(f"  round {i + 1}/{args.repeat}: migrate, usearch alone, raw COPY", flush=True)
        runs.append(migrate_in_child(big))
        alone.append(index_alone(keys, vectors))
        copies.append(raw_copy(big))
        copy_rates.append(copy_alone(big))
    del vectors
    unverified = migrate_in_child(big, verify=False)
    small_run = migrate_in_child(small)
    draft = draft_method(big, args.draft_rows)

    med = statistics.median
    e2e = med(r["seconds"] for r in runs)
    verify_s = med(r["verify_seconds"] for r in runs)
    index_s = med(alone)
    docs_s = med(step(r, "documents")["seconds"] + step(r, "fts")["seconds"] for r in runs)
    vec_wall = med(step(r, "vectors")["seconds"] for r in runs)
    # the copy's own time: without the time it was held back by the index worker's bounded queue
    vec_s = med(step(r, "vectors")["seconds"] - step(r, "vectors")["waited"] for r in runs)
    n_docs, n_vecs = args.documents, len(keys)
    copy_docs_s = med(c["documents_seconds"] for c in copies)
    copy_vec_s = med(c["vectors_seconds"] for c in copies)
    figures = {
        "documents": n_docs,
        "vectors": n_vecs,
        "dimension": 1536,
        "hnsw_dtype": DEFAULT_DTYPE,
        "repeat": args.repeat,
        "end_to_end_seconds": e2e,
        "index_alone_seconds": index_s,
        "end_to_end_over_index_alone": e2e / index_s,
        # each round runs the migration and usearch alone back to back: on a machine whose speed drifts
        # by tens of percent between minutes, the ratio within a round is the steadier figure
        "end_to_end_over_index_alone_per_round": [r["seconds"] / a for r, a in zip(runs, alone, strict=True)],
        "end_to_end_over_index_alone_median_of_rounds": med(r["seconds"] / a for r, a in zip(runs, alone, strict=True)),
        "end_to_end_no_verify_seconds": unverified["seconds"],
        "verify_seconds": verify_s,
        "verify_over_migrate": verify_s / e2e,
        "verify_all_ok": all(r["verify_ok"] for r in runs),
        "documents_per_second_incl_fts": n_docs / docs_s,
        "vectors_per_second_read_decode_write": n_vecs / vec_s,
        "vectors_per_second_copy_alone": med(copy_rates),
        "copy_alone_runs": copy_rates,
        "vectors_step_wall_seconds": vec_wall,
        "raw_copy_documents_per_second": n_docs / copy_docs_s,
        "raw_copy_vectors_per_second": n_vecs / copy_vec_s,
        "raw_copy_vectors_mb_per_second": med(c["vectors_mb"] for c in copies) / copy_vec_s,
        "draft_documents_per_second": draft["documents_per_second"],
        "draft_vectors_per_second": draft["vectors_per_second"],
        "vectors_speedup_over_draft": (n_vecs / vec_s) / draft["vectors_per_second"],
        "peak_rss_mb": med(r["peak_rss_mb"] for r in runs),
        "peak_rss_mb_small": small_run["peak_rss_mb"],
        # usearch builds the HNSW graph in memory: the index's own size is the part that must grow
        "index_mb": step(runs[0], "index")["bytes"] / 1e6,
        "index_mb_small": step(small_run, "index")["bytes"] / 1e6,
        "peak_rss_mb_without_index": med(r["peak_rss_mb"] for r in runs) - step(runs[0], "index")["bytes"] / 1e6,
        "peak_rss_mb_small_without_index": small_run["peak_rss_mb"] - step(small_run, "index")["bytes"] / 1e6,
        "small_documents": args.small,
        "steps": {
            name: {
                "seconds": med(step(r, name)["seconds"] for r in runs),
                "rows_per_second": med(step(r, name)["rows"] / max(step(r, name)["seconds"], 1e-9) for r in runs),
                "mb_per_second": med(step(r, name)["bytes"] / 1e6 / max(step(r, name)["seconds"], 1e-9) for r in runs),
            }
            for name in [s["step"] for s in runs[0]["steps"]]
        },
        "runs": runs,
        "index_alone_runs": alone,
        "raw_copy_runs": copies,
        "draft": draft,
        "bench_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print(
        f"\nclawfs migrate benchmark: {n_docs:,} documents, {n_vecs:,} vectors x 1536, dtype {DEFAULT_DTYPE}, "
        f"medians of {args.repeat}"
    )
    print(f"{'step':<12}{'seconds':>10}{'rows/s':>12}{'MB/s':>10}")
    for name, s in figures["steps"].items():
        print(f"{name:<12}{s['seconds']:>10.2f}{s['rows_per_second']:>12,.0f}{s['mb_per_second']:>10.1f}")
    lines = [
        ("end to end", f"{e2e:.1f} s"),
        ("usearch alone, same index", f"{index_s:.1f} s"),
        ("end to end / index alone", f"{e2e / index_s:.3f}  (ratio of the medians; target <= 1.1)"),
        (
            "same, median of per-round ratios",
            f"{figures['end_to_end_over_index_alone_median_of_rounds']:.3f}  "
            f"({', '.join(f'{x:.2f}' for x in figures['end_to_end_over_index_alone_per_round'])})",
        ),
        ("same, --no-verify (one run)", f"{unverified['seconds'] / index_s:.3f}"),
        ("clawfs verify afterwards", f"{verify_s:.1f} s = {verify_s / e2e:.2f} x migrate  (target < 0.5)"),
        (
            "vectors read+decode+write",
            f"{figures['vectors_per_second_copy_alone']:,.0f} /s  (target >= 20,000; no index beside it)",
        ),
        ("same, in the migration", f"{n_vecs / vec_s:,.0f} /s  (sharing the CPU with the index; waits excluded)"),
        ("documents incl. FTS5", f"{n_docs / docs_s:,.0f} /s  (target >= 15,000)"),
        (
            "raw COPY BINARY vectors",
            f"{n_vecs / copy_vec_s:,.0f} /s, {figures['raw_copy_vectors_mb_per_second']:.0f} MB/s",
        ),
        ("raw COPY BINARY documents", f"{n_docs / copy_docs_s:,.0f} /s"),
        ("draft method, vectors", f"{draft['vectors_per_second']:,.0f} /s ({args.draft_rows:,}-row slice)"),
        ("draft method, documents", f"{draft['documents_per_second']:,.0f} /s"),
        ("speed-up over draft, vectors", f"{figures['vectors_speedup_over_draft']:.1f}x"),
        (f"peak memory, {n_docs:,} docs", f"{figures['peak_rss_mb']:.0f} MB"),
        (f"peak memory, {args.small:,} docs", f"{small_run['peak_rss_mb']:.0f} MB"),
        (
            "same, less the HNSW index's size",
            f"{figures['peak_rss_mb_without_index']:.0f} MB vs {figures['peak_rss_mb_small_without_index']:.0f} MB",
        ),
    ]
    for label, value in lines:
        print(f"{label:<32}{value}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nwritten {RESULTS.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
