"""Where things live under a ClawFS root (DESIGN §2), and how files get there safely.

    <root>/workspaces/<ws-dir>/workspace.db      <root>/workspaces/<ws-dir>/index.usearch
    <root>/agents/<agent-dir>/identity.json
    <root>/.clawfs/                               the tool's own: audit.log, tmp/ (runs in progress)

Directories are 0700 and files 0600 whatever the umask: every file is created with its mode.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from .._values import encode_id
from ..errors import WorkspaceError

DIR_MODE = 0o700
FILE_MODE = 0o600
DB_NAME = "workspace.db"
INDEX_NAME = "index.usearch"
STATE_DIR = ".clawfs"


def index_path_for(db_path: Path) -> Path:
    """The HNSW index beside a workspace database: `index.usearch`, or `<name>.usearch` for a named file."""
    return db_path.with_name(INDEX_NAME) if db_path.name == DB_NAME else db_path.with_suffix(".usearch")


def make_private_dir(path: Path) -> Path:
    """Create `path` and any missing parents with mode 0700 (existing ones are left as they are)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)
    return path


def create_private_file(path: Path) -> None:
    """An empty file with mode 0600, created before anything (SQLite, usearch) writes to it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    os.close(fd)
    os.chmod(path, FILE_MODE)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_temp(path: Path, data: bytes) -> Path:
    """Write `data` to a new 0600 file beside `path` and fsync it; `Placement.put` renames it in."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return tmp


class Placement:
    """Renames finished files and directories into place, all or nothing.

    `put(new, final)` moves whatever is at `final` aside (a dotted name in the same directory) and
    renames `new` there. `rollback()` removes what was put and brings the old things back;
    `commit()` deletes the old things. Until `commit`, every old workspace or file still exists.
    """

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.moves: list[tuple[Path, Path | None, bool]] = []  # final, where the old one waits, new put?

    def put(self, new: Path | None, final: Path) -> None:
        old = None
        if final.exists() or final.is_symlink():
            old = final.with_name(f".{final.name}.clawfs-old-{self.tag}")
            os.rename(final, old)
        self.moves.append((final, old, False))
        if new is not None:
            os.rename(new, final)
            self.moves[-1] = (final, old, True)
        fsync_path(final.parent)

    def rollback(self) -> None:
        for final, old, put in reversed(self.moves):
            if put:
                remove_path(final)
            if old is not None:
                os.rename(old, final)
        self.moves = []

    def commit(self) -> None:
        for _, old, _ in self.moves:
            if old is not None:
                remove_path(old)
        self.moves = []


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    def workspace_dir(self, workspace_id: str) -> Path:
        return self.root / "workspaces" / _dir_name(workspace_id, "workspace")

    def workspace_db(self, workspace_id: str) -> Path:
        return self.workspace_dir(workspace_id) / DB_NAME

    def agent_file(self, agent_id: str) -> Path:
        return self.root / "agents" / _dir_name(agent_id, "agent") / "identity.json"


def _dir_name(ident: str, kind: str) -> str:
    try:
        return encode_id(ident)
    except ValueError as e:
        raise WorkspaceError(f"{kind} id cannot be stored: {e}") from None
