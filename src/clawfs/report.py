"""Reports are values: small frozen dataclasses that the CLI renders as a table or as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepReport:
    """One pipeline step: what it moved and how long it took."""

    step: str
    rows: int
    bytes: int
    seconds: float
    waited: float = 0.0  # of `seconds`, time spent waiting for another step (vectors wait for the index)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class SkippedRow:
    table: str
    id: Any
    reason: str


@dataclass(frozen=True)
class WorkspaceReport:
    workspace_id: str
    database: str
    index: str
    documents: int
    vectors: int
    dimension: int | None


@dataclass(frozen=True)
class MigrationReport:
    source: str  # host:port/database, never a password
    snapshot: dict[str, Any]
    steps: tuple[StepReport, ...]
    workspaces: tuple[WorkspaceReport, ...]
    identities: tuple[str, ...]
    skipped: tuple[SkippedRow, ...]
    notes: tuple[str, ...]
    hnsw: dict[str, Any]
    seconds: float
    verified: bool
    run_id: str = field(default="")
    checks: tuple[Any, ...] = ()  # clawfs.WorkspaceCheck of each workspace, when verified
    encrypted: bool = False  # SQLCipher workspaces (migrate --encrypt), their indexes inside them

    def asdict(self) -> dict[str, Any]:
        data = asdict(self)
        for step, raw in zip(self.steps, data["steps"], strict=True):
            raw["rows_per_second"] = round(step.rows_per_second, 1)
        return data
