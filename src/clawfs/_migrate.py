"""`migrate`: PostgreSQL + pgvector -> ClawFS workspaces (draft Option A), in named steps.

    plan -> documents -> vectors -> fts -> metadata -> identities -> index -> verify -> install

Everything is read from one read-only snapshot and written under temporary names; only `install`
puts finished, checked workspaces and identity files where readers look. A failure at any step
removes what the run built and leaves PostgreSQL and any existing workspace as they were.

Resuming (`--resume`). Rows are committed batch by batch, and a run that is killed, interrupted
(Ctrl-C) or loses its connection keeps its build directory under `.clawfs/tmp` with a `run.json`.
The next run with `--resume` and the same selection claims it. Its snapshot is gone with the dead
transaction, so the kept rows are compared with the new snapshot (clawfs._compare): rows changed or
deleted since are dropped, and only missing rows are copied. The HNSW index, FTS5 index, metadata
and verification are then done again over the whole build, so the result is what an uninterrupted
run from the new snapshot gives. A run killed while installing is finished from its journal.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._checksum import RangeSum, checksum_record
from ._compare import differences
from ._values import encode_id, now_text, scrub, source_label, source_secrets
from ._verify import (
    CHECKSUM_TABLES,
    SourceEvidence,
    VectorSample,
    VerifyOptions,
    WorkspaceCheck,
    check_identities_with_key,
    check_selection,
    check_workspace,
    gather_evidence,
)
from .audit import AuditLog
from .errors import (
    BadRowError,
    ClawfsError,
    SourceError,
    StepFailed,
    UsageError,
    VerificationError,
    WorkspaceError,
)
from .progress import NULL_PROGRESS, Progress
from .report import MigrationReport, SkippedRow, StepReport, WorkspaceReport
from .source import IdentityRow, Source
from .workspace import (
    DB_NAME,
    INSTALL_HINT,
    SCHEMA_VERSION,
    TARGET_ERRORS,
    HnswParams,
    IndexWorker,
    Key,
    KeyProblem,
    Layout,
    Placement,
    WorkspaceBuilder,
    WorkspaceFiles,
    check_target_free,
    encryption_available,
    finish_placement,
    identity_document,
    install_moves,
    is_encrypted,
    make_private_dir,
    metadata_entries,
    remove_path,
    remove_tree,
    store_for,
    write_private,
    write_private_temp,
)

BAD_ROW_POLICIES = ("fail", "skip")
RESUME_HINT = (
    "The rows copied so far are kept: the same command with --resume continues from them "
    "(without --resume, the next run starts over)."
)


@dataclass(frozen=True)
class MigrateOptions:
    workspaces: tuple[str, ...] = ()
    all_workspaces: bool = False
    sqlite_path: Path | None = None
    batch_size: int = 1000
    replace: bool = False
    resume: bool = False  # continue an interrupted run of the same selection, if there is one
    verify: bool = True
    identities: bool = True
    on_bad_row: str = "fail"
    hnsw: HnswParams = field(default_factory=HnswParams)
    sample: int = 100  # verification: sampled full-text queries and vectors per workspace
    min_recall: float = 0.95
    key: Key | None = None  # encrypt the workspaces with it (SQLCipher; their indexes inside them)

    def __post_init__(self) -> None:
        check_selection("migrate", self.workspaces, self.all_workspaces, self.sqlite_path)
        if self.batch_size < 1:
            raise UsageError("--batch-size must be at least 1")
        if self.on_bad_row not in BAD_ROW_POLICIES:
            raise UsageError(f"--on-bad-row must be one of {', '.join(BAD_ROW_POLICIES)}")
        VerifyOptions(workspaces=("-",), sample=self.sample, min_recall=self.min_recall)  # same bounds
        if self.key is not None and not encryption_available():
            raise UsageError(f"encrypting needs SQLCipher, which is not installed: {INSTALL_HINT}")
        check_identities_with_key(self.key, self.identities)


def migrate(
    pg_url: str | None,
    root: str | os.PathLike[str],
    options: MigrateOptions,
    progress: Progress = NULL_PROGRESS,
) -> MigrationReport:
    """Migrate the chosen workspaces of an IronClaw store into the ClawFS root `root`."""
    return _Migration(pg_url, Path(root), options, progress).run()


class _Migration:
    def __init__(self, pg_url: str | None, root: Path, options: MigrateOptions, progress: Progress) -> None:
        self.pg_url = pg_url
        self.options = options
        self.progress = progress
        self.layout = Layout(root)
        self.run_id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self.secrets = source_secrets(pg_url)
        self.audit = AuditLog(
            self.layout.audit_log,
            self.run_id,
            "migrate",
            source_label(pg_url),
            creates_root=True,
        )
        self.steps: list[StepReport] = []
        self.skipped: list[SkippedRow] = []
        self.notes: list[str] = []
        self.builders: list[WorkspaceBuilder] = []
        self.workspaces: list[str] = []
        self.expected: dict[str, tuple[int, int]] = {}
        self.identities: list[tuple[Path, bytes]] = []
        self.checksums: dict[str, dict[str, dict[int, RangeSum]]] = {}
        self.background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clawfs-verify")
        self.evidence: Future[dict[str, SourceEvidence]] = Future()
        self.vector_samples: list[VectorSample] = []  # per builder: verification's exact neighbours, fed by the copy
        self.feeding: list[Future[None]] = []
        self.verification: list[WorkspaceCheck] = []
        self.worker: IndexWorker | None = None
        self.step = ""
        self.claimed: dict[str, Any] | None = None  # the interrupted run this one continues

    # -- the pipeline ---------------------------------------------------------------------

    def run(self) -> MigrationReport:
        started = time.perf_counter()
        self.audit.record("start", options=_options_for_audit(self.options))
        claimed = self.claimed = self._claim_interrupted_run() if self.options.resume else None
        if claimed is not None and self._journal().exists():
            return self._finish_interrupted_install(started, claimed)
        try:
            with Source(self.pg_url) as source:
                self.source = source
                self._step("plan", lambda: self._plan(claimed))
                self._step("documents", self._copy_documents)
                self._step("vectors", self._copy_vectors)
                if self.options.verify:
                    self._start_gathering_evidence()
                self._step("fts", self._rebuild_fts)
                self._step("metadata", self._write_metadata)
                if self.options.identities:
                    self._step("identities", self._prepare_identities)
                self._step("index", self._build_index)
                if self.options.verify:
                    self._step("verify", self._verify)
            self._step("install", self._install)
        except BaseException as e:
            kept = self._resumable(e)
            self._keep() if kept else self._discard()
            error = scrub(str(e) or type(e).__name__, self.secrets)
            self.audit.record("end", result="failed", error=error, kept_for_resume=kept)
            if kept and isinstance(e, KeyboardInterrupt):
                raise KeyboardInterrupt(RESUME_HINT) from e
            raise
        self.background.shutdown(wait=True)
        report = self._report(time.perf_counter() - started)
        self.audit.record("end", result="ok", seconds=round(report.seconds, 3))
        return report

    def _step(self, name: str, action: Callable[[], tuple[int, int]]) -> None:
        self.step = name
        started = time.perf_counter()
        waited_before = self.worker.wait_seconds if self.worker is not None else 0.0
        try:
            rows, nbytes = action()
        except BaseException as e:
            self.audit.record(name, result="failed", error=scrub(f"{type(e).__name__}: {e}", self.secrets))
            if isinstance(e, ClawfsError):
                raise StepFailed(name, e, self._left_behind(e)) from e
            if isinstance(e, TARGET_ERRORS):
                raise StepFailed(name, WorkspaceError(str(e)), self._left_behind(e)) from e
            raise
        finally:
            self.progress.finish(name)
        waited = self.worker.wait_seconds - waited_before if self.worker is not None else 0.0
        report = StepReport(name, rows, nbytes, time.perf_counter() - started, waited)
        self.steps.append(report)
        self.audit.record(name, result="ok", rows=rows, bytes=nbytes, seconds=round(report.seconds, 3))

    def _left_behind(self, error: BaseException) -> str:
        nothing = "No workspace or identity file was created or changed, and PostgreSQL was not changed."
        if self._resumable(error):
            return f"{nothing} {RESUME_HINT}"
        return nothing

    def _resumable(self, error: BaseException) -> bool:
        """An interruption (Ctrl-C, a lost connection) before install keeps the build for `--resume`; so
        does any failure of a resumed run before it has opened the builds it claimed."""
        if self.claimed is not None and not self.builders:
            return True
        interrupted = isinstance(error, KeyboardInterrupt) or (isinstance(error, SourceError) and error.connection_lost)
        if isinstance(error, StepFailed):
            interrupted = isinstance(error.cause, SourceError) and error.cause.connection_lost
        return interrupted and bool(self.builders) and self.step != "install"

    def _keep(self) -> None:
        self.evidence.cancel()
        self.background.shutdown(wait=True)
        if self.worker is not None:
            self.worker.close()
        for builder in self.builders:
            builder.keep()
        if self.builders:
            self._write_run_record(ended=True)  # claimable now, even by this same process
        elif self.claimed is not None:  # failed before opening what it claimed: hand it on untouched
            write_private(self._run_dir() / "run.json", json.dumps({**self.claimed, "ended": True}).encode())

    def _discard(self) -> None:
        self.evidence.cancel()
        self.background.shutdown(wait=True)
        if self.worker is not None:
            self.worker.close()
        for builder in self.builders:
            builder.discard()
        remove_tree(self._run_dir())

    def _run_dir(self) -> Path:
        return self.layout.tmp_dir / f"run-{self.run_id}"

    def _on_bad_row(self, error: BadRowError) -> None:
        if self.options.on_bad_row == "fail":
            raise error
        self.skipped.append(SkippedRow(error.table, error.row_id, error.reason))
        self.audit.record("skip", table=error.table, id=error.row_id, reason=error.reason)

    # -- steps (each returns rows, bytes) --------------------------------------------------

    def _plan(self, claimed: dict[str, Any] | None) -> tuple[int, int]:
        info = self.source.info
        known = self.source.workspace_ids()
        if self.options.all_workspaces:
            self.workspaces = known
            for doc_id in self.source.documents_without_workspace():
                self._on_bad_row(BadRowError("documents", doc_id, "workspace_id is NULL"))
        else:
            unknown = [w for w in self.options.workspaces if w not in set(known)]
            if unknown:
                raise UsageError(
                    f"workspace {', '.join(map(repr, unknown))} has no documents in {info.location} "
                    f"(it has {len(known)} workspace(s){': ' + ', '.join(map(repr, known[:10])) if known else ''})"
                )
            self.workspaces = list(dict.fromkeys(self.options.workspaces))
        for table in info.tables_missing:
            self.notes.append(f"optional table {table} is missing in the source: nothing to migrate from it")
        if info.extra_tables:
            self.notes.append(f"tables not migrated (not part of an IronClaw store): {', '.join(info.extra_tables)}")
        for table, columns in info.extra_columns.items():
            self.notes.append(f"columns of {table} not migrated: {', '.join(columns)}")
        if "updated_at" in self.source.tables.get("documents", {}):
            self.notes.append("documents.updated_at is not part of a workspace (spec §3.1) and was not copied")
        if not self.workspaces:
            self.notes.append("the source has no documents: no workspace was created")
        self.expected = self.source.counts(self.workspaces)
        targets = [self._target_db(ws) for ws in self.workspaces]
        for ws, target in zip(self.workspaces, targets, strict=True):
            check_target_free(target, self.options.replace, ws)
        self._remove_abandoned_runs()
        if self.options.verify:
            self.vector_samples = [VectorSample.draw(self.source, ws, self.options.sample) for ws in self.workspaces]
        self.worker = IndexWorker()
        kept_builds = {ws: Path(path) for ws, path in (claimed or {}).get("builds", {}).items()}
        for ws, target in zip(self.workspaces, targets, strict=True):
            kept = kept_builds.get(ws)
            build_dir = kept_builds.pop(ws, None) or (
                self._run_dir() / encode_id(ws)
                if self.options.sqlite_path is None
                else target.parent / f".{target.name}.clawfs-build-{self.run_id}"
            )
            builder = WorkspaceBuilder(
                ws,
                target,
                build_dir,
                info.dimension,
                self.options.hnsw,
                self.worker,
                resume=claimed is not None,
                key=self.options.key,
            )
            self.builders.append(builder)
            if kept is not None and not builder.resumed:
                self.notes.append(
                    f"workspace {ws!r}: the interrupted run's build could not be used (damaged, or encrypted with "
                    "another key, or not encrypted like this run): it was built anew"
                )
            if builder.resumed:
                self.notes.append(
                    f"workspace {ws!r}: {builder.documents} documents and {builder.vectors} vectors kept from "
                    "the interrupted run; its snapshot ended with it, so they were compared with this run's"
                )
        for leftover in kept_builds.values():  # workspaces no longer selected (gone from PostgreSQL)
            remove_tree(leftover)
        self._write_run_record()
        return len(self.workspaces), 0

    # -- resuming ---------------------------------------------------------------------------

    def _selection(self) -> dict[str, Any]:
        """What a run migrates; `--resume` continues only a run of the same selection."""
        return {
            "workspaces": list(dict.fromkeys(self.options.workspaces)),
            "all_workspaces": self.options.all_workspaces,
            "sqlite_path": str(self.options.sqlite_path.resolve()) if self.options.sqlite_path else None,
            **({"encrypted": True} if self.options.key is not None else {}),
        }

    def _write_run_record(self, ended: bool = False) -> None:
        record = {
            "run_id": self.run_id,
            "ended": ended,
            "selection": self._selection(),
            "builds": {b.workspace_id: str(b.build_dir) for b in self.builders},
        }
        path = make_private_dir(self._run_dir()) / "run.json"
        write_private(path, json.dumps(record).encode())

    def _journal(self) -> Path:
        return self._run_dir() / "install.json"

    def _claim_interrupted_run(self) -> dict[str, Any] | None:
        """Take over the build of a dead run of the same selection (renamed to this run's id)."""
        tmp = self.layout.tmp_dir
        found = []
        for entry in tmp.iterdir() if tmp.is_dir() else ():
            pid = entry.name.removeprefix("run-").split("-", 1)[0]
            if not entry.name.startswith("run-") or not pid.isdigit():
                continue
            record = _run_record(entry)
            if record.get("selection") != self._selection():
                continue
            if _alive(int(pid)) and not record.get("ended"):
                continue  # still running
            if not (entry / "install.json").exists() and not self._builds_of(entry):
                remove_tree(entry)  # a run that finished but was killed before it had cleaned up
                continue
            found.append((entry.stat().st_mtime_ns, entry, record))
        for _, entry, record in sorted(found, key=lambda f: f[0], reverse=True):
            run_id = f"{os.getpid()}-{entry.name.split('-', 2)[2]}"
            try:
                os.rename(entry, tmp / f"run-{run_id}")
            except OSError:
                continue  # another run claimed it first
            return self._adopt(entry, record, run_id)
        self.notes.append("nothing to resume for this selection: started a new migration")
        return None

    def _builds_of(self, run_dir: Path) -> list[Path]:
        """The build directories a run left (found by the run's own suffix, which a claim keeps)."""
        builds = [db.parent for db in run_dir.rglob(DB_NAME)]
        if self.options.sqlite_path is not None:
            target = self.options.sqlite_path.resolve()
            suffix = run_dir.name.split("-", 2)[2]
            builds += [d for d in target.parent.glob(f".{target.name}.clawfs-build-*-{suffix}") if d.is_dir()]
        return builds

    def _adopt(self, entry: Path, record: dict[str, Any], run_id: str) -> dict[str, Any]:
        """Make the claimed run (renamed from `entry`) this run: its paths, journal and record follow."""
        old_id, self.run_id = record["run_id"], run_id

        def moved(path: str) -> str:
            """Where a path of the interrupted run is now."""
            kept = Path(path)
            if kept.is_relative_to(entry):
                return str(self._run_dir() / kept.relative_to(entry))
            return re.sub(r"\.clawfs-build-\d+-", f".clawfs-build-{os.getpid()}-", path)  # beside the target

        builds = {ws: moved(path) for ws, path in record["builds"].items()}
        for beside in self._builds_of(entry):  # --sqlite-path: the build sits beside the target file
            if not beside.is_relative_to(entry):
                os.rename(beside, moved(str(beside)))
        journal = self._journal()
        if journal.exists():
            plan = json.loads(journal.read_text())
            plan["moves"] = [[moved(new) if new else None, final] for new, final in plan["moves"]]
            write_private(journal, json.dumps(plan).encode())
        record = {**record, "builds": builds, "run_id": run_id, "ended": False}
        write_private(self._run_dir() / "run.json", json.dumps(record).encode())  # claimed, even if killed now
        self.audit.record("resume", interrupted_run=old_id)
        return record

    def _finish_interrupted_install(self, started: float, claimed: dict[str, Any]) -> MigrationReport:
        """The interrupted run had checked everything and begun renaming it into place: finish that."""
        self.step = "install"
        try:
            record = finish_placement(self._journal())
        except (OSError, ValueError, KeyError, ClawfsError) as e:
            error = e if isinstance(e, ClawfsError) else WorkspaceError(f"{self._journal()}: {e}")
            self.audit.record("end", result="failed", error=str(error))
            raise StepFailed("install", error, "The interrupted run's build is kept; nothing else changed.") from e
        for build in claimed["builds"].values():
            remove_tree(Path(build))  # empty by now, or never moved (a build directory is moved whole)
        remove_tree(self._run_dir())
        unlike = [f"{w['database']} {problem}" for w in record["workspaces"] if (problem := self._unlike(w))]
        if unlike:
            error = WorkspaceError(
                f"the interrupted run's verified workspaces are installed, but {'; '.join(unlike)}: open them as that "
                "run was told (its key, or none), or migrate again with --replace"
            )
            self.audit.record("end", result="failed", error=str(error))
            raise error
        seconds = time.perf_counter() - started
        report = MigrationReport(
            source=record["source"],
            snapshot=record["snapshot"],
            steps=(StepReport("install", len(record["moves"]), 0, seconds),),
            workspaces=tuple(WorkspaceReport(**w) for w in record["workspaces"]),
            identities=tuple(record["identities"]),
            skipped=(),
            notes=(
                "the interrupted run had verified its workspaces and was installing them: "
                "this run finished that; they hold PostgreSQL as of that run's snapshot (clawfs sync catches up)",
            ),
            hnsw=record["hnsw"],
            seconds=seconds,
            verified=record["verified"],
            run_id=self.run_id,
            encrypted=bool(record.get("encrypted")),
        )
        self.audit.record("end", result="ok", seconds=round(seconds, 3), finished_interrupted_install=True)
        return report

    def _unlike(self, workspace: dict[str, Any]) -> str:
        """How an installed workspace is not what this run asks for ("" when it is): encrypted, and opening
        with this run's key, or plain."""
        database = Path(workspace["database"])
        if is_encrypted(database) != (self.options.key is not None):
            return "is encrypted" if self.options.key is None else "is not encrypted"
        try:
            WorkspaceFiles(database, self.options.key).close()
        except KeyProblem:
            return "does not open with this key"
        return ""

    def _target_db(self, workspace_id: str) -> Path:
        if self.options.sqlite_path is not None:
            return self.options.sqlite_path.resolve()
        return self.layout.workspace_db(workspace_id)

    def _remove_abandoned_runs(self) -> None:
        """Build directories of runs that ended without finishing (killed, interrupted) are garbage to a
        run that was not asked to `--resume`: remove them. One killed while renaming its verified
        workspaces into place is finished first, so that no old workspace is left set aside."""
        places = [(self.layout.tmp_dir, "run-")]
        if self.options.sqlite_path is not None:
            target = self._target_db(self.workspaces[0])
            places.append((target.parent, f".{target.name}.clawfs-build-"))
        for folder, prefix in places:
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                pid = entry.name.removeprefix(prefix).split("-", 1)[0]
                if not entry.name.startswith(prefix) or not pid.isdigit() or entry == self._run_dir():
                    continue
                # a build beside a --sqlite-path target belongs to the run directory of the same run id
                run_dir = entry if prefix == "run-" else self.layout.tmp_dir / f"run-{entry.name.removeprefix(prefix)}"
                record = _run_record(run_dir)
                if not _alive(int(pid)) or record.get("ended"):
                    selection = record.get("selection")
                    other = isinstance(selection, dict) and selection != self._selection()
                    if self.options.resume and other and not (run_dir / "install.json").exists():
                        continue  # another selection's interrupted run: its own --resume continues it
                    # (one that was installing is finished whatever its selection: its old workspaces are set aside)
                    if (entry / "install.json").exists():  # verified and half renamed into place: finish that
                        finish_placement(entry / "install.json")
                        self.notes.append(f"finished installing the workspaces of an interrupted run ({entry.name})")
                    elif (entry / "run.json").exists() and not self.options.resume:
                        self.notes.append(
                            f"removed the build of an interrupted run ({entry.name}): --resume continues one"
                        )
                    remove_tree(entry)

    def _reads(self, table: str) -> list[tuple[list[str], list[int] | None]]:
        """What to copy of `table`: (workspaces, None) for whole workspaces, (workspaces, ids) for the rows
        that resumed builds lack. Kept rows that PostgreSQL changed or deleted since are dropped first."""
        whole: list[str] = []
        partial: list[str] = []
        ids: list[int] = []
        for builder in self.builders:
            ws = builder.workspace_id
            if not builder.resumed or (builder.documents if table == "documents" else builder.vectors) == 0:
                whole.append(ws)
                continue
            theirs = self.source.range_checksums(table, ws)
            upsert, delete, new = differences(self.source, builder, ws, table, theirs)
            builder.delete_rows(table, delete | (upsert - new))
            self.audit.record(
                "resume", workspace=ws, table=table, missing=len(new), changed=len(upsert - new), deleted=len(delete)
            )
            partial.append(ws)
            ids += sorted(upsert)
        return [(whole, None)] * bool(whole) + [(partial, ids)] * bool(ids)

    def _copy_documents(self) -> tuple[int, int]:
        reads = self._reads("documents")
        position = {ws: i for i, ws in enumerate(self.workspaces)}
        pending: list[list[Any]] = [[] for _ in self.workspaces]
        total = sum(self.expected[ws][0] for ws in self.workspaces) - sum(b.documents for b in self.builders)
        self.progress.start("documents", total)
        rows = nbytes = 0
        batch = self.options.batch_size
        for workspaces, ids in reads:
            for row in self.source.read_documents(workspaces, self._on_bad_row, ids=ids):
                i = position[row[1]]
                pending[i].append(row)
                nbytes += len(row[2].encode()) + (len(row[3]) if row[3] else 0)
                rows += 1
                if len(pending[i]) >= batch:
                    self.builders[i].add_documents(pending[i])
                    self.progress.advance("documents", len(pending[i]))
                    pending[i] = []
        for builder, rest in zip(self.builders, pending, strict=True):
            if rest:
                builder.add_documents(rest)
                self.progress.advance("documents", len(rest))
        return rows, nbytes

    def _copy_vectors(self) -> tuple[int, int]:
        reads = self._reads("vectors")
        for i, builder in enumerate(self.builders):  # kept vectors go into the new index (and the sample)
            for ids, embeddings in builder.stored_vectors(self.options.batch_size):
                if self.vector_samples:
                    self._feed_sample(self.vector_samples[i], ids, embeddings)
        position = {ws: i for i, ws in enumerate(self.workspaces)}
        total = sum(self.expected[ws][1] for ws in self.workspaces) - sum(b.vectors for b in self.builders)
        self.progress.start("vectors", total)
        rows = nbytes = 0
        skipped_documents = {s.id for s in self.skipped if s.table == "documents"}
        for workspaces, only in reads:
            for batch in self.source.read_vectors(
                workspaces,
                self.options.batch_size,
                self._on_bad_row,
                include_orphans=self.options.all_workspaces and only is None,
                ids=only,
            ):
                ids, docs, embeddings, created = batch.ids, batch.document_ids, batch.embeddings, batch.created_at
                if skipped_documents:
                    keep = [i for i, d in enumerate(docs.tolist()) if d not in skipped_documents]
                    for i in set(range(len(ids))) - set(keep):
                        self._on_bad_row(
                            BadRowError("vectors", int(ids[i]), f"its document {int(docs[i])} was skipped")
                        )
                    ids, docs, embeddings = ids[keep], docs[keep], embeddings[keep]
                    created = [created[i] for i in keep]
                i = position[workspaces[batch.workspace]]
                self.builders[i].add_vectors(ids, docs, embeddings, created)
                if self.vector_samples:
                    self._feed_sample(self.vector_samples[i], ids, embeddings)
                rows += len(ids)
                self.progress.advance("vectors", len(ids), embeddings.nbytes)
            nbytes += self.source.vector_bytes_read if self.source.info.dimension else 0
        return rows, nbytes

    def _feed_sample(self, sample: VectorSample, ids: Any, embeddings: Any) -> None:
        """Verification's exact-neighbour pass runs on the background thread, a few batches behind."""
        self.feeding = [f for f in self.feeding if not f.done()]
        if len(self.feeding) >= 4:
            self.feeding.pop(0).result()
        self.feeding.append(self.background.submit(sample.add, ids, embeddings))

    def _rebuild_fts(self) -> tuple[int, int]:
        self.progress.start("fts", sum(b.documents for b in self.builders))
        for builder in self.builders:
            builder.rebuild_fts()
            self.progress.advance("fts", builder.documents)
        return sum(b.documents for b in self.builders), 0

    def _build_index(self) -> tuple[int, int]:
        """Wait for the HNSW index worker, save each index, record its stamp in metadata."""
        vectors = sum(b.vectors for b in self.builders)
        self.progress.start("index", vectors)
        assert self.worker is not None
        self.worker.join()
        nbytes = 0
        for builder in self.builders:
            stamp = builder.save_index()
            builder.write_metadata(metadata_entries({"hnsw_index": stamp.as_dict()}))
            nbytes += stamp.bytes
            self.progress.advance("index", builder.vectors)
        return vectors, nbytes

    def _start_gathering_evidence(self) -> None:
        """PostgreSQL's side of verification (checksums, sampled search answers) is gathered on a
        second connection in the same snapshot while the pipeline goes on and the index builds."""
        for feeding in self.feeding:
            feeding.result()  # the exact-neighbour pass is complete (and raised nothing)
        snapshot = self.source.export_snapshot()
        workspaces = list(self.workspaces)
        sample = self.options.sample
        skipped = {s.id for s in self.skipped if s.table == "vectors"}

        samples = self.vector_samples

        def gather() -> dict[str, SourceEvidence]:
            with Source(self.pg_url, snapshot=snapshot) as other:
                return {
                    ws: gather_evidence(other, ws, sample, skipped, vector_sample)
                    for ws, vector_sample in zip(workspaces, samples, strict=True)
                }

        self.evidence = self.background.submit(gather)

    def _write_metadata(self) -> tuple[int, int]:
        info = self.source.info
        source_rows = self.source.read_metadata()
        source_keys = {k for k, _ in source_rows}
        for builder in self.builders:
            ours: dict[str, object] = {
                "vector_dimension": info.dimension,
                **self.options.hnsw.metadata(),
                "workspace_id": builder.workspace_id,
                "schema_version": SCHEMA_VERSION,
                "migrated_at": now_text(),
                "source": {"host": info.host, "port": info.port, "database": info.database},
                "source_snapshot": info.snapshot_record(),
                "document_count": builder.documents,
                "vector_count": builder.vectors,
                "checksums": self._record_checksums(builder),
            }
            if "embedding_model" not in source_keys:
                ours["embedding_model"] = None
            builder.write_metadata(source_rows)
            builder.write_metadata(metadata_entries(ours))
        return len(source_rows), 0

    def _record_checksums(self, builder: WorkspaceBuilder) -> dict[str, object]:
        """Per-table checksums of the written file (clawfs._checksum), kept for verify to compare."""
        ranges = {table: builder.range_checksums(table) for table in CHECKSUM_TABLES}
        self.checksums[builder.workspace_id] = ranges
        return checksum_record(ranges)

    def _prepare_identities(self) -> tuple[int, int]:
        rows: list[IdentityRow] = self.source.read_identities(self._on_bad_row)
        nbytes = 0
        for row in rows:
            try:
                data = identity_bytes(row)
            except ValueError as e:
                self._on_bad_row(BadRowError("agent_identities", row.agent_id, str(e)))
                continue
            path = self.layout.agent_file(row.agent_id)
            if path.exists() and path.read_bytes() != data and not self.options.replace:
                raise WorkspaceError(f"identity file {path} exists with other content; use --replace to overwrite it")
            self.identities.append((path, data))
            nbytes += len(data)
        return len(self.identities), nbytes

    def _verify(self) -> tuple[int, int]:
        """The finished files against the snapshot, exactly as `clawfs verify` checks them."""
        evidence = self.evidence.result()
        options = VerifyOptions(
            workspaces=tuple(self.workspaces), sample=self.options.sample, min_recall=self.options.min_recall
        )
        skipped = {t: {s.id for s in self.skipped if s.table == t} for t in CHECKSUM_TABLES}
        problems = []
        for builder in self.builders:
            builder.close()
            ws = builder.workspace_id
            files = WorkspaceFiles(builder.db_path, self.options.key)
            try:
                check = check_workspace(self.source, evidence[ws], files, ws, options, self.checksums[ws], skipped)
            finally:
                files.close()
            self.verification.append(check)
            problems += [f"workspace {ws!r}: {p}" for p in check.errors]
        if problems:
            raise VerificationError("; ".join(problems))
        return sum(b.documents + b.vectors for b in self.builders), 0

    def _install(self) -> tuple[int, int]:
        """Everything into place or nothing: identity files are staged first, then all is renamed."""
        for builder in self.builders:
            check_target_free(builder.target_db, self.options.replace, builder.workspace_id)
            builder.close()
        placement = Placement(self.run_id, journal=self._journal())
        staged: list[Path] = []
        try:
            for path, data in self.identities:  # staged in the run directory: a killed run leaves none about
                stage = make_private_dir(self._run_dir() / "agents" / path.parent.name) / path.name
                staged.append(write_private_temp(stage, data))
            moves = [m for b in self.builders for m in install_moves(b, self.options.sqlite_path is None)]
            moves += [(tmp, path) for tmp, (path, _) in zip(staged, self.identities, strict=True)]
            placement.put_all(moves, record=self._install_record())
        except BaseException:
            placement.rollback()
            for leftover in staged:
                remove_path(leftover)
            raise
        placement.commit()
        for builder in self.builders:
            remove_tree(builder.build_dir)  # empty by now (or already renamed into place)
        remove_tree(self._run_dir())
        return len(self.builders) + len(self.identities), sum(b.bytes_written for b in self.builders)

    def _install_record(self) -> dict[str, Any]:
        """What `--resume` reports if it has to finish this install."""
        return {
            "source": self.source.info.location,
            "snapshot": {"wal_lsn": self.source.info.snapshot_lsn, "snapshot": self.source.info.snapshot_xmin},
            "workspaces": [vars(w) for w in self._workspace_reports()],
            "identities": [str(p) for p, _ in self.identities],
            "hnsw": self.options.hnsw.metadata(),
            "verified": self.options.verify,
            "encrypted": self.options.key is not None,
        }

    def _workspace_reports(self) -> tuple[WorkspaceReport, ...]:
        return tuple(
            WorkspaceReport(
                workspace_id=b.workspace_id,
                database=str(b.target_db),
                index=str(store_for(b.target_db, b.key is not None)),
                documents=b.documents,
                vectors=b.vectors,
                dimension=self.source.info.dimension,
            )
            for b in self.builders
        )

    def _report(self, seconds: float) -> MigrationReport:
        info = self.source.info
        workspaces = self._workspace_reports()
        return MigrationReport(
            source=info.location,
            snapshot={"wal_lsn": info.snapshot_lsn, "snapshot": info.snapshot_xmin},
            steps=tuple(self.steps),
            workspaces=workspaces,
            identities=tuple(str(p) for p, _ in self.identities),
            skipped=tuple(self.skipped),
            notes=tuple(self.notes),
            hnsw=self.options.hnsw.metadata(),
            seconds=seconds,
            verified=self.options.verify,
            run_id=self.run_id,
            checks=tuple(self.verification),
            encrypted=self.options.key is not None,
        )


def identity_bytes(row: IdentityRow) -> bytes:
    """The identity file of one `agent_identities` row (DESIGN §2.4); ValueError if it cannot be one."""
    return identity_document(
        agent_id=row.agent_id,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        state=row.state,
        memory=row.memory,
        history=row.history,
        performance=row.performance,
        checksum=row.checksum,
    )


def _alive(pid: int) -> bool:
    """Whether a process runs with that pid (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal test is all there is
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _run_record(run_dir: Path) -> dict[str, Any]:
    """The run's `run.json` (empty when it has none, or an unreadable one)."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _options_for_audit(options: MigrateOptions) -> dict[str, Any]:
    data = {k: v for k, v in vars(options).items() if k != "hnsw"}
    data["sqlite_path"] = str(options.sqlite_path) if options.sqlite_path else None
    data["hnsw"] = options.hnsw.metadata()
    return data
