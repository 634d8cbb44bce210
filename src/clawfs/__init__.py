"""clawfs: move an agent's memory from PostgreSQL + pgvector into ClawFS, prove it, search it."""

from ._cutover import CutoverOptions, CutoverReport, cutover
from ._migrate import MigrateOptions, migrate
from ._sync import SyncOptions, SyncReport, sync
from ._sync_setup import SetupReport, TeardownReport, sync_setup, sync_teardown
from ._verify import SearchCheck, TableCheck, VerificationReport, VerifyOptions, WorkspaceCheck, verify
from .errors import (
    BadRowError,
    ClawfsError,
    SourceError,
    StepFailed,
    UsageError,
    VerificationError,
    WorkspaceError,
)
from .progress import NullProgress, Progress
from .report import MigrationReport, SkippedRow, StepReport, WorkspaceReport
from .workspace import KEEP, BackupReport, Hit, HnswParams, Key, RestoreReport, Workspace, backup, restore

__version__ = "0.1.0"

__all__ = [
    "KEEP",
    "BackupReport",
    "BadRowError",
    "ClawfsError",
    "CutoverOptions",
    "CutoverReport",
    "Hit",
    "HnswParams",
    "Key",
    "MigrateOptions",
    "MigrationReport",
    "NullProgress",
    "Progress",
    "RestoreReport",
    "SearchCheck",
    "SetupReport",
    "SkippedRow",
    "SourceError",
    "StepFailed",
    "StepReport",
    "SyncOptions",
    "SyncReport",
    "TableCheck",
    "TeardownReport",
    "UsageError",
    "VerificationError",
    "VerificationReport",
    "VerifyOptions",
    "Workspace",
    "WorkspaceCheck",
    "WorkspaceError",
    "WorkspaceReport",
    "__version__",
    "backup",
    "cutover",
    "migrate",
    "restore",
    "sync",
    "sync_setup",
    "sync_teardown",
    "verify",
]
