"""The `clawfs` command line: each command parses its arguments, calls one library function and
renders the report it returns. Errors become one line and the documented exit code (DESIGN §4)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from ._console import LiveProgress, json_default, migration_tables, setup_logging, sync_table, verification_tables
from ._cutover import CutoverOptions, cutover
from ._migrate import BAD_ROW_POLICIES, MigrateOptions, migrate
from ._sync import SyncOptions, SyncReport, sync
from ._sync import follow as run_follow
from ._sync_setup import sync_setup, sync_teardown
from ._values import scrub, source_label, url_password
from ._verify import VerifyOptions, check_selection, verify, workspaces_on_disk
from .audit import AuditLog, run_id
from .demo import run_demo
from .errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_VERIFICATION,
    ClawfsError,
    UsageError,
    WorkspaceError,
    exit_code,
)
from .workspace import (
    DEFAULT_DTYPE,
    DTYPES,
    SQLITE_ERRORS,
    Hit,
    HnswParams,
    Key,
    Layout,
    Workspace,
    WorkspaceFiles,
    backup,
    is_encrypted,
    rekey,
    restore,
)

F = TypeVar("F", bound=Callable[..., Any])
stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def common_options(f: F) -> F:
    """-v/--verbose, --json and --root, on every command (DESIGN §4); and its line in the audit log."""
    f = audited(f)
    f = click.option(
        "--root",
        type=click.Path(path_type=Path),
        envvar="CLAWFS_ROOT",
        default=Path("clawfs"),
        show_default="./clawfs or $CLAWFS_ROOT",
        help="The ClawFS root directory.",
    )(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")(f)
    f = click.option("-v", "--verbose", is_flag=True, help="More log lines; tracebacks on errors.")(f)
    return f


# Options whose values are the user's data or secrets, not settings: the audit log says only that they were given.
PRIVATE_OPTIONS = ("text", "vector", "key", "new_key")
KEY_ENV, NEW_KEY_ENV = "CLAWFS_KEY", "CLAWFS_NEW_KEY"
_key_secrets: list[str] = []  # every key this process read: scrubbed from anything it prints
# clawfs never writes a key into a message; scrubbing is a second line of defence. A short key (a word)
# is left alone: its `***` in ordinary text ("no *** database") would give it away.
SCRUBBED_KEY_LENGTH = 12


def audited(f: F) -> F:
    """Add one `command` line to the root's audit log when the command ends: who ran what against which
    source, and the result (the root must exist by then: a mistyped --root is not created for it)."""

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if ctx.invoked_subcommand is not None:
            return f(*args, **kwargs)  # a group (`sync`) handing over to its subcommand, which records
        started = time.monotonic()
        try:
            result = f(*args, **kwargs)
        except BaseException as e:
            _audit(ctx, kwargs, started, exit_code(e), e)
            raise
        _audit(ctx, kwargs, started, result if isinstance(result, int) else EXIT_OK, None)
        return result

    return cast(F, run)


def _audit(ctx: click.Context, params: dict[str, Any], started: float, code: int, error: BaseException | None) -> None:
    root = params.get("root")
    if not isinstance(root, Path) or not root.is_dir():
        return
    secrets = [url_password(params.get("pg_url") or ""), *_secrets([])]
    options = {
        name: ("(given)" if name in PRIVATE_OPTIONS else str(value) if isinstance(value, Path) else value)
        for name, value in params.items()
        if name not in ("pg_url", "root", "as_json", "verbose") and value not in (None, (), False)
    }
    fields: dict[str, Any] = {"options": options, "result": "ok" if code == EXIT_OK else "failed", "exit_code": code}
    fields["seconds"] = round(time.monotonic() - started, 3)
    if error is not None:
        fields["error"] = scrub(f"{type(error).__name__}: {error}", secrets)
    source = source_label(params["pg_url"]) if "pg_url" in params else None
    command = ctx.command_path.removeprefix(f"{ctx.find_root().info_name} ")
    with contextlib.suppress(OSError):  # the audit line must never turn a result into a failure
        AuditLog(Layout(root).audit_log, run_id(), command, source).record("command", **fields)


def pg_url_option(f: F) -> F:
    return click.option(
        "--pg-url",
        envvar="CLAWFS_PG_URL",
        default=None,
        metavar="URL",
        help="PostgreSQL connection URL (or $CLAWFS_PG_URL; libpq's PGHOST, PGPASSWORD... work too).",
    )(f)


def key_file_option(flag: str, name: str, env: str, what: str) -> Callable[[F], F]:
    """`flag FILE`, else $`env`: a key (never a command-line value), passed as `name` (a Key or None)."""
    return click.option(
        flag,
        name,
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        metavar="FILE",
        callback=functools.partial(_read_key, env),
        help=f"{what}, read from FILE [default: ${env}].",
    )


def _read_key(env: str, ctx: click.Context, param: click.Parameter, path: Path | None) -> Key | None:
    """A key from its file (warning when others may read it) or from the environment; None when neither."""
    if path is not None:
        key = Key.from_file(path)
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o077:
                print(f"clawfs: warning: other users may read the key file {path}: chmod 600 it", file=sys.stderr)
    elif secret := os.environ.get(env):
        key = Key(secret, f"the key in ${env}")
    else:
        return None
    if len(key.secret_for_scrubbing()) >= SCRUBBED_KEY_LENGTH:
        _key_secrets.append(key.secret_for_scrubbing())
    return key


key_option = key_file_option("--key-file", "key", KEY_ENV, "The encryption key of encrypted workspaces")


def selection_options(verb: str, all_help: str, sqlite_help: str | None = None) -> Callable[[F], F]:
    """--workspace-id (repeatable), --all-workspaces and (with `sqlite_help`) --sqlite-path."""

    def decorate(f: F) -> F:
        if sqlite_help is not None:
            f = click.option(
                "--sqlite-path", type=click.Path(path_type=Path), default=None, metavar="FILE", help=sqlite_help
            )(f)
        f = click.option("--all-workspaces", is_flag=True, help=all_help)(f)
        return click.option(
            "--workspace-id", "workspace_ids", multiple=True, metavar="ID", help=f"A workspace to {verb} (repeatable)."
        )(f)

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="clawfs")
def cli() -> None:
    """Move an agent's memory from PostgreSQL + pgvector into ClawFS, and search it."""


