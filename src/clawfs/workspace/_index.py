"""The HNSW index of a workspace (DESIGN §2.3): usearch, cosine, keys = vectors.id.

Building the index is the longest step of a migration, so it runs on a worker thread while the
pipeline goes on reading and writing; a bounded queue keeps memory flat however large the store.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from usearch.index import Index

from ..errors import UsageError, WorkspaceError
from ._layout import FILE_MODE

DTYPES = ("f32", "f16", "bf16", "i8")
# Chosen by benchmarks/hnsw_dtype.py: bf16 keeps recall@10 >= 0.998 on real (MiniLM) and 1536-d clustered
# embeddings and builds 2-4x faster than f32 at half the size; i8 is faster still but reaches only 0.96 on
# the real set and 0.95- at 1536-d, too thin a margin for a default (choose it with --hnsw-dtype i8).
DEFAULT_DTYPE = "bf16"


@dataclass(frozen=True)
class HnswParams:
    m: int = 16
    ef_construction: int = 200
    ef_search: int = 50
    dtype: str = DEFAULT_DTYPE
    metric: str = "cos"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"--hnsw-dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        for name in ("m", "ef_construction", "ef_search"):
            if getattr(self, name) < 1:
                raise UsageError(f"hnsw {name} must be a positive number")

    def metadata(self) -> dict[str, Any]:
        return {f"hnsw_{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> HnswParams:
        return cls(
            m=int(meta["hnsw_m"]),
            ef_construction=int(meta["hnsw_ef_construction"]),
            ef_search=int(meta["hnsw_ef_search"]),
            dtype=str(meta["hnsw_dtype"]),
            metric=str(meta["hnsw_metric"]),
        )


def new_index(dimension: int, params: HnswParams) -> Index:
    return Index(
        ndim=dimension,
        metric=params.metric,
        dtype=params.dtype,
        connectivity=params.m,
        expansion_add=params.ef_construction,
        expansion_search=params.ef_search,
    )


@dataclass(frozen=True)
class IndexStamp:
    """What metadata records of the index file, so a stale or foreign file is never used silently.
    `log_position`: the last entry of `clawfs_index_log` the file includes (0: none)."""

    vectors: int
    bytes: int
    sha256: str
    log_position: int = 0
    # the file's inode and mtime when stamped: while both are unchanged, opening need not hash the file
    inode: int = 0
    mtime_ns: int = 0
    location: str = "file"  # or "database" (see _index_store)

    def same_file(self, path: Path) -> bool:
        """True when `path` is the stamped file: cheaply by inode and mtime, else by its sha256."""
        info = path.stat()
        if info.st_size != self.bytes:
            return False
        if self.inode and (info.st_ino, info.st_mtime_ns) == (self.inode, self.mtime_ns):
            return True
        return file_sha256(path) == self.sha256

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def save_index(index: Index, path: Path, log_position: int = 0) -> IndexStamp:
    """Write the index file (renaming it later keeps its inode and mtime, so the stamp still holds)."""
    index.save(str(path))
    os.chmod(path, FILE_MODE)
    return stamp_file(path, len(index), log_position)


def stamp_file(path: Path, vectors: int, log_position: int) -> IndexStamp:
    info = path.stat()
    return IndexStamp(vectors, info.st_size, file_sha256(path), log_position, info.st_ino, info.st_mtime_ns)


SERIAL_START = 1024


def add_to_index(index: Index, keys: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
    """Add a batch with all cores, except the first vectors of a graph: added in parallel into a nearly
    empty graph they link poorly (small workspaces lost recall: 0.94 seen at 100 vectors)."""
    serial = max(0, min(len(keys), SERIAL_START - len(index)))
    if serial:
        index.add(keys[:serial].astype(np.uint64), vectors[:serial], threads=1)
    if serial < len(keys):
        index.add(keys[serial:].astype(np.uint64), vectors[serial:], threads=0)


class IndexWorker:
    """One background thread that adds vectors to indexes, in order, with all cores (threads=0).

    `submit` blocks when `max_pending` batches wait, which bounds memory. The first error is raised
    again from the next `submit` or from `join`.
    """

    def __init__(self, max_pending: int = 16) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self.busy_seconds = 0.0  # adding vectors to indexes
        self.wait_seconds = 0.0  # callers blocked because max_pending batches were waiting
        self._thread = threading.Thread(target=self._run, name="clawfs-index", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (task := self._queue.get()) is not None:
            if self._error is None:
                started = time.perf_counter()
                try:
                    task()
                except BaseException as e:  # handed back to the pipeline thread
                    self._error = e
                self.busy_seconds += time.perf_counter() - started

    def _raise(self) -> None:
        if self._error is not None:
            raise WorkspaceError(f"building the HNSW index failed: {self._error}") from self._error

    def add(self, index: Index, keys: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        self._raise()

        started = time.perf_counter()
        self._queue.put(lambda: add_to_index(index, keys, vectors))
        self.wait_seconds += time.perf_counter() - started

    def join(self) -> None:
        """Wait until every submitted batch is in its index; the worker stops."""
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def close(self) -> None:
        """Stop without raising (for cleanup after a failure elsewhere)."""
        if self._thread.is_alive():
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put(None)
            self._thread.join()
