"""Benchmark `clawfs sync --follow`: changes applied per second and lag under a steady write load,
through a replication slot (`sync setup`) and by comparison, in the same run.

    .venv/bin/python benchmarks/follow.py                       # 20k documents, 384-d vectors
    .venv/bin/python benchmarks/follow.py --documents 5000 --rate 100 --seconds 10   # quick look

It starts a throwaway embedded PostgreSQL 16 with `wal_level = logical`, fills it with the sample
store (two workspaces, 1.3 vectors per document), migrates it, runs `sync setup`, then:

1. idle rounds: `sync --all-workspaces` with nothing to do, through the slot and by comparison
   (the price of one `--follow` round; comparison reads both sides' checksums every time);
2. steady load: a writer makes `--rate` row-level changes per second for `--seconds` (one transaction
   per change: 40 % insert a document with a vector, 25 % update content, 20 % new embedding, 15 %
   delete a document and, by cascade, its vectors) while `follow` runs in a thread; every round's lag
   is recorded (WAL bytes the slot has not confirmed, and the age of the round's snapshot);
3. backlog: with follow stopped, `--backlog` changes are written as fast as possible, then
   timed until applied: through the slot, and (the same changes again) by comparison.

Each part ends with `clawfs.verify` of every workspace (the result must equal PostgreSQL). Prints a
table and writes benchmarks/results/follow.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

import clawfs
from clawfs._sync import follow
from clawfs.demo import start_embedded_postgres
from clawfs.source import fill_sample_store

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "follow.json"
SEED = 11


class Writer:
    """Row-level changes in the sample store, one transaction each."""

    def __init__(self, url: str, dimension: int, workspaces: tuple[str, ...]) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.dimension = dimension
        self.workspaces = workspaces
        self.rng = random.Random(SEED)
        self.np_rng = np.random.default_rng(SEED)
        self.ids = [r[0] for r in self.conn.execute("SELECT id FROM documents").fetchall()]
        # new embeddings lie near stored ones, as real ones cluster (isotropic noise is HNSW's worst case
        # and would fail verification's recall check, which is about the index, not about sync)
        self.near = [
            np.array(json.loads(r[0]), dtype=np.float32)
            for r in self.conn.execute("SELECT embedding::text FROM vectors ORDER BY id LIMIT 500").fetchall()
        ]
        self.made = 0

    def _vector(self) -> str:
        base = self.near[self.rng.randrange(len(self.near))]
        noisy = base + 0.05 * float(np.linalg.norm(base)) / np.sqrt(self.dimension) * self.np_rng.normal(
            size=self.dimension
        )
        return "[" + ",".join(f"{x:.6f}" for x in noisy) + "]"

    def change(self) -> None:
        roll = self.rng.random()
        if roll < 0.40 or len(self.ids) < 10:
            ws = self.rng.choice(self.workspaces)
            with self.conn.transaction():
                (doc,) = self.conn.execute(
                    "INSERT INTO documents (workspace_id, content) VALUES (%s, %s) RETURNING id",
                    [ws, f"follow benchmark note {self.made} about latency and throughput"],
                ).fetchone()  # type: ignore[misc]
                self.conn.execute(
                    "INSERT INTO vectors (document_id, embedding) VALUES (%s, %s::vector)", [doc, self._vector()]
                )
            self.ids.append(doc)
        elif roll < 0.65:
            self.conn.execute(
                "UPDATE documents SET content = content || ' edited' WHERE id = %s", [self.rng.choice(self.ids)]
            )
        elif roll < 0.85:
            self.conn.execute(
                "UPDATE vectors SET embedding = %s::vector WHERE document_id = %s",
                [self._vector(), self.rng.choice(self.ids)],
            )
        else:
            doc = self.ids.pop(self.rng.randrange(len(self.ids)))
            self.conn.execute("DELETE FROM documents WHERE id = %s", [doc])
        self.made += 1


def verified(url: str, root: Path) -> bool:
    report = clawfs.verify(url, root, clawfs.VerifyOptions(all_workspaces=True, sample=20))
    for error in report.errors:
        print(f"  verify: {error}", flush=True)
    return bool(report.ok)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)] if values else float("nan")


def idle_rounds(url: str, root: Path, rounds: int) -> dict[str, float]:
    """Median seconds of a sync round with nothing to apply, through the slot and by comparison."""
    everything = clawfs.SyncOptions(all_workspaces=True)
    times: dict[str, list[float]] = {"slot": [], "compare": []}
    record = root / ".clawfs" / "replication.json"
    kept = record.read_bytes()
    for _ in range(rounds):
        for method in ("slot", "compare"):
            if method == "compare":
                record.unlink()
            started = time.perf_counter()
            report = clawfs.sync(url, root, everything)
            times[method].append(time.perf_counter() - started)
            assert report.method == method and report.changes == 0, (method, report.changes)
            if method == "compare":
                record.write_bytes(kept)
    return {m: median(t) for m, t in times.items()}


def steady_load(url: str, root: Path, writer: Writer, rate: float, seconds: float) -> dict[str, Any]:
    rounds: list[clawfs.SyncReport] = []
    stop = threading.Event()

    class Stop(Exception):
        pass

    def on_round(report: clawfs.SyncReport) -> None:
        rounds.append(report)
        if stop.is_set():
            raise Stop

    def run() -> None:
        with contextlib.suppress(Stop):
            follow(url, root, clawfs.SyncOptions(all_workspaces=True), None, on_round)

    follower = threading.Thread(target=run)
    follower.start()
    started = time.perf_counter()
    made = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        while made < elapsed * rate:
            writer.change()
            made += 1
        time.sleep(0.002)
    written_in = time.perf_counter() - started
    stop.set()
    follower.join()
    # catch up after the load: one more round applies what the last one missed
    final = clawfs.sync(url, root, clawfs.SyncOptions(all_workspaces=True))
    under_load = [r for r in rounds if r.seconds > 0]
    return {
        "rate_asked": rate,
        "rate_written": made / written_in,
        "changes_written": made,
        "rounds": len(rounds),
        "changes_applied": sum(r.changes for r in rounds) + final.changes,
        "round_seconds_p50": median([r.seconds for r in under_load]),
        "lag_seconds_p50": median([r.lag_seconds for r in under_load]),
        "lag_seconds_p95": p95([r.lag_seconds for r in under_load]),
        "lag_wal_bytes_p50": median([float(r.lag_wal_bytes or 0) for r in under_load]),
        "lag_wal_bytes_p95": p95([float(r.lag_wal_bytes or 0) for r in under_load]),
        "verified": verified(url, root),
    }


def backlog(url: str, root: Path, writer: Writer, changes: int, method: str) -> dict[str, Any]:
    started = time.perf_counter()
    for _ in range(changes):
        writer.change()
    write_seconds = time.perf_counter() - started
    record = root / ".clawfs" / "replication.json"
    kept = record.read_bytes() if method == "compare" else None
    if kept is not None:
        record.unlink()
    started = time.perf_counter()
    applied = rounds = 0
    while True:
        report = clawfs.sync(url, root, clawfs.SyncOptions(all_workspaces=True))
        rounds += 1
        applied += report.changes
        if not report.more_waiting:
            break
    seconds = time.perf_counter() - started
    if kept is not None:
        record.write_bytes(kept)
        clawfs.sync(url, root, clawfs.SyncOptions(all_workspaces=True))  # let the slot pass these changes
    return {
        "method": method,
        "changes_written": changes,
        "write_seconds": write_seconds,
        "rows_applied": applied,
        "rounds": rounds,
        "seconds": seconds,
        "changes_per_second": changes / seconds,
        "verified": verified(url, root),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--rate", type=float, default=200.0, help="changes per second in the steady load")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the steady load")
    parser.add_argument("--backlog", type=int, default=5000, help="changes written before a timed catch-up")
    parser.add_argument("--idle-rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="clawfs-follow-") as tmp:
        url = start_embedded_postgres(Path(tmp) / "pg", logical=True)
        sample = fill_sample_store(url, documents=args.documents, dimension=args.dimension)
        root = Path(tmp) / "root"
        clawfs.migrate(url, root, clawfs.MigrateOptions(all_workspaces=True))
        clawfs.sync_setup(url, root)
        writer = Writer(url, args.dimension, sample.workspaces)
        print(f"store: {args.documents:,} documents, {args.dimension}-d vectors; slot set up", flush=True)

        idle = idle_rounds(url, root, args.idle_rounds)
        print(f"idle round: slot {idle['slot'] * 1000:.0f} ms, compare {idle['compare'] * 1000:.0f} ms", flush=True)
        steady = steady_load(url, root, writer, args.rate, args.seconds)
        print(f"steady load: {json.dumps(steady)}", flush=True)
        drained = [backlog(url, root, writer, args.backlog, m) for m in ("slot", "compare")]
        for d in drained:
            print(f"backlog ({d['method']}): {json.dumps(d)}", flush=True)
        clawfs.sync_teardown(url, root)

    slot, compare = drained
    result = {
        "documents": args.documents,
        "dimension": args.dimension,
        "idle_round_seconds": idle,
        "idle_round_ratio_compare_over_slot": idle["compare"] / idle["slot"],
        "steady": steady,
        "backlog": drained,
        "backlog_ratio_slot_over_compare": slot["changes_per_second"] / compare["changes_per_second"],
    }
    print()
    print(f"{'':34}{'slot':>12}{'compare':>12}")
    print(f"{'idle round (ms, median)':34}{idle['slot'] * 1000:12.0f}{idle['compare'] * 1000:12.0f}")
    print(
        f"{'backlog of ' + format(args.backlog, ',') + ' changes (changes/s)':34}"
        f"{slot['changes_per_second']:12,.0f}{compare['changes_per_second']:12,.0f}"
    )
    print(
        f"steady load {steady['rate_written']:.0f} changes/s for {args.seconds:.0f} s through the slot: "
        f"lag p50 {steady['lag_seconds_p50']:.2f} s (p95 {steady['lag_seconds_p95']:.2f} s), "
        f"{steady['lag_wal_bytes_p50']:,.0f} bytes of WAL (p95 {steady['lag_wal_bytes_p95']:,.0f}); "
        f"{steady['rounds']} rounds, all verified: {steady['verified'] and slot['verified'] and compare['verified']}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