@cli.command("migrate")
@pg_url_option
@selection_options(
    "migrate",
    "Migrate every workspace of the source.",
    "Write the one workspace to this database file (its index goes beside it).",
)
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Rows per write batch.")
@click.option(
    "--replace",
    is_flag=True,
    help="Rebuild workspaces that exist (the old one stays until the new is complete).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run of the same selection from its last committed batch (else start anew).",
)
@click.option("--no-verify", is_flag=True, help="Skip the verification before the workspace is put in place.")
@click.option("--no-identities", is_flag=True, help="Do not write agent identity files.")
@click.option(
    "--on-bad-row",
    type=click.Choice(BAD_ROW_POLICIES),
    default="fail",
    show_default=True,
    help="Stop at a row that cannot be carried over exactly, or skip it and list it in the report.",
)
@click.option("--hnsw-m", type=int, default=16, show_default=True, help="HNSW connectivity (M).")
@click.option("--hnsw-ef-construction", type=int, default=200, show_default=True, help="HNSW expansion when adding.")
@click.option("--hnsw-ef-search", type=int, default=50, show_default=True, help="HNSW expansion when searching.")
@click.option(
    "--hnsw-dtype",
    type=click.Choice(DTYPES),
    default=DEFAULT_DTYPE,
    show_default=True,
    help="Scalar type the HNSW index stores vectors in.",
)
@click.option(
    "--encrypt",
    is_flag=True,
    help=f"Encrypt the workspaces (SQLCipher; the HNSW index inside them) with --key-file or ${KEY_ENV}.",
)
@key_option
@click.option("--log-file", type=click.Path(dir_okay=False), default=None, help="Also append log lines to FILE.")
@common_options
def migrate_command(
    pg_url: str | None,
    workspace_ids: tuple[str, ...],
    all_workspaces: bool,
    sqlite_path: Path | None,
    batch_size: int,
    replace: bool,
    resume: bool,
    no_verify: bool,
    no_identities: bool,
    on_bad_row: str,
    hnsw_m: int,
    hnsw_ef_construction: int,
    hnsw_ef_search: int,
    hnsw_dtype: str,
    encrypt: bool,
    key: Key | None,
    log_file: str | None,
    verbose: bool,
    as_json: bool,
    root: Path,
) -> None:
    """Copy workspaces from PostgreSQL + pgvector into ClawFS (read-only on PostgreSQL)."""
    setup_logging(verbose, log_file)
    if encrypt and key is None:
        raise UsageError(f"--encrypt needs a key: --key-file FILE or ${KEY_ENV}")
    if key is not None and not encrypt:
        raise UsageError(
            f"a key was given (--key-file or ${KEY_ENV}) but not --encrypt: add --encrypt to encrypt the workspaces, "
            "or give no key to write them unencrypted"
        )
    options = MigrateOptions(
        workspaces=workspace_ids,
        all_workspaces=all_workspaces,
        sqlite_path=sqlite_path,
        batch_size=batch_size,
        replace=replace,
        resume=resume,
        verify=not no_verify,
        identities=not no_identities,
        on_bad_row=on_bad_row,
        hnsw=HnswParams(m=hnsw_m, ef_construction=hnsw_ef_construction, ef_search=hnsw_ef_search, dtype=hnsw_dtype),
        key=key,
    )
    progress = LiveProgress(sys.stderr)
    try:
        report = migrate(pg_url, root, options, progress)
    finally:
        progress.close()
    if as_json:
        print(json.dumps(report.asdict(), indent=2, ensure_ascii=False, default=json_default))
    else:
        migration_tables(report, stdout)


