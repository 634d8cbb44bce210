"""clawfs: move an agent's memory from PostgreSQL + pgvector into ClawFS, prove it, search it."""

from ._migrate import MigrateOptions, migrate
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
    "SkippedRow",
    "SourceError",
    "StepFailed",
    "StepReport",
    "UsageError",
    "VerificationError",
    "Workspace",
    "WorkspaceError",
    "WorkspaceReport",
    "__version__",
    "migrate",
]
