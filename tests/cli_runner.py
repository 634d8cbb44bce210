"""Helpers for the command-line and atomicity tests: run clawfs (in this process or as a child process),
fill a small IronClaw store, and read back everything a run left behind (files, audit log, PostgreSQL).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clawfs.cli import main
from clawfs.errors import ClawfsError
from pgstore import PgStore

ERROR_PREFIX = "clawfs: error:"
ALL_STEPS = ["plan", "documents", "vectors", "fts", "metadata", "identities", "index", "verify", "install"]


@dataclass(frozen=True)
class Result:
    """What one `clawfs` invocation gave back."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(ERROR_PREFIX)]

    @property
    def error(self) -> str:
        """The one error line (asserts there is exactly one)."""
        lines = self.error_lines
        assert len(lines) == 1, f"expected one '{ERROR_PREFIX}' line, stderr was:\n{self.stderr}"
        return lines[0]

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | os.PathLike[str]) -> Result:
    """`clawfs ARGS` in this process (fast); the exit code is the one `main` gives to SystemExit."""
    capsys.readouterr()
    logger = logging.getLogger("clawfs")
    handlers_before = list(logger.handlers)
    try:
        main([os.fspath(a) for a in args])
    except SystemExit as e:
        code = e.code
    else:
        raise AssertionError("clawfs.cli.main returned instead of exiting with a code")
    finally:
        # the CLI adds log handlers on every call (one process runs one command); undo it here
        for handler in logger.handlers[:]:
            if handler not in handlers_before:
                logger.removeHandler(handler)
                handler.close()
                stream = getattr(handler, "stream", None)
                if stream is not None and stream not in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__):
                    stream.close()
    out, err = capsys.readouterr()
    return Result(code if isinstance(code, int) else 1, out, err)


def run_process(*args: str | os.PathLike[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Result:
    """`python -m clawfs ARGS` as a child process: the real end-to-end path."""
    proc = subprocess.run(
        [sys.executable, "-m", "clawfs", *map(os.fspath, args)],
        capture_output=True,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        timeout=120,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def fill_store(
    pg: PgStore,
    workspaces: tuple[str, ...] = ("default",),
    documents: int = 3,
    identities: tuple[str, ...] = ("agent-1",),
) -> None:
    """A small, valid IronClaw store: `documents` documents with one 3-d vector each per workspace."""
    pg.create_schema()
    for w, workspace in enumerate(workspaces):
        ids = pg.add_documents(
            {
                "workspace_id": workspace,
                "content": f"note {i} of {workspace}: reset the password, then restart",
                "metadata": json.dumps({"n": i}),
            }
            for i in range(documents)
        )
        pg.add_vectors({"document_id": d, "embedding": [1.0 + w, 0.5 + i, 0.25]} for i, d in enumerate(ids))
    pg.add_metadata({"embedding_model": '"test-embedding"'})
    for agent in identities:
        pg.add_identity(agent)


def fill_large_store(pg: PgStore, documents: int, dimension: int = 128) -> None:
    """One workspace `default` with `documents` documents and a vector each, made inside PostgreSQL.

    The vectors lie around 16 centres (like real embeddings, which cluster): uniform random vectors
    in high dimension are the worst case of HNSW and would fail verification's recall check."""
    pg.create_schema(dimension=dimension)
    pg.sql(
        "INSERT INTO documents (workspace_id, content)"
        " SELECT 'default', 'document number ' || g || ' about topic ' || (g %% 97) FROM generate_series(1, %s) g",
        [documents],
    )
    random_vector = (
        f"(SELECT array_agg((CASE WHEN i % 16 = d.id % 16 THEN 1.0 ELSE 0.0 END) + 0.3 * random())"
        f" FROM generate_series(1, {dimension}) i)"
    )
    pg.sql(f"INSERT INTO vectors (document_id, embedding) SELECT d.id, {random_vector}::vector FROM documents d")


def quiet_fingerprint(pg: PgStore) -> dict[str, Any]:
    """`pg.fingerprint()` once no other client is connected to the database.

    A backend flushes its write counters when it exits, so waiting until every other client backend
    (the test's own set-up, clawfs) is gone makes the counters in the fingerprint final.
    """
    deadline = time.monotonic() + 10
    while True:
        (others,) = pg.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )[0]
        if others == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return pg.fingerprint()


def files_under(path: Path) -> dict[str, bytes]:
    """Every regular file below `path` (relative name -> bytes); empty when `path` does not exist."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def installed(root: Path) -> dict[str, list[str]]:
    """What a reader would find: entries of `<root>/workspaces` and `<root>/agents`."""
    return {
        kind: sorted(p.name for p in (root / kind).iterdir()) if (root / kind).is_dir() else []
        for kind in ("workspaces", "agents")
    }


def build_leftovers(root: Path) -> list[str]:
    """Files or run build directories left under `<root>/.clawfs/tmp` (a finished run leaves none)."""
    tmp = root / ".clawfs" / "tmp"
    if not tmp.exists():
        return []
    return sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file() or p.name.startswith("run-"))


def audit_lines(root: Path) -> list[dict[str, Any]]:
    path = root / ".clawfs" / "audit.log"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def last_run(root: Path) -> list[dict[str, Any]]:
    """The audit lines of the most recent run of the library (the command line's closing `command`
    line, a run of its own, is left out)."""
    lines = [line for line in audit_lines(root) if line["step"] != "command"]
    run_id = lines[-1]["run_id"]
    return [line for line in lines if line["run_id"] == run_id]


def ctrl_c_interrupts() -> None:
    """For a child that a test stops with SIGINT: a test run started in the background (`cmd &` in a
    script) ignores SIGINT, and children inherit that; Python then never turns SIGINT into Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ApiTexts:
    """Every text a library caller could print or log of what the Python API hands back: `keep` records
    the str, repr, formats, JSON and attributes of a value; `error` does it for the whole chain of the error
    a call raises (causes and contexts, also what `from None` hides from printing, and each clawfs
    error's own fields, such as StepFailed.cause)."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def keep(self, what: str, value: Any) -> Any:
        self.texts[f"str({what})"] = str(value)
        self.texts[f"repr({what})"] = repr(value)
        self.texts[f"format({what})"] = f"{value} {value!r} {value!s} {value!a}"
        if hasattr(value, "asdict"):
            self.texts[f"json({what})"] = json.dumps(value.asdict(), default=str, ensure_ascii=False)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            self.texts[f"json({what})"] = json.dumps(dataclasses.asdict(value), default=str, ensure_ascii=False)
        if hasattr(value, "__dict__"):
            self.texts[f"vars({what})"] = repr(vars(value))
        return value

    def error(self, what: str, call: Callable[[], object]) -> BaseException:
        with pytest.raises(ClawfsError) as raised:
            call()
        link: BaseException | None = raised.value
        depth = 0
        while link is not None and depth < 10:
            self.keep(f"{what} error {depth} {type(link).__name__}", link)
            if isinstance(link, ClawfsError):
                for name, value in vars(link).items():
                    self.keep(f"{what} error {depth}.{name}", value)
            link = link.__cause__ or link.__context__
            depth += 1
        return raised.value