@cli.command("verify")
@pg_url_option
@selection_options(
    "verify",
    "Verify every workspace (and find any PostgreSQL lacks).",
    "Verify this database file (one --workspace-id).",
)
@click.option(
    "--sample",
    type=int,
    default=100,
    show_default=True,
    help="Sampled full-text queries and vectors per workspace (0: none).",
)
@click.option("--min-recall", type=float, default=0.95, show_default=True, help="Lowest passing HNSW recall@10.")
@click.option(
    "--min-fts-recall",
    type=float,
    default=0.8,
    show_default=True,
    help="Lowest passing share of PostgreSQL's full-text matches that FTS5 also finds.",
)
@click.option("--no-identities", is_flag=True, help="Do not check agent identity files.")
@key_option
@common_options
def verify_command(
    pg_url: str | None,
    workspace_ids: tuple[str, ...],
    all_workspaces: bool,
    sqlite_path: Path | None,
    sample: int,
    min_recall: float,
    min_fts_recall: float,
    no_identities: bool,
    key: Key | None,
    verbose: bool,
    as_json: bool,
    root: Path,
) -> int:
    """Prove that workspaces are exact copies of their source (exit 3 when not)."""
    setup_logging(verbose, None)
    options = VerifyOptions(
        workspaces=workspace_ids,
        all_workspaces=all_workspaces,
        sqlite_path=sqlite_path,
        sample=sample,
        min_recall=min_recall,
        min_fts_recall=min_fts_recall,
        identities=not no_identities,
        key=key,
    )
    progress = LiveProgress(sys.stderr)
    try:
        report = verify(pg_url, root, options, progress)
    finally:
        progress.close()
    if as_json:
        print(json.dumps(report.asdict(), indent=2, ensure_ascii=False, default=json_default))
    else:
        verification_tables(report, stdout)
    return EXIT_OK if report.ok else EXIT_VERIFICATION


