"""The audit log (draft §13.3): JSON lines appended under the root (`.clawfs/audit.log`).

Every command run from the command line adds one `command` line when it ends: who (user, host), what
(the command and its options; search texts and vectors are not kept), against which source (the URL
with its password redacted), the result and the exit code. Runs of migrate and sync add a line per
step. Opened with O_APPEND and mode 0600; clawfs never rewrites or truncates it.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .workspace._layout import FILE_MODE, make_private_dir


class AuditLog:
    """Lines of one run of one command (`run_id` ties them together)."""

    def __init__(self, path: Path, run_id: str, command: str, source: str | None, creates_root: bool = False) -> None:
        """`path` is `<root>/.clawfs/audit.log`; nothing is written under a root that does not exist,
        unless the command is the one that creates roots (`creates_root`: migrate)."""
        self.path = path
        self.creates_root = creates_root
        self.base = {"run_id": run_id, "command": command, "source": source}
        try:
            self.base["user"] = getpass.getuser()
        except (KeyError, OSError):
            self.base["user"] = str(os.getuid())
        self.base["host"] = socket.gethostname()

    def record(self, step: str, **fields: Any) -> None:
        line = {
            "time": datetime.now(UTC).isoformat(timespec="microseconds"),
            "step": step,
            **self.base,
            **fields,
        }
        if not self.creates_root and not self.path.parent.parent.is_dir():
            return  # a mistyped --root is not created for an audit line
        make_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.write(fd, (json.dumps(line, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
        finally:
            os.close(fd)


def run_id() -> str:
    return f"{os.getpid()}-{time.time_ns()}"
