"""A synthetic IronClaw store for the demo and the benchmarks (never used by migrate or verify).

Documents are sentences drawn from topic vocabularies, so full-text queries have real answers; each
document's embeddings lie near one of its topic's centres, spread along a few dozen directions with
decaying weight (like real embeddings, which cluster and have a low intrinsic dimension: isotropic
noise in 1536 dimensions would make all neighbours nearly equidistant). Everything is
loaded with COPY BINARY, so 100k documents with 1536-dimensional vectors load in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import psycopg

from ._postgres import _one_line

TOPICS = {
    "accounts": "password reset login account email verify token session admin user profile recover",
    "billing": "invoice payment refund card charge subscription plan price receipt tax billing cycle",
    "deploy": "deploy release rollback container kubernetes cluster node image build pipeline staging",
    "database": "postgres index query vacuum replica backup restore schema migration table column",
    "search": "vector embedding similarity cosine hnsw recall ranking bm25 token stemming query",
    "agents": "agent memory checkpoint task planner tool heuristic reflection goal context episode",
}
SAMPLE_VERSION = 2  # recorded in metadata (`sample_version`): stores of another version are rebuilt
SPREAD_DIRECTIONS = 48
FILLER = [
    "the",
    "a",
    "of",
    "to",
    "and",
    "in",
    "for",
    "on",
    "with",
    "when",
    "how",
    "why",
    "what",
    "after",
    "before",
    "during",
    "while",
    "from",
    "into",
    "about",
    "should",
    "must",
    "can",
    "will",
    "may",
    "this",
    "that",
    "these",
    "those",
    "it",
    "we",
    "you",
    "they",
    "our",
    "your",
    "their",
]


@dataclass(frozen=True)
class SampleStore:
    documents: int
    vectors: int
    workspaces: tuple[str, ...]
    identities: int
    dimension: int


def _copy_header() -> bytes:
    return b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")


def fill_sample_store(
    url: str,
    *,
    documents: int = 3000,
    dimension: int = 1536,
    workspaces: tuple[str, ...] = ("default", "research"),
    words: tuple[int, int] = (12, 60),
    vectors_per_document: float = 1.3,
    identities: int = 3,
    seed: int = 7,
) -> SampleStore:
    """Create the draft's tables (replacing them) and fill them with a reproducible sample."""
    rng = np.random.default_rng(seed)
    topic_names = list(TOPICS)
    vocab = [TOPICS[t].split() for t in topic_names]
    topic_of = rng.integers(0, len(topic_names), documents)
    centres = rng.normal(size=(len(topic_names) * 8, dimension)).astype(np.float32)
    spread = (
        rng.normal(size=(SPREAD_DIRECTIONS, dimension)) / np.sqrt(1 + np.arange(SPREAD_DIRECTIONS))[:, None]
    ).astype(np.float32)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute(
                "DROP TABLE IF EXISTS vectors, documents, metadata, agent_identities CASCADE;"
                "CREATE TABLE documents (id SERIAL PRIMARY KEY, workspace_id TEXT NOT NULL, content TEXT NOT NULL,"
                " metadata JSONB, created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW());"
                "CREATE TABLE vectors (id SERIAL PRIMARY KEY,"
                " document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
                f" embedding vector({dimension}) NOT NULL, created_at TIMESTAMPTZ DEFAULT NOW());"
                "CREATE TABLE metadata (key TEXT PRIMARY KEY, value JSONB NOT NULL);"
                "CREATE TABLE agent_identities (agent_id TEXT PRIMARY KEY, version INTEGER NOT NULL,"
                " state JSONB NOT NULL, memory JSONB NOT NULL, history JSONB NOT NULL, performance JSONB NOT NULL,"
                " created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW(), checksum TEXT NOT NULL)"
            )
            base_us = 700_000_000_000_000  # 2022, in microseconds since 2000-01-01
            with (
                conn.cursor() as cur,
                cur.copy("COPY documents (id, workspace_id, content, metadata, created_at) FROM STDIN") as copy,
            ):
                lengths = rng.integers(words[0], words[1] + 1, documents)
                for i in range(documents):
                    topic = int(topic_of[i])
                    own = rng.choice(vocab[topic], size=int(lengths[i]) // 2)
                    fill = rng.choice(FILLER, size=int(lengths[i]) - len(own))
                    text = " ".join(rng.permutation(np.concatenate([own, fill])).tolist()).capitalize() + "."
                    meta = json.dumps({"topic": topic_names[topic], "source": "sample", "n": i})
                    created = np.datetime64("2000-01-01", "us") + np.timedelta64(
                        base_us + int(rng.integers(0, 10**14)), "us"
                    )
                    copy.write_row((i + 1, workspaces[i % len(workspaces)], text, meta, f"{created}Z"))
            per_doc = rng.poisson(vectors_per_document - 1, documents) + 1
            owners = np.repeat(np.arange(1, documents + 1), per_doc)
            total = len(owners)
            record = np.dtype(
                [
                    ("nf", ">i2"),
                    ("l0", ">i4"),
                    ("id", ">i4"),
                    ("l1", ">i4"),
                    ("doc", ">i4"),
                    ("l2", ">i4"),
                    ("dim", ">i2"),
                    ("unused", ">i2"),
                    ("emb", ">f4", (dimension,)),
                ]
            )
            with (
                conn.cursor() as cur,
                cur.copy("COPY vectors (id, document_id, embedding) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.write(_copy_header())
                step = 4096
                for start in range(0, total, step):
                    chunk = owners[start : start + step]
                    rows = np.zeros(len(chunk), dtype=record)
                    rows["nf"], rows["l0"], rows["l1"], rows["l2"] = 3, 4, 4, 4 + 4 * dimension
                    rows["id"] = np.arange(start + 1, start + 1 + len(chunk))
                    rows["doc"] = chunk
                    rows["dim"] = dimension
                    cluster = topic_of[chunk - 1] * 8 + rng.integers(0, 8, len(chunk))
                    offsets = rng.normal(size=(len(chunk), SPREAD_DIRECTIONS)).astype(np.float32) @ spread
                    noise = rng.normal(scale=0.02, size=(len(chunk), dimension)).astype(np.float32)
                    rows["emb"] = centres[cluster] + offsets + noise
                    copy.write(rows.tobytes())
                copy.write(b"\xff\xff")
            conn.execute("SELECT setval('documents_id_seq', %s)", [documents])
            conn.execute("SELECT setval('vectors_id_seq', %s)", [max(total, 1)])
            conn.execute(
                "INSERT INTO metadata VALUES ('vector_dimension', %s), ('embedding_model', '\"sample-clusters\"'),"
                " ('ivfflat_lists', '100'), ('sample_version', %s)",
                [str(dimension), str(SAMPLE_VERSION)],
            )
            for n in range(identities):
                conn.execute(
                    "INSERT INTO agent_identities (agent_id, version, state, memory, history, performance, checksum)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        f"agent-{n}",
                        n + 1,
                        json.dumps(
                            {
                                "current_phase": "P3",
                                "current_task": f"E-0{n}",
                                "status": "in_progress",
                                "notes": ["migrating to ClawFS"],
                            }
                        ),
                        json.dumps({"learned_patterns": ["prefer COPY over LIMIT/OFFSET"], "heuristics": []}),
                        json.dumps({"completed_tasks": [f"E-0{n}"], "failed_tasks": [], "success_rate": 0.95}),
                        json.dumps({"avg_execution_time_ms": 1200 + n, "peak_memory_mb": 512}),
                        f"sha256:{n:064x}",
                    ],
                )
            # the draft's §1.1 full-text index, as IronClaw has it
            conn.execute(
                "CREATE INDEX idx_documents_content_gin ON documents USING GIN(to_tsvector('english', content))"
            )
            conn.execute("ANALYZE")
    except psycopg.Error as e:
        raise RuntimeError(f"filling the sample store failed: {_one_line(e, [])}") from None
    return SampleStore(documents, total, workspaces, identities, dimension)
