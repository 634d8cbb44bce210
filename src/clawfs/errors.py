"""The one error tree of clawfs.

    ClawfsError                      exit 1   anything clawfs reports on purpose
    ├── UsageError                   exit 2   the caller asked for something impossible
    ├── SourceError                  exit 4   PostgreSQL: unreachable, refused, schema missing
    │   └── BadRowError              exit 4   one source row cannot be carried over (table, id, reason)
    ├── VerificationError            exit 3   the workspace is not an exact copy of its source
    ├── WorkspaceError               exit 5   the ClawFS side: files, permissions, a stale index
    └── StepFailed                   exit of its cause: a pipeline step failed; says what was left behind

Every error carries fields, not only a message, so reports and the audit log can record them.
`exit_code()` is the single place where causes map to process exit codes.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_VERIFICATION = 3
EXIT_SOURCE = 4
EXIT_WORKSPACE = 5
EXIT_INTERRUPTED = 130


class ClawfsError(Exception):
    """Root of every error clawfs raises on purpose."""

    exit_code = EXIT_FAILURE


class UsageError(ClawfsError):
    exit_code = EXIT_USAGE


class SourceError(ClawfsError):
    """PostgreSQL could not be read: connection, credentials, privileges, schema.

    `connection_lost`: the connection broke in the middle of the work (server restart, network,
    terminated backend), as opposed to a refusal; work done so far can be resumed."""

    exit_code = EXIT_SOURCE

    def __init__(self, message: str, *, connection_lost: bool = False) -> None:
        super().__init__(message)
        self.connection_lost = connection_lost


class BadRowError(SourceError):
    """A source row that cannot be carried over exactly (DESIGN §5)."""

    def __init__(self, table: str, row_id: object, reason: str) -> None:
        self.table = table
        self.row_id = row_id
        self.reason = reason
        super().__init__(f"bad row in {table} id={row_id}: {reason}")


class VerificationError(ClawfsError):
    exit_code = EXIT_VERIFICATION


class WorkspaceError(ClawfsError):
    exit_code = EXIT_WORKSPACE


class StepFailed(ClawfsError):
    """A pipeline step failed. `left_behind` says what state the failure left."""

    def __init__(self, step: str, cause: BaseException, left_behind: str) -> None:
        self.step = step
        self.cause = cause
        self.left_behind = left_behind
        super().__init__(f"{step} failed: {cause}. {left_behind}")

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        return exit_code(self.cause)


def exit_code(error: BaseException) -> int:
    """The documented exit code (DESIGN §4) for any exception."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, ClawfsError):
        return error.exit_code
    return EXIT_FAILURE
