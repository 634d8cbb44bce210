"""The HNSW index of a workspace in use: the saved file plus the changes made since (DESIGN §2.3).

Every write to `vectors` appends the vector's id to `clawfs_index_log` in the same SQLite transaction,
so the database alone always says what the index must hold. The saved index (a file, or inside an
encrypted database: `_index_store`) holds the vectors up to the log position recorded in its stamp
(metadata `hnsw_index`); what came later lives in memory:

    main    the saved index (a file is memory-mapped: opening costs no reading), never changed in place
    masked  ids whose entry in `main` is out of date (deleted or given a new embedding)
    delta   a small in-memory index of the vectors added or changed since the file was saved

`refresh` replays the log entries it has not seen yet (this process's writes and other processes'
alike): each id touched is masked and, if it still exists, added to `delta` with its current embedding.
Replaying is idempotent, so a crash between the SQLite commit and anything after it loses nothing.
`save` folds the changes into a new saved index (put in place with its stamp and the log trimmed, in one
transaction); `rebuild` builds it from the `vectors` table. A missing, damaged or stale index (its size,
sha256 or vector count is not the stamp's) is rebuilt, never used silently.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt
from usearch.index import Index

from ..errors import WorkspaceError
from ._index import HnswParams, IndexStamp, add_to_index, new_index, stamp_file
from ._index_store import FILE, IndexStore
from ._sqlite import Key, OperationalError, connect

log = logging.getLogger("clawfs")

LOG_TABLE = "clawfs_index_log"
LOG_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {LOG_TABLE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, vector_id INTEGER NOT NULL)"
)
REBUILD_BATCH = 4096
Writer = sqlite3.Connection | Callable[[], sqlite3.Connection]


def read_stamp(db: sqlite3.Connection) -> IndexStamp | None:
    row = db.execute("SELECT value FROM metadata WHERE key = 'hnsw_index'").fetchone()
    if row is None:
        return None
    try:
        data = json.loads(row[0])
        return IndexStamp(**data)
    except (ValueError, TypeError):
        return None


def restamp(db_path: Path, index_path: Path, key: Key | None = None) -> None:
    """After the index file was copied (restore): if its sha256 is the stamp's, record its new inode and
    mtime, so opening it need not hash it again."""
    db = connect(db_path, key)
    try:
        stamp = read_stamp(db)
        if stamp is None or stamp.location != FILE or not index_path.is_file() or not stamp.same_file(index_path):
            return
        fresh = stamp_file(index_path, stamp.vectors, stamp.log_position)
        with db:
            db.execute("INSERT OR REPLACE INTO metadata VALUES ('hnsw_index', ?)", (json.dumps(fresh.as_dict()),))
    finally:
        db.close()


def log_entries(db: sqlite3.Connection, after: int) -> list[tuple[int, int]]:
    """(seq, vector id) of the log after `after`; none when no write ever happened."""
    try:
        return db.execute(f"SELECT seq, vector_id FROM {LOG_TABLE} WHERE seq > ? ORDER BY seq", (after,)).fetchall()
    except OperationalError as e:
        if "no such table" in str(e):
            return []
        raise


def log_position(db: sqlite3.Connection) -> int:
    """The last log entry ever written (AUTOINCREMENT keeps it in sqlite_sequence after trimming)."""
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (LOG_TABLE,)).fetchone()
    except OperationalError as e:
        if "no such table" in str(e):  # no AUTOINCREMENT table yet: no write ever happened
            return 0
        raise
    return int(row[0]) if row and row[0] is not None else 0


def embeddings_of(db: sqlite3.Connection, ids: list[int]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        out.update(db.execute(f"SELECT id, embedding FROM vectors WHERE id IN ({marks})", chunk).fetchall())
    return out


class LiveIndex:
    def __init__(self, store: IndexStore, params: HnswParams, dimension: int) -> None:
        self.store = store
        self.params = params
        self.dimension = dimension
        self.lock = threading.RLock()
        self.main: Index | None = None
        self.stamp: IndexStamp | None = None  # of the file `main` was loaded from (None: built in memory)
        self.seen: IndexStamp | None = None  # the stamp in metadata when `main` was loaded or built
        self.masked: set[int] = set()
        self.delta = new_index(dimension, params)
        self.applied = 0  # the last log entry replayed
        self.problem = ""  # why the file could not be used, when it could not
        self.ef_search = params.ef_search

    # -- keeping up with the database -------------------------------------------------------

    def refresh(self, db: sqlite3.Connection, writer: Writer | None) -> None:
        """Bring the in-memory state up to what `db` has committed (cheap when nothing changed).
        A file that cannot be used is rebuilt: written through `writer` (a connection, or a function that
        opens one only when it is needed), or kept in memory without one."""
        with self.lock:
            for _ in range(3):  # a rebuild, or another process's save meanwhile, means reading again
                db.execute("BEGIN")  # the stamp and the log it leaves to replay, from one snapshot
                try:
                    stamp = read_stamp(db)
                    reload = self.main is None or stamp != self.seen
                    entries = log_entries(db, (stamp.log_position if stamp else 0) if reload else self.applied)
                finally:
                    db.execute("COMMIT")
                if reload and not self._load(stamp, db):
                    if stamp is not None or self.store.present(db):
                        log.warning(
                            "the HNSW index %s %s: rebuilding it from the vectors table", self.store, self.problem
                        )
                    opened = (
                        writer()
                        if callable(writer) and not hasattr(writer, "execute")  # a function, not a connection
                        else cast(sqlite3.Connection | None, writer)
                    )
                    self.rebuild(db, opened)
                    if opened is None:
                        self.seen = stamp  # built in memory for this unusable file: not again until the stamp changes
                    continue
                if entries:
                    self._replay(db, [vector_id for _, vector_id in entries])
                    self.applied = entries[-1][0]
                return

    def _load(self, stamp: IndexStamp | None, db: sqlite3.Connection) -> bool:
        """Open the index `stamp` names; False when it is missing, stale or damaged."""
        main, problem = self._open_file(stamp, db)
        if main is None or stamp is None:
            self.problem = problem
            return False
        self.main, self.stamp, self.seen = main, stamp, stamp
        self.masked = set()
        self.delta = new_index(self.dimension, self.params)
        self.applied = stamp.log_position
        return True

    def _open_file(self, stamp: IndexStamp | None, db: sqlite3.Connection) -> tuple[Index | None, str]:
        """The stored index, if it is the one `stamp` describes; else why not."""
        if stamp is None:
            return None, "has no stamp in metadata"
        if stamp.location != self.store.location:
            return None, f"is stamped as kept in the {stamp.location}, not the {self.store.location}"
        main, problem = self.store.open(db, stamp)
        if main is None:
            return None, problem
        if len(main) != stamp.vectors or main.ndim != self.dimension:
            return None, "is damaged or stale (its vector count or dimension is not the stamp's)"
        return main, ""

    def _replay(self, db: sqlite3.Connection, touched: list[int]) -> None:
        ids = list(dict.fromkeys(touched))
        current = embeddings_of(db, ids)
        for vector_id in ids:
            self.masked.add(vector_id)
            if self.delta.contains(vector_id):
                self.delta.remove(vector_id)
        keep = [i for i in ids if i in current]
        if keep:
            vectors = np.stack([np.frombuffer(current[i], dtype="<f4") for i in keep])
            self.delta.add(np.asarray(keep, dtype=np.uint64), vectors, threads=1)

    # -- searching --------------------------------------------------------------------------

    def search(self, query: npt.NDArray[np.float32], k: int, ef_search: int | None = None) -> list[tuple[int, float]]:
        """(vector id, cosine distance), nearest first."""
        with self.lock:
            main, masked, delta = self.main, set(self.masked), self.delta
            ef = ef_search or self.ef_search
            found: dict[int, float] = {}
            if len(delta):
                delta.expansion_search = ef  # type: ignore[misc]  # settable at run time
                matches = delta.search(query, min(k, len(delta)))
                found.update(
                    (key, d) for key, d in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True) if d == d
                )
        if main is not None and len(main):
            main.expansion_search = ef  # type: ignore[misc]  # settable at run time
            # out-of-date entries are skipped; ask for more only when they crowded out the k wanted (asking
            # for k + all masked would cost ~10 ms at 1,000 masked on 100k x 1536)
            want = min(k + min(len(masked), k), len(main))
            while True:
                matches = main.search(query, want)
                kept = [
                    (key, d)
                    for key, d in zip(matches.keys.tolist(), matches.distances.tolist(), strict=True)
                    if key not in masked and d == d  # NaN: a vector with no direction
                ]
                if len(kept) >= k or want >= len(main) or len(matches.keys) < want:
                    break
                want = min(2 * want, len(main))
            for key, distance in kept:
                found.setdefault(key, distance)
        return sorted(found.items(), key=lambda item: (item[1], item[0]))[:k]

    def keys(self) -> set[int]:
        """Every vector id the index answers for (for consistency checks)."""
        with self.lock:
            ours = set(np.asarray(self.main.keys, dtype=np.int64).tolist()) if self.main is not None else set()
            ours -= self.masked
            ours |= set(np.asarray(self.delta.keys, dtype=np.int64).tolist())
            return ours

    @property
    def pending(self) -> int:
        """Changes not yet in the file."""
        return len(self.masked)

    # -- writing the file -------------------------------------------------------------------

    def save(self, db: sqlite3.Connection) -> IndexStamp:
        """Fold the pending changes into a new index file and stamp it (`db` must be writable)."""
        with self.lock:
            self.refresh(db, db)
            if self.main is None or self.stamp is None:
                return self.rebuild(db, db)
            if not self.masked:
                return self.stamp
            full = self.store.load(db, self.stamp)
            if full is None:
                return self.rebuild(db, db)
            position = self.applied
            for key in self.masked:
                if full.contains(key):
                    full.remove(key)
            keys = np.asarray(self.delta.keys, dtype=np.int64)
            if len(keys):
                current = embeddings_of(db, keys.tolist())
                present = [int(k) for k in keys if int(k) in current]
                if present:
                    vectors = np.stack([np.frombuffer(current[i], dtype="<f4") for i in present])
                    add_to_index(full, np.asarray(present, dtype=np.int64), vectors)
            return self._install(db, full, position)

    def rebuild(self, db: sqlite3.Connection, writer: sqlite3.Connection | None) -> IndexStamp:
        """A new index from the `vectors` table (read through `db` in one snapshot); written to the file
        through `writer`, or kept in memory only without one."""
        with self.lock:
            index = new_index(self.dimension, self.params)
            db.execute("BEGIN")  # one read snapshot: the vectors and the log position agree
            try:
                position = log_position(db)
                cursor = db.execute("SELECT id, embedding FROM vectors ORDER BY id")
                while rows := cursor.fetchmany(REBUILD_BATCH):
                    keys = np.asarray([r[0] for r in rows], dtype=np.int64)
                    wrong = [r[0] for r in rows if not isinstance(r[1], bytes) or len(r[1]) != 4 * self.dimension]
                    if wrong:
                        raise WorkspaceError(
                            f"cannot build the HNSW index: vector {wrong[0]} is not {self.dimension} float32 values"
                        )
                    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
                    add_to_index(index, keys, vectors)
            finally:
                db.execute("COMMIT")
            if writer is None:
                self.main, self.stamp = index, None
                self.masked, self.delta, self.applied = set(), new_index(self.dimension, self.params), position
                return IndexStamp(len(index), 0, "", position)
            return self._install(writer, index, position)

    def _install(self, db: sqlite3.Connection, index: Index, position: int) -> IndexStamp:
        """Write the index out (a temporary file, or bytes); then, holding SQLite's write lock (so no
        other process installs in between), put it in place, record its stamp, trim the log, and commit.
        An index older than one another process installed meanwhile (a lower log position) is thrown
        away: installing it would lose the log entries that process trimmed. A crash between a file's
        rename and the commit leaves a file that does not match the stamp: it is rebuilt on the next open
        (inside the database, the index and its stamp are one commit)."""
        prepared = self.store.prepare(index, position)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                current = read_stamp(db)
                if current is not None and current.log_position > position:
                    db.execute("ROLLBACK")
                    self.refresh(db, None)
                    return current
                self.store.put(db, prepared)
                stamp = prepared.stamp
                db.execute("INSERT OR REPLACE INTO metadata VALUES ('hnsw_index', ?)", (json.dumps(stamp.as_dict()),))
                if position:
                    db.execute(f"DELETE FROM {LOG_TABLE} WHERE seq <= ?", (position,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        finally:
            self.store.discard(prepared)
        self.main, self.stamp, self.seen, self.applied = self.store.installed(index), stamp, stamp, position
        self.masked, self.delta = set(), new_index(self.dimension, self.params)
        self.refresh(db, None)  # writes committed meanwhile by others
        return stamp