@cli.group("sync", invoke_without_command=True)
@pg_url_option
@selection_options("sync", "Sync every migrated workspace.", "Sync this database file (one --workspace-id).")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Rows per SQLite transaction.")
@click.option("--no-identities", is_flag=True, help="Do not sync agent identity files.")
@click.option(
    "--on-bad-row",
    type=click.Choice(BAD_ROW_POLICIES),
    default="fail",
    show_default=True,
    help="What to do with a bad source row: stop, or list it and leave it out.",
)
@click.option(
    "--overwrite-local-writes",
    is_flag=True,
    help="Sync workspaces written through the API since their last sync (those writes are lost).",
)
@click.option("--follow", is_flag=True, help="Keep syncing until interrupted (Ctrl-C).")
@click.option(
    "--interval",
    type=float,
    default=None,
    help="Seconds between rounds with --follow [default: 1 with a replication slot, 10 comparing].",
)
@key_option
@common_options
def sync_command(
    pg_url: str | None,
    workspace_ids: tuple[str, ...],
    all_workspaces: bool,
    sqlite_path: Path | None,
    batch_size: int,
    no_identities: bool,
    on_bad_row: str,
    overwrite_local_writes: bool,
    follow: bool,
    interval: float | None,
    key: Key | None,
    verbose: bool,
    as_json: bool,
    root: Path,
) -> None:
    """Apply what PostgreSQL changed since the migration: read from the replication slot of
    `clawfs sync setup` if there is one, else found by comparing checksums."""
    if click.get_current_context().invoked_subcommand is not None:
        return  # `sync setup` / `sync teardown`
    setup_logging(verbose, None)
    options = SyncOptions(
        workspaces=workspace_ids,
        all_workspaces=all_workspaces,
        sqlite_path=sqlite_path,
        batch_size=batch_size,
        identities=not no_identities,
        on_bad_row=on_bad_row,
        overwrite_local_writes=overwrite_local_writes,
        key=key,
    )
    if interval is not None and interval <= 0:
        raise UsageError("--interval must be positive")

    def show(report: SyncReport) -> None:
        if as_json:
            print(json.dumps(report.asdict(), ensure_ascii=False, default=json_default, indent=None if follow else 2))
        else:
            sync_table(report, stdout, brief=follow)
        sys.stdout.flush()

    if not follow:
        show(sync(pg_url, root, options))
        return
    try:
        run_follow(pg_url, root, options, interval, show)
    except KeyboardInterrupt:
        if not as_json:
            stdout.print("stopped")


@sync_command.command("setup")
@pg_url_option
@click.option(
    "--publication",
    default=None,
    metavar="NAME",
    help="Read this publication (made by the tables' owner) instead of creating one: then REPLICATION will do.",
)
@click.option("--no-identities", is_flag=True, help="Do not sync agent identity files in the first comparison.")
@key_option
@common_options
def sync_setup_command(
    pg_url: str | None,
    publication: str | None,
    no_identities: bool,
    key: Key | None,
    verbose: bool,
    as_json: bool,
    root: Path,
) -> None:
    """Create a publication and a logical replication slot (pgoutput) for this root's sync.

    Needs wal_level = logical and a role with REPLICATION that owns the tables (or, with
    --publication, a publication their owner made: then REPLICATION and SELECT will do). The slot keeps WAL
    on the server until sync reads it: remove it with `clawfs sync teardown` when done."""
    setup_logging(verbose, None)
    first = SyncOptions(all_workspaces=True, identities=not no_identities, key=key)
    report = sync_setup(pg_url, root, first, publication=publication)
    if as_json:
        print(json.dumps(report.asdict(), indent=2, ensure_ascii=False, default=json_default))
        return
    made = "replication slot" if publication else "publication and replication slot"
    stdout.print(f"{made} {report.slot!r} created for tables {', '.join(report.tables)}")
    if report.synced is not None:
        sync_table(report.synced, stdout)
    stdout.print("clawfs sync, sync --follow and cutover now read the slot; it keeps WAL on the server until they do")
    stdout.print("cutover drops it; so does: clawfs sync teardown")


