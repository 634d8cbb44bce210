"""Where things live under a ClawFS root (DESIGN §2), and how files get there safely.

    <root>/workspaces/<ws-dir>/workspace.db      <root>/workspaces/<ws-dir>/index.usearch
    <root>/agents/<agent-dir>/identity.json
    <root>/.clawfs/                               the tool's own: audit.log, tmp/ (runs in progress)

Directories are 0700 and files 0600 whatever the umask: every file is created with its mode.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    for d in _missing_dirs(path):
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


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` by a 0600 file holding `data`, durably: a reader sees the old file or the new one."""
    os.replace(write_private_temp(path, data), path)
    fsync_path(path.parent)


class Placement:
    """Renames finished files and directories into place, all or nothing.

    `put(new, final)` moves whatever is at `final` aside (a dotted name in the same directory) and
    renames `new` there. `rollback()` removes what was put and brings the old things back;
    `commit()` deletes the old things. Until `commit`, every old workspace or file still exists.

    With a `journal`, `put_all` first writes down every move it is about to make; a process killed
    part-way through is then finished, not undone, by `finish_placement(journal)` (everything being
    placed was complete and checked before the first rename).
    """

    def __init__(self, tag: str, journal: Path | None = None) -> None:
        self.tag = tag
        self.journal = journal
        self.moves: list[tuple[Path, Path | None, bool]] = []  # final, where the old one waits, new put?
        self.created: list[Path] = []  # directories made to put things in (removed again by rollback)

    def put_all(self, moves: Sequence[tuple[Path | None, Path]], record: dict[str, Any] | None = None) -> None:
        if self.journal is not None:
            plan = {"tag": self.tag, "moves": [[str(n) if n else None, str(f)] for n, f in moves], **(record or {})}
            write_private(self.journal, json.dumps(plan).encode())
        for new, final in moves:
            self.put(new, final)

    def put(self, new: Path | None, final: Path) -> None:
        self.created += _missing_dirs(final.parent)
        make_private_dir(final.parent)
        old = None
        if final.exists() or final.is_symlink():
            old = _aside(final, self.tag)
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
        for made in reversed(self.created):
            with contextlib.suppress(OSError):
                made.rmdir()  # only if empty
        self.moves = []
        self.created = []
        self._forget()

    def commit(self) -> None:
        for _, old, _ in self.moves:
            if old is not None:
                remove_path(old)
        self.moves = []
        self.created = []
        self._forget()

    def _forget(self) -> None:
        if self.journal is not None:
            with contextlib.suppress(FileNotFoundError):
                self.journal.unlink()


def finish_placement(journal: Path) -> dict[str, Any]:
    """Finish the moves an interrupted `Placement.put_all` wrote down; returns the journal's record.

    Moves happen in order, so every move before the last one whose new thing is gone is done."""
    plan = json.loads(journal.read_text())
    tag = plan["tag"]
    moves = [(Path(n) if n else None, Path(f)) for n, f in plan["moves"]]
    done = max((i for i, (new, _) in enumerate(moves) if new is not None and not new.exists()), default=-1)
    for i, (new, final) in enumerate(moves):
        old = _aside(final, tag)
        if i > done:
            if final.exists() or final.is_symlink():
                if old.exists() and new is not None:
                    raise WorkspaceError(f"cannot finish installing {final}: {old} is in the way")
                remove_path(old)
                os.rename(final, old)
            make_private_dir(final.parent)
            if new is not None:
                os.rename(new, final)
            fsync_path(final.parent)
        remove_path(old)
    journal.unlink()
    return dict(plan)


def _missing_dirs(path: Path) -> list[Path]:
    """`path` and its ancestors that do not exist yet, outermost first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing[::-1]


def _aside(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.clawfs-old-{tag}")


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
