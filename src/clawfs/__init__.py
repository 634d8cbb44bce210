"""clawfs: move an agent's memory from PostgreSQL + pgvector into ClawFS, prove it, search it."""

from ._migrate import MigrateOptions, migrate
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
from .workspace import Hit, HnswParams, Workspace

__version__ = "0.1.0"

__all__ = [
    "BadRowError",
    "ClawfsError",
    "Hit",
    "HnswParams",
    "MigrateOptions",
    "MigrationReport",
    "NullProgress",
    "Progress",
    "SearchCheck",
    "SkippedRow",
    "SourceError",
    "StepFailed",
    "StepReport",
    "TableCheck",
    "UsageError",
    "VerificationError",
    "VerificationReport",
    "VerifyOptions",
    "Workspace",
    "WorkspaceCheck",
    "WorkspaceError",
    "WorkspaceReport",
    "__version__",
    "migrate",
    "verify",
]
