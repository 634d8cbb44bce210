"""Vector search latency and recall@10 against ef_search, on the cached 100k-document benchmark root.

    .venv/bin/python benchmarks/vector_ef.py        # after `make bench-search` has built the root

Queries are stored vectors of 200 sampled documents plus Gaussian noise (10% of their length), as in
benchmarks/search.py; the exact top 10 documents come from numpy over every vector of the workspace.
Prints, per ef_search, p50/p99 of `Workspace.search(vector=..., ef_search=ef)` and of the index alone
(usearch's own search through the workspace's live index, run right after the same query, so with its
graph path in cache: a lower bound), and document-level recall@10.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from pathlib import Path

import numpy as np

from clawfs import Workspace

HERE = Path(__file__).resolve().parent
ROOT = HERE / ".cache" / "root_100000"
EFS = (10, 16, 24, 32, 50)


def main() -> None:
    if not (ROOT / "workspaces" / "default" / "workspace.db").is_file():
        raise SystemExit(f"no benchmark root at {ROOT}: run `make bench-search` first")
    db = sqlite3.connect(f"{(ROOT / 'workspaces' / 'default' / 'workspace.db').as_uri()}?mode=ro", uri=True)
    rows = db.execute("SELECT document_id, embedding FROM vectors ORDER BY id").fetchall()
    docs = np.array([r[0] for r in rows])
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rng = np.random.default_rng(7)
    queries = []
    for i in rng.choice(len(vectors), 200, replace=False):
        v = vectors[i]
        noise = rng.standard_normal(v.shape).astype(np.float32) * 0.1 * np.linalg.norm(v) / np.sqrt(len(v))
        queries.append((v + noise).astype(np.float32))
    truth = []
    for q in queries:
        seen: list[int] = []
        for j in np.argsort(1 - units @ (q / np.linalg.norm(q))):
            if docs[j] not in seen:
                seen.append(int(docs[j]))
            if len(seen) == 10:
                break
        truth.append(set(seen))
    results = {}
    with Workspace.open(ROOT, "default") as ws:
        for q in queries[:20]:
            ws.search(vector=q, k=10)
        live = ws._live  # the index alone: usearch's search through the live index
        assert live is not None
        for ef in EFS:
            api, alone, recall = [], [], []
            for q, want in zip(queries, truth, strict=True):
                t = time.perf_counter()
                hits = ws.search(vector=q, k=10, ef_search=ef)
                api.append(time.perf_counter() - t)
                t = time.perf_counter()
                live.search(q, 10, ef)
                alone.append(time.perf_counter() - t)
                recall.append(len(want & {h.document_id for h in hits}) / 10)
            results[ef] = {
                "p50_ms": 1000 * statistics.median(api),
                "p99_ms": 1000 * float(np.percentile(api, 99)),
                "index_alone_p50_ms": 1000 * statistics.median(alone),
                "recall_at_10": float(np.mean(recall)),
            }
            r = results[ef]
            print(
                f"ef_search {ef:>3}: search p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms;"
                f" index alone p50 {r['index_alone_p50_ms']:.3f} ms; recall@10 {r['recall_at_10']:.3f}"
            )
    out = HERE / "results" / "vector_ef.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