@sync_command.command("teardown")
@pg_url_option
@click.option("--slot", default=None, help="Drop this slot and publication by name (when the root is lost).")
@common_options
def sync_teardown_command(pg_url: str | None, slot: str | None, verbose: bool, as_json: bool, root: Path) -> None:
    """Drop the replication slot and publication of `clawfs sync setup` (sync compares again)."""
    setup_logging(verbose, None)
    report = sync_teardown(pg_url, root, slot)
    if as_json:
        print(json.dumps(report.asdict(), indent=2, ensure_ascii=False, default=json_default))
        return
    what = [f"slot {report.slot!r}" if report.dropped_slot else f"slot {report.slot!r} (already gone)"]
    if report.publication:
        what.append(
            f"publication {report.publication!r}" if report.dropped_publication else "publication (already gone)"
        )
    stdout.print(f"dropped {' and '.join(what)}")


@cli.command("cutover")
@pg_url_option
@selection_options("cut over", "Every migrated workspace.")
@click.option(
    "--make-source-read-only",
    is_flag=True,
    help="First ALTER DATABASE ... SET default_transaction_read_only = on (needs the database owner).",
)
@click.option("--sample", type=int, default=100, show_default=True, help="Sampled searches in the verification.")
@click.option("--no-identities", is_flag=True, help="Leave agent identity files out.")
@click.option(
    "--overwrite-local-writes",
    is_flag=True,
    help="Also when workspaces were written through the API since their last sync (those writes are lost).",
)
@key_option
@common_options
def cutover_command(
    pg_url: str | None,
    workspace_ids: tuple[str, ...],
    all_workspaces: bool,
    make_source_read_only: bool,
    sample: int,
    no_identities: bool,
    overwrite_local_writes: bool,
    key: Key | None,
    verbose: bool,
    as_json: bool,
    root: Path,
) -> None:
    """Final sync and verification, optionally after making PostgreSQL read-only; then what to switch."""
    setup_logging(verbose, None)
    options = CutoverOptions(
        workspaces=workspace_ids,
        all_workspaces=all_workspaces,
        make_source_read_only=make_source_read_only,
        identities=not no_identities,
        sample=sample,
        overwrite_local_writes=overwrite_local_writes,
        key=key,
    )
    progress = LiveProgress(sys.stderr)
    try:
        report = cutover(pg_url, root, options, progress)
    finally:
        progress.close()
    if as_json:
        print(json.dumps(report.asdict(), indent=2, ensure_ascii=False, default=json_default))
        return
    sync_table(report.sync, stdout)
    verification_tables(report.verification, stdout)
    if report.read_only_database:
        stdout.print(f"PostgreSQL database {report.read_only_database!r} is now read-only for new sessions.")
        if report.sessions_still_connected:
            stdout.print(
                f"warning: {report.sessions_still_connected} session(s) connected before the switch can still write"
                " until they reconnect: stop them, then run cutover again"
            )
        stdout.print(f"To undo: {report.undo}")
    if report.slot_dropped:
        stdout.print(f"Dropped replication slot and publication {report.slot_dropped!r}: nothing follows PostgreSQL.")
    for note in report.notes:
        stdout.print(f"note: {note}")
    stdout.print("\nSwitch the application to ClawFS:")
    for workspace_id, database in report.workspaces:
        given = ", key=Key(...)" if key is not None else ""
        stdout.print(f"  Workspace.open({str(root)!r}, {workspace_id!r}{given})  # {database}")
    stdout.print(
        "migrate, verify and sync never wrote to PostgreSQL's tables: to go back, point the application at it again."
    )


