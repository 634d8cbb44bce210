"""Verification: is a workspace an exact copy of its source? Evidence per table (DESIGN §3 "Verified").

For each workspace, from one read-only snapshot of PostgreSQL and the workspace's own files:

1. tables — per-range row checksums of documents and vectors computed independently on each side
   (`clawfs._checksum`); ranges that differ are narrowed down to the rows, which are named;
2. metadata — every source row present with the same value; dimension and embedding sizes agree;
3. index — the file is there, matches the stamp in metadata, and holds exactly the vector ids;
   FTS5's own `integrity-check` passes;
4. search — sampled documents are found by FTS5 from their own words, and the top 10 of FTS5 and
   PostgreSQL (`plainto_tsquery('english')`) overlap (a figure: the stemmers differ); sampled vectors'
   HNSW top 10 against pgvector's exact top 10 (index scans off): recall@10 >= `min_recall`.

Identity files are compared field by field with their rows. `verify()` returns a report; a mismatch
is data in the report (exit code 3 in the CLI), not an exception.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ._checksum import RangeSum, total
from ._values import decode_id
from .errors import UsageError
from .progress import NULL_PROGRESS, Progress
from .source import Source
from .workspace import CLAWFS_METADATA_KEYS, Key, Layout, WorkspaceFiles, usable
from .workspace._identity import STATE_FIRST

CHECKSUM_TABLES = ("documents", "vectors")
IDENTITY_KEYS = (
    "agent_id",
    "version",
    "created_at",
    "updated_at",
    "state",
    "memory",
    "history",
    "performance",
    "checksum",
)
# whole tokens as FTS5's unicode61 splits them (letters and digits together); only all-letter ones are used
_TOKEN = re.compile(r"[^\W_]+")
_STOP = frozenset(
    [
        "about",
        "after",
        "before",
        "during",
        "from",
        "have",
        "into",
        "should",
        "that",
        "their",
        "there",
        "these",
        "they",
        "this",
        "those",
        "what",
        "when",
        "where",
        "which",
        "while",
        "will",
        "with",
        "would",
        "your",
    ]
)


def check_selection(verb: str, workspaces: Sequence[str], all_workspaces: bool, sqlite_path: Path | None) -> None:
    """The workspace choice every command shares: ids or --all-workspaces, and --sqlite-path for one."""
    if bool(workspaces) == all_workspaces:
        raise UsageError(f"name the workspaces to {verb} (--workspace-id ID ...) or give --all-workspaces")
    if sqlite_path is not None and (all_workspaces or len(workspaces) != 1):
        raise UsageError("--sqlite-path names one database file: use it with exactly one --workspace-id")


def check_identities_with_key(key: Key | None, identities: bool) -> None:
    """Encrypted workspaces and plain identity files do not go together: identity.json holds an agent's
    memory as plain JSON. With a key, the writing commands need --no-identities."""
    if key is not None and identities:
        raise UsageError(
            "with an encryption key, agent identities are not written: their identity.json files would hold the "
            "agents' memory as plain JSON. Add --no-identities (identities=False)"
        )


@dataclass(frozen=True)
class VerifyOptions:
    workspaces: tuple[str, ...] = ()
    all_workspaces: bool = False
    sqlite_path: Path | None = None
    sample: int = 100
    min_recall: float = 0.95
    min_fts_recall: float = 0.8
    identities: bool = True
    key: Key | None = None  # of encrypted workspaces

    def __post_init__(self) -> None:
        check_selection("verify", self.workspaces, self.all_workspaces, self.sqlite_path)
        if self.sample < 0:
            raise UsageError("--sample must be 0 or more")
        if not 0 <= self.min_recall <= 1 or not 0 <= self.min_fts_recall <= 1:
            raise UsageError("--min-recall and --min-fts-recall are fractions between 0 and 1")


@dataclass(frozen=True)
class TableCheck:
    """One table of one workspace: counts and checksums of both sides, and the rows that differ."""

    table: str
    source_rows: int
    workspace_rows: int
    source_checksum: str
    workspace_checksum: str
    missing: tuple[int, ...] = ()  # in PostgreSQL, not in the workspace
    extra: tuple[int, ...] = ()  # in the workspace, not in PostgreSQL
    changed: tuple[int, ...] = ()  # in both, different
    skipped: tuple[int, ...] = field(default=())  # missing on purpose (--on-bad-row skip)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def problems(self) -> list[str]:
        out = []
        for what, ids in (
            ("missing from the workspace", self.missing),
            ("not in PostgreSQL", self.extra),
            ("different", self.changed),
        ):
            if ids:
                out.append(f"{self.table}: {len(ids)} row(s) {what}: id {_some(ids)}")
        return out


@dataclass(frozen=True)
class SearchCheck:
    check: str  # "fts" or "vector"
    queries: int
    figure: float  # fts: share of PostgreSQL's matches that FTS5 also matches; vector: mean recall@10
    threshold: float
    ok: bool
    top10_overlap: float | None = None  # fts: mean overlap of the two top-10 lists (rankings differ)


@dataclass(frozen=True)
class WorkspaceCheck:
    workspace_id: str
    database: str
    tables: tuple[TableCheck, ...]
    searches: tuple[SearchCheck, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class VerificationReport:
    source: str
    snapshot: dict[str, Any]
    workspaces: tuple[WorkspaceCheck, ...]
    identities_checked: int
    errors: tuple[str, ...]  # all errors, each naming its workspace or identity
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.errors

    def asdict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


@dataclass(frozen=True)
class SourceEvidence:
    """What PostgreSQL says about one workspace, gathered in the snapshot (migrate gathers it on a
    second connection while the index is still being built)."""

    checksums: dict[str, dict[int, RangeSum]]
    metadata: dict[str, str]
    # document id, query words, 10 documents PostgreSQL matches, PostgreSQL's ranked top 10 (first queries only)
    fts: tuple[tuple[int, str, tuple[int, ...], tuple[int, ...]], ...]
    # vector id, embedding text, exact top 10, and the 10th's cosine distance (ties at it count as found)
    vectors: tuple[tuple[int, str, tuple[int, ...], float], ...]
    exact_disagrees: tuple[int, ...] = ()  # sampled vector ids whose exact top 10 pgvector ranks otherwise
    degenerate: tuple[int, ...] = ()  # vector ids without a usable direction (left out of search checks)


PGVECTOR_CROSS_CHECKS = 2
# Ranking every match costs PostgreSQL a to_tsvector per matching row: the ranked top 10 (for the overlap
# figure) is asked for the first few sampled queries only; the others ask for 10 matches, unranked.
RANKED_QUERIES = 3
# Vectors outside NORM_RANGE (zero, tiny, huge) have no usable direction in float32 cosine arithmetic:
# they are checked byte for byte, but not by searching.
TIE = 1e-6  # cosine distances this close are the same distance (float32 arithmetic differs by order)


class ExactTopK:
    """Exact cosine top-k of each query over (ids, vectors) batches fed to `add`, in constant memory.
    Vectors without a usable direction never rank (their ids are kept in `degenerate`).
    Ties are broken by id, as `ORDER BY distance, id` does."""

    def __init__(self, queries: npt.NDArray[np.float32], k: int = 10) -> None:
        self.unit_queries = _unit(queries)
        self.k = k
        self.best_d = np.full((len(queries), 0), np.inf)
        self.best_i = np.zeros((len(queries), 0), dtype=np.int64)
        self.degenerate: list[int] = []

    def add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if not len(ids):
            return
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # unit vectors in float32, like pgvector's own arithmetic (a tenth of float64's cost)
            distances = (1.0 - self.unit_queries @ _unit(vectors, norms).T).astype(np.float64)
        bad = ~usable(norms)
        if bad.any():
            self.degenerate.extend(int(i) for i in ids[bad])
        distances[:, bad] = np.inf
        distances[~np.isfinite(distances)] = np.inf
        all_d = np.concatenate([self.best_d, distances], axis=1)
        all_i = np.concatenate([self.best_i, np.broadcast_to(ids, distances.shape)], axis=1)
        order = np.lexsort((all_i, all_d), axis=1)[:, : self.k]
        self.best_d = np.take_along_axis(all_d, order, axis=1)
        self.best_i = np.take_along_axis(all_i, order, axis=1)

    def result(self) -> list[tuple[list[int], list[float]]]:
        """Per query: (ids, distances), best first."""
        return [
            ([int(i) for i, d in zip(ids, ds, strict=True) if np.isfinite(d)], [float(d) for d in ds if np.isfinite(d)])
            for ids, ds in zip(self.best_i, self.best_d, strict=True)
        ]


def _unit(vectors: npt.NDArray[np.float32], norms: npt.NDArray[np.float64] | None = None) -> npt.NDArray[np.float32]:
    """Rows scaled to length 1, as float32; norms in float64 (squares of large float32 values overflow)."""
    if norms is None:
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return (vectors / norms[:, None]).astype(np.float32)


@dataclass
class VectorSample:
    """Sampled vectors of one workspace and their exact neighbours among all of its vectors.

    `verify` feeds it by reading PostgreSQL's vectors once more; `migrate` feeds it the batches it
    copies as they stream by (the same bytes, read once)."""

    sampled: list[tuple[int, str]]  # vector id, embedding as pgvector text
    top: ExactTopK | None

    @classmethod
    def draw(cls, source: Source, workspace_id: str, sample: int, skipped: Collection[int] = ()) -> VectorSample:
        sampled = [
            (vector_id, text)
            for vector_id, text in source.sample_vectors(workspace_id, sample + len(skipped))
            if vector_id not in skipped
            and usable(np.array([np.linalg.norm(np.asarray(json.loads(text), dtype=np.float64))]))[0]
        ][:sample]
        queries = np.asarray([json.loads(text) for _, text in sampled], dtype=np.float32)
        return cls(sampled, ExactTopK(queries) if sampled else None)

    def add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if self.top is not None:
            self.top.add(ids, vectors)

    def read_all(self, source: Source, workspace_id: str, skipped: Collection[int] = ()) -> None:
        """Feed every vector of the workspace in PostgreSQL (skipped ones left out)."""
        if self.top is None:
            return
        left_out = list(skipped)
        for b in source.read_vectors([workspace_id], 4096, lambda error: None, include_orphans=False):
            keep = ~np.isin(b.ids, left_out)
            self.add(b.ids[keep], b.embeddings[keep])


def gather_evidence(
    source: Source,
    workspace_id: str,
    sample: int,
    skipped_vectors: Collection[int] = (),
    vector_sample: VectorSample | None = None,
) -> SourceEvidence:
    """PostgreSQL's side; vectors skipped on purpose (--on-bad-row skip) are left out of the search check.

    The exact top 10 of every sampled vector comes from one pass over the workspace's vectors (a full
    scan per query would cost seconds each on a large store): `vector_sample` when the caller already
    made that pass, else a read of PostgreSQL's vectors here. For a few of them pgvector's own exact
    search must agree, which ties the pass to pgvector."""
    fts_queries = [
        (doc_id, words)
        for doc_id, content in (source.sample_documents(workspace_id, sample) if sample else [])
        if (words := query_words(content)) is not None
    ]
    texts = [words for _, words in fts_queries]
    matches = source.fts_answers(workspace_id, texts, ranked=False)
    ranked = source.fts_answers(workspace_id, texts[:RANKED_QUERIES], ranked=True)
    ranked += [[] for _ in range(len(texts) - len(ranked))]
    fts = [
        (doc_id, words, tuple(match), tuple(top))
        for (doc_id, words), match, top in zip(fts_queries, matches, ranked, strict=True)
    ]
    vectors: list[tuple[int, str, tuple[int, ...], float]] = []
    disagrees: list[int] = []
    if vector_sample is None:
        vector_sample = VectorSample.draw(source, workspace_id, sample, skipped_vectors)
        vector_sample.read_all(source, workspace_id, skipped_vectors)
    sampled, top = vector_sample.sampled, vector_sample.top
    degenerate = top.degenerate if top is not None else []
    if top is not None:
        truth = top.result()
        left_out = set(skipped_vectors) | set(degenerate)
        checked = sampled[:PGVECTOR_CROSS_CHECKS]
        pgvector = source.exact_neighbours(workspace_id, [text for _, text in checked], 10 + len(left_out))
        for (vector_id, text), (ids, distances) in zip(sampled, truth, strict=True):
            vectors.append((vector_id, text, tuple(ids), distances[-1] if distances else 0.0))
        for (vector_id, _), (ids, distances), answer in zip(checked, truth, pgvector, strict=False):
            theirs = [i for i in answer if i not in left_out]
            if not _same_neighbours(theirs[: len(ids)], ids, distances):
                disagrees.append(vector_id)
    return SourceEvidence(
        checksums={t: source.range_checksums(t, workspace_id) for t in CHECKSUM_TABLES},
        metadata=dict(source.read_metadata()),
        fts=tuple(fts),
        vectors=tuple(vectors),
        exact_disagrees=tuple(disagrees),
        degenerate=tuple(degenerate),
    )


def _same_neighbours(theirs: list[int], ours: list[int], distances: list[float]) -> bool:
    """Equal, or different only where distances tie at the k-th place (float rounding differs)."""
    if set(theirs) == set(ours):
        return True
    differing = set(ours) - set(theirs)
    kth = distances[-1] if distances else 0.0
    return all(abs(distances[ours.index(i)] - kth) < 1e-6 for i in differing)


def _some(ids: Sequence[object], shown: int = 20) -> str:
    text = ", ".join(map(str, ids[:shown]))
    return text + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def compare_table(
    table: str,
    source: dict[int, RangeSum],
    workspace: dict[int, RangeSum],
    source_rows: Callable[[Sequence[int]], dict[int, int]],
    workspace_rows: Callable[[Sequence[int]], dict[int, int]],
    skipped: Collection[int] = (),
) -> TableCheck:
    """Compare range checksums; fetch row hashes of the ranges that differ to name the rows."""
    differing = sorted(r for r in source.keys() | workspace.keys() if source.get(r) != workspace.get(r))
    missing: list[int] = []
    extra: list[int] = []
    changed: list[int] = []
    skipped_found: list[int] = []
    if differing:
        theirs = source_rows(differing)
        ours = workspace_rows(differing)
        absent = set(theirs) - set(ours)
        skipped_found = sorted(absent & set(skipped))
        missing = sorted(absent - set(skipped))
        extra = sorted(set(ours) - set(theirs))
        changed = sorted(i for i in set(theirs) & set(ours) if theirs[i] != ours[i])
    return TableCheck(
        table=table,
        source_rows=total(source).rows,
        workspace_rows=total(workspace).rows,
        source_checksum=total(source).hex(),
        workspace_checksum=total(workspace).hex(),
        missing=tuple(missing),
        extra=tuple(extra),
        changed=tuple(changed),
        skipped=tuple(skipped_found),
    )


def query_words(content: str) -> str | None:
    """Two words of a document that make a full-text query for it: its two longest distinct words."""
    tokens = {w.lower() for w in _TOKEN.findall(content) if len(w) >= 4 and w.isalpha()}
    words = sorted(tokens - _STOP, key=lambda w: (-len(w), w))
    return " ".join(words[:2]) or None


def check_workspace(
    source: Source,
    evidence: SourceEvidence,
    files: WorkspaceFiles,
    workspace_id: str,
    options: VerifyOptions,
    workspace_checksums: dict[str, dict[int, RangeSum]] | None = None,
    skipped: Mapping[str, Collection[int]] | None = None,
) -> WorkspaceCheck:
    """Everything about one workspace against the evidence; `source` is asked only to name rows."""
    errors: list[str] = []
    meta = files.metadata()
    errors += _check_metadata(meta, evidence.metadata, source.info.dimension, workspace_id)
    tables = []
    for table in CHECKSUM_TABLES:
        result = compare_table(
            table,
            evidence.checksums[table],
            (workspace_checksums or {}).get(table) or files.range_checksums(table),
            partial(source.row_hashes, table, workspace_id),
            partial(files.row_hashes, table),
            skipped=(skipped or {}).get(table, ()),
        )
        tables.append(result)
        errors += result.problems()
    # An embedding of the wrong size cannot match PostgreSQL's row checksum: the comparison above names it.
    if (problem := files.fts_integrity()) is not None:
        errors.append(f"fts: FTS5 integrity-check failed: {problem}")
    errors += _check_index(files, meta)
    searches = [
        check
        for check in (
            _fts_check(evidence, files, options, errors),
            _vector_check(evidence, files, options, meta, errors),
        )
        if check is not None
    ]
    return WorkspaceCheck(workspace_id, str(files.db_path), tuple(tables), tuple(searches), tuple(errors))


def _check_metadata(
    meta: dict[str, str], source_rows: dict[str, str], dimension: int | None, workspace_id: str
) -> list[str]:
    errors = []
    try:
        recorded_ws = json.loads(meta.get("workspace_id", "null"))
        recorded_dim = json.loads(meta.get("vector_dimension", "null"))
    except ValueError:
        return ["metadata: workspace_id or vector_dimension is not JSON"]
    if recorded_ws != workspace_id:
        errors.append(f"metadata: workspace_id is {recorded_ws!r}, expected {workspace_id!r}")
    if recorded_dim != dimension:
        errors.append(f"metadata: vector_dimension is {recorded_dim}, PostgreSQL's is {dimension}")
    for key, value in source_rows.items():
        if key in CLAWFS_METADATA_KEYS and key != "embedding_model":  # clawfs writes these itself
            continue
        if key not in meta:
            errors.append(f"metadata: key {key!r} is missing from the workspace")
        elif meta[key] != value:
            errors.append(f"metadata: key {key!r} differs (PostgreSQL {value[:60]!r}, workspace {meta[key][:60]!r})")
    for key in meta.keys() - source_rows.keys() - CLAWFS_METADATA_KEYS:
        errors.append(f"metadata: key {key!r} is not in PostgreSQL")
    return errors


def _check_index(files: WorkspaceFiles, meta: dict[str, str]) -> list[str]:
    index = files.index_file()
    if not index.exists:
        return [f"index: the HNSW index {files.index_store} is missing"]
    try:
        stamp = json.loads(meta.get("hnsw_index", "{}"))
    except ValueError:
        stamp = {}
    errors = []
    if stamp.get("sha256") != index.sha256 or stamp.get("bytes") != index.bytes:
        errors.append(
            f"index: {files.index_store} is not the index this workspace recorded "
            f"({index.bytes} bytes, recorded {stamp.get('bytes')}): it is stale or was replaced"
        )
    if index.keys is None:
        return [*errors, f"index: {index.error}"]
    ids = files.vector_ids()
    pending = files.pending_index_ids()  # written since the file was saved: replayed from the log on open
    missing = [i for i in np.setdiff1d(ids, index.keys).tolist() if i not in pending]
    extra = [i for i in np.setdiff1d(index.keys, ids).tolist() if i not in pending]
    if missing:
        errors.append(f"index: {len(missing)} vector(s) missing from the HNSW index: id {_some(missing)}")
    if extra:
        errors.append(f"index: {len(extra)} id(s) in the HNSW index are not in the vectors table: id {_some(extra)}")
    return errors


def _fts_check(
    evidence: SourceEvidence, files: WorkspaceFiles, options: VerifyOptions, errors: list[str]
) -> SearchCheck | None:
    """FTS5 must find each sampled document by its own words, and the documents PostgreSQL's full text
    matches for them. How the two rank the matches differs (bm25, ts_rank_cd): that overlap is a figure."""
    if not evidence.fts:
        return None
    recalls = []
    overlaps = []
    lost = []
    for doc_id, words, theirs, theirs_ranked in evidence.fts:
        if not files.fts_finds(words, doc_id):
            lost.append(doc_id)
        recalls.append(files.fts_matching(words, theirs) / len(theirs) if theirs else 1.0)
        if theirs_ranked:
            ours = set(files.fts_ranked(words))
            overlaps.append(len(set(theirs_ranked) & ours) / max(len(theirs_ranked), len(ours)))
    if lost:
        errors.append(f"fts: {len(lost)} sampled document(s) not found by their own words: id {_some(lost)}")
    figure = float(np.mean(recalls))
    ok = figure >= options.min_fts_recall
    if not ok:
        errors.append(f"fts: FTS5 finds {figure:.3f} of PostgreSQL's full-text matches < {options.min_fts_recall}")
    return SearchCheck(
        "fts",
        len(recalls),
        figure,
        options.min_fts_recall,
        ok and not lost,
        top10_overlap=float(np.mean(overlaps)) if overlaps else None,
    )


def _vector_check(
    evidence: SourceEvidence, files: WorkspaceFiles, options: VerifyOptions, meta: dict[str, str], errors: list[str]
) -> SearchCheck | None:
    if not evidence.vectors:
        return None
    if evidence.exact_disagrees:
        errors.append(
            f"vectors: exact search over PostgreSQL's vectors disagrees with pgvector's for sampled vector(s) "
            f"{_some(evidence.exact_disagrees)}"
        )
    try:
        ef_search = int(json.loads(meta.get("hnsw_ef_search", "50")))
    except (ValueError, TypeError):
        errors.append(f"metadata: hnsw_ef_search is not a number: {meta.get('hnsw_ef_search')!r}")
        ef_search = 50
    recalls = []
    left_out = set(evidence.degenerate)
    for _, text, exact, kth in evidence.vectors:
        query = np.asarray(json.loads(text), dtype=np.float32)
        found = [i for i in files.index_search(query, len(exact) + len(left_out), ef_search) if i not in left_out]
        found = found[: len(exact)]
        # a vector as near as the exact 10th (a tie, e.g. duplicate embeddings) is as right as the one listed
        tied = {i for i, d in files.cosine_distances(query, set(found) - set(exact)).items() if d <= kth + TIE}
        recalls.append(len((set(exact) | tied) & set(found)) / len(exact) if exact else 1.0)
    figure = float(np.mean(recalls))
    ok = figure >= options.min_recall
    if not ok:
        errors.append(f"vectors: HNSW recall@10 {figure:.3f} < {options.min_recall} against exact pgvector search")
    return SearchCheck("vector", len(recalls), figure, options.min_recall, ok)


def _load_json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def check_identities(source: Source, layout: Layout) -> tuple[int, list[str]]:
    """Each identity file against its row, field by field; files without a row are errors too."""
    errors = []
    rows = source.identities_for_verify()
    for agent_id, version, state, memory, history, performance, created, updated, checksum in rows:
        path = layout.agent_file(agent_id)
        if not path.is_file():
            errors.append(f"identity {agent_id!r}: {path} is missing")
            continue
        try:
            doc = json.loads(path.read_text("utf-8"), parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as e:
            errors.append(f"identity {agent_id!r}: {path} is not JSON: {e}")
            continue
        source_state = _load_json(state)
        want = {
            "agent_id": agent_id,
            "version": version,
            "created_at": created,
            "updated_at": updated,
            "state": {k: source_state.get(k) for k in STATE_FIRST} | source_state,
            "memory": _load_json(memory),
            "history": _load_json(history),
            "performance": _load_json(performance),
            "checksum": checksum,
        }
        if not isinstance(doc, dict) or list(doc) != list(IDENTITY_KEYS):
            errors.append(f"identity {agent_id!r}: keys are not {', '.join(IDENTITY_KEYS)}")
            continue
        differing = [k for k in IDENTITY_KEYS if doc[k] != want[k]]
        if list(doc["state"])[: len(STATE_FIRST)] != list(STATE_FIRST):
            differing.append("state (key order)")
        if differing:
            errors.append(f"identity {agent_id!r}: {', '.join(differing)} differ from PostgreSQL")
    agents = layout.root / "agents"
    known = {r[0] for r in rows}
    if agents.is_dir():
        for entry in sorted(os.listdir(agents)):
            try:
                agent_id = decode_id(entry)
            except UnicodeDecodeError:
                agent_id = entry
            if agent_id not in known and (agents / entry / "identity.json").exists():
                errors.append(f"identity {agent_id!r}: the file has no row in PostgreSQL")
    return len(rows), errors


def verify(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: VerifyOptions,
    progress: Progress = NULL_PROGRESS,
) -> VerificationReport:
    """Compare workspaces under `root` (and identity files) with their source, from one snapshot."""
    started = time.perf_counter()
    layout = Layout(Path(root))
    errors: list[str] = []
    checks = []
    with Source(pg_url) as source:
        known = source.workspace_ids()
        chosen = known if options.all_workspaces else list(dict.fromkeys(options.workspaces))
        if options.all_workspaces:
            on_disk = workspaces_on_disk(layout)
            errors += [f"workspace {ws!r}: in the ClawFS root but not in PostgreSQL" for ws in on_disk - set(known)]
        progress.start("verify", len(chosen), unit="workspaces")
        for ws in chosen:
            db = options.sqlite_path or layout.workspace_db(ws)
            if not db.is_file():
                errors.append(f"workspace {ws!r}: no workspace at {db}")
                continue
            if ws not in known:
                errors.append(f"workspace {ws!r}: PostgreSQL has no documents for it")
            files = WorkspaceFiles(db, options.key)
            try:
                # the file's checksums are computed here while PostgreSQL computes its side
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="clawfs-checksums") as pool:
                    ours = pool.submit(_file_checksums, files)
                    evidence = gather_evidence(source, ws, options.sample)
                check = check_workspace(source, evidence, files, ws, options, ours.result())
            finally:
                files.close()
            checks.append(check)
            errors += [f"workspace {ws!r}: {e}" for e in check.errors]
            progress.advance("verify", 1)
        identities = 0
        if options.identities:
            identities, identity_errors = check_identities(source, layout)
            errors += identity_errors
        info = source.info
    progress.finish("verify")
    return VerificationReport(
        source=info.location,
        snapshot={"wal_lsn": info.snapshot_lsn, "snapshot": info.snapshot_xmin},
        workspaces=tuple(checks),
        identities_checked=identities,
        errors=tuple(errors),
        seconds=time.perf_counter() - started,
    )


def _file_checksums(files: WorkspaceFiles) -> dict[str, dict[int, RangeSum]]:
    return {table: files.range_checksums(table) for table in CHECKSUM_TABLES}


def workspaces_on_disk(layout: Layout) -> set[str]:
    """The ids of the workspaces under a root (from their directory names)."""
    folder = layout.root / "workspaces"
    if not folder.is_dir():
        return set()
    out = set()
    for entry in os.listdir(folder):
        if entry.startswith(".") or not (folder / entry / "workspace.db").is_file():
            continue
        try:
            out.add(decode_id(entry))
        except UnicodeDecodeError:
            out.add(entry)
    return out