@cli.command("search")
@click.option("--workspace-id", required=True, metavar="ID", help="The workspace to search.")
@click.option("--text", default=None, metavar="Q", help="Full-text query (any string is safe).")
@click.option("--vector", default=None, metavar="JSON|@FILE", help="A query vector as a JSON array, or @file.")
@click.option(
    "--like", "like", type=int, default=None, metavar="DOC_ID", help="Search with a stored document's vector."
)
@click.option(
    "--mode",
    type=click.Choice(["fts", "vector", "hybrid"]),
    default=None,
    help="Default: hybrid when text and a vector are given, else the one given.",
)
@click.option("-k", "k", type=int, default=10, show_default=True, help="How many hits.")
@click.option("--fts5", "raw", is_flag=True, help="--text is FTS5 query syntax (AND, OR, NEAR, prefix*), not words.")
@click.option("--ef-search", type=int, default=None, help="HNSW expansion for this search (default: the workspace's).")
@key_option
@common_options
def search_command(
    workspace_id: str,
    text: str | None,
    vector: str | None,
    like: int | None,
    mode: str | None,
    k: int,
    raw: bool,
    ef_search: int | None,
    key: Key | None,
    verbose: bool,
    as_json: bool,
    root: Path,
) -> None:
    """Search a workspace: full text, vector or hybrid."""
    setup_logging(verbose, None)
    with Workspace.open(root, workspace_id, key=key) as ws:
        query_vector = _query_vector(vector, like, ws)
        if mode == "fts" or (mode is None and query_vector is None):
            if text is None:
                raise UsageError("full-text search needs --text")
            query_vector = None
        elif mode == "vector" or (mode is None and text is None):
            if query_vector is None:
                raise UsageError("vector search needs --vector or --like")
            text = None
        elif text is None or query_vector is None:
            raise UsageError("hybrid search needs --text and --vector or --like")
        hits = ws.search(text, query_vector, k=k, raw=raw, ef_search=ef_search)
    if as_json:
        print(json.dumps([asdict(h) for h in hits], indent=2, ensure_ascii=False))
    else:
        hits_table(hits, stdout)


def _query_vector(vector: str | None, like: int | None, ws: Workspace) -> list[float] | None:
    if vector is not None and like is not None:
        raise UsageError("give --vector or --like, not both")
    if like is not None:
        return ws.document_vector(like)
    if vector is None:
        return None
    source = vector
    if vector.startswith("@"):
        try:
            source = Path(vector[1:]).read_text()
        except OSError as e:
            raise UsageError(f"cannot read the vector file {vector[1:]}: {e.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError(f"the vector file {vector[1:]} is not text") from None
    try:
        values = json.loads(source)
    except json.JSONDecodeError as e:
        raise UsageError(f"--vector is not a JSON array of numbers: {e.msg}") from None
    if not isinstance(values, list) or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in values):
        raise UsageError("--vector must be a JSON array of numbers")
    return [float(x) for x in values]


def _highlighted(snippet: str) -> Text:
    """A snippet with its `**`-marked terms in bold."""
    text = Text()
    for n, part in enumerate(snippet.split("**")):
        if part:
            text.append(part, style="bold yellow" if n % 2 else None)
    return text


def hits_table(hits: Sequence[Hit], console: Console) -> None:
    table = Table()
    for column in ("Rank", "Score", "Document", "Snippet"):
        table.add_column(column, justify="left" if column == "Snippet" else "right")
    for rank, hit in enumerate(hits, start=1):
        table.add_row(str(rank), f"{hit.score:.4f}", str(hit.document_id), _highlighted(hit.snippet))
    console.print(table if hits else "no hits")


@cli.group("index")
def index_group() -> None:
    """The HNSW index of a workspace."""


@index_group.command("rebuild")
@click.option("--workspace-id", required=True, metavar="ID", help="The workspace whose index to rebuild.")
@key_option
@common_options
def index_rebuild_command(workspace_id: str, key: Key | None, verbose: bool, as_json: bool, root: Path) -> None:
    """Build the index anew from the workspace's vectors table."""
    setup_logging(verbose, None)
    started = time.perf_counter()
    with Workspace.open(root, workspace_id, key=key) as ws:
        stamp = ws.rebuild_index()
        path = ws.index_store
    report = {"workspace_id": workspace_id, "index": str(path), **stamp.as_dict()}
    report["seconds"] = round(time.perf_counter() - started, 3)
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        stdout.print(f"rebuilt {path}: {stamp.vectors:,} vectors, {stamp.bytes:,} bytes in {report['seconds']:.1f} s")


@cli.command("backup")
@click.option("--workspace-id", required=True, metavar="ID", help="The workspace to back up.")
@click.option("--to", "destination", required=True, type=click.Path(path_type=Path), help="A new directory.")
@key_option
@common_options
def backup_command(
    workspace_id: str, destination: Path, key: Key | None, verbose: bool, as_json: bool, root: Path
) -> None:
    """Copy a workspace consistently (it may be in use): database, index and a manifest (an encrypted
    workspace's copy is encrypted with the same key)."""
    setup_logging(verbose, None)
    try:
        report = backup(root, workspace_id, destination, key)
    except OSError as e:
        raise WorkspaceError(f"backup to {destination} failed: {e.strerror or e}") from None
    if as_json:
        print(json.dumps(asdict(report), indent=2, ensure_ascii=False))
        return
    stdout.print(
        f"backed up workspace {report.workspace_id!r} to {report.directory}: {report.documents:,} documents, "
        f"{report.vectors:,} vectors, {report.bytes:,} bytes in {report.seconds:.1f} s"
        + (" (the index was rebuilt: it changed during the copy)" if report.index_rebuilt else "")
    )


@cli.command("restore")
@click.option("--from", "backup_dir", required=True, type=click.Path(path_type=Path), help="A backup directory.")
@click.option("--replace", is_flag=True, help="Replace the workspace if it exists.")
@key_option
@common_options
def restore_command(backup_dir: Path, replace: bool, key: Key | None, verbose: bool, as_json: bool, root: Path) -> None:
    """Restore a backup into the root, checked before it is put in place."""
    setup_logging(verbose, None)
    try:
        report = restore(backup_dir, root, replace=replace, key=key)
    except OSError as e:
        raise WorkspaceError(f"restore from {backup_dir} failed: {e.strerror or e}") from None
    if as_json:
        print(json.dumps(asdict(report), indent=2, ensure_ascii=False))
        return
    stdout.print(
        f"restored workspace {report.workspace_id!r} to {report.database}: {report.documents:,} documents, "
        f"{report.vectors:,} vectors, checked" + (" (replaced the one that was there)" if report.replaced else "")
    )


@cli.command("rekey")
@selection_options("re-encrypt", "Every workspace of the root.", "This database file (one --workspace-id).")
@key_option
@key_file_option("--new-key-file", "new_key", NEW_KEY_ENV, "The new key")
@common_options
def rekey_command(
    workspace_ids: tuple[str, ...],
    all_workspaces: bool,
    sqlite_path: Path | None,
    key: Key | None,
    new_key: Key | None,
    verbose: bool,
    as_json: bool,
    root: Path,
) -> None:
    """Change the encryption key of encrypted workspaces (stop agents and sync --follow using them first)."""
    setup_logging(verbose, None)
    check_selection("rekey", workspace_ids, all_workspaces, sqlite_path)
    if key is None:
        raise UsageError(f"rekey needs the current key: --key-file FILE or ${KEY_ENV}")
    if new_key is None:
        raise UsageError(f"rekey needs the new key: --new-key-file FILE or ${NEW_KEY_ENV}")
    layout = Layout(root)
    chosen = sorted(workspaces_on_disk(layout)) if all_workspaces else list(dict.fromkeys(workspace_ids))
    paths = {ws: sqlite_path or layout.workspace_db(ws) for ws in chosen}
    for ws, path in paths.items():  # all of them checked before any is changed
        if not path.is_file():
            raise WorkspaceError(f"no workspace {ws!r} at {path}")
        if not is_encrypted(path):
            raise UsageError(f"workspace {ws!r} ({path}) is not encrypted: there is no key to change")
        WorkspaceFiles(path, key).close()  # the current key opens it
    done = []
    for ws, path in paths.items():
        started = time.perf_counter()
        rekey(path, key, new_key)
        done.append({"workspace_id": ws, "database": str(path), "seconds": round(time.perf_counter() - started, 3)})
        if not as_json:
            stdout.print(f"workspace {ws!r}: new key in place ({path}); the old key no longer opens it")
    if as_json:
        print(json.dumps({"rekeyed": done}, indent=2, ensure_ascii=False))


@cli.command("demo")
@click.option("--documents", type=int, default=3000, show_default=True, help="Size of the sample store.")
@common_options
def demo_command(documents: int, verbose: bool, as_json: bool, root: Path) -> None:
    """Start an embedded PostgreSQL, fill it with a sample store, migrate it, search the result."""
    setup_logging(verbose, None)
    if not as_json:
        stdout.print(
            f"Starting an embedded PostgreSQL 16 with pgvector and filling it with {documents:,} sample documents..."
        )
    progress = LiveProgress(sys.stderr)
    try:
        demo = run_demo(root, progress, documents=documents)
    finally:
        progress.close()
    if as_json:
        print(
            json.dumps(
                {
                    "migration": demo.migration.asdict(),
                    "query": demo.query,
                    "text_hits": [asdict(h) for h in demo.text_hits],
                    "vector_hits": [asdict(h) for h in demo.vector_hits],
                },
                indent=2,
                ensure_ascii=False,
                default=json_default,
            )
        )
        return
    migration_tables(demo.migration, stdout)
    first = demo.migration.workspaces[0].workspace_id
    stdout.print(
        f"\nFull-text search in workspace {first!r}: "
        f"clawfs search --root {root} --workspace-id {first} --text {demo.query!r}"
    )
    hits_table(demo.text_hits, stdout)
    stdout.print(
        f"\nVector search, documents like {demo.similar_to}: "
        f"clawfs search --root {root} --workspace-id {first} --like {demo.similar_to}"
    )
    hits_table(demo.vector_hits, stdout)


def _secrets(argv: Sequence[str]) -> list[str | None]:
    secrets: list[str | None] = [os.environ.get("PGPASSWORD"), *_key_secrets]
    for value in [*argv, os.environ.get("CLAWFS_PG_URL") or ""]:
        if "://" in value or "password" in value.lower():
            secrets.append(url_password(value.removeprefix("--pg-url=")))
    return secrets


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run a command; turn every error into one line and its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args or "--verbose" in args
    try:
        code = cli.main(args=args, prog_name="clawfs", standalone_mode=False) or 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.UsageError as e:
        hint = f" (see: {e.ctx.command_path} --help)" if e.ctx is not None and e.ctx.parent is not None else ""
        print(f"clawfs: error: {e.format_message()}{hint}", file=sys.stderr)
        code = e.exit_code
    except click.ClickException as e:
        print(f"clawfs: error: {e.format_message()}", file=sys.stderr)
        code = e.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort) as e:
        interrupt = e.__cause__ if isinstance(e, click.exceptions.Abort) else e  # click wraps Ctrl-C in Abort
        detail = str(interrupt) if isinstance(interrupt, KeyboardInterrupt) else ""
        print(f"clawfs: interrupted{'. ' + detail if detail else ''}", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except ClawfsError as e:
        code = _report_error(e, "error", verbose, args)
    except SQLITE_ERRORS as e:  # a damaged or foreign workspace file
        code = _report_error(WorkspaceError(f"workspace database: {e}"), "error", verbose, args)
    except Exception as e:  # a bug: still one line (the traceback with --verbose)
        code = _report_error(e, f"unexpected error ({type(e).__name__})", verbose, args)
        code = EXIT_FAILURE
    sys.exit(code)


def _report_error(error: BaseException, label: str, verbose: bool, args: Sequence[str]) -> int:
    secrets = _secrets(args)
    if verbose:
        print(scrub("".join(traceback.format_exception(error)), secrets), file=sys.stderr, end="")
    print(scrub(f"clawfs: {label}: {error}", secrets), file=sys.stderr)
    return exit_code(error)
