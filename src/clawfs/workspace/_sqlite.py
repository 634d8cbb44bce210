"""Every connection to a workspace database opens here: Python's sqlite3 for a plain file, SQLCipher
(`sqlcipher3`, the optional extra `encryption`) for an encrypted one (DESIGN §3 "nothing leaked").

A file is encrypted when its first bytes are not SQLite's header; a file that does not exist yet (or is
empty) is made encrypted when a key is given. SQLCipher encrypts every page of the database, its
journal and its WAL, and authenticates each page (HMAC-SHA512), so a wrong key or a damaged page is an
error, never a wrong read.

Keys (`Key`): a passphrase, or 64 hex digits for a raw 256-bit key. A passphrase goes through SQLCipher
4's own derivation (PBKDF2-HMAC-SHA512, 256,000 iterations, the file's 16-byte salt), done here once
per salt and process and handed to SQLCipher as a raw key: a connection then opens in well under a
millisecond instead of ~0.1 s, and the file still opens in any SQLCipher 4 with `PRAGMA key =
'passphrase'`. A `Key` never shows its secret in `str`, `repr` or an error.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path
from typing import Any, cast

from ..errors import UsageError, WorkspaceError

try:  # the optional extra `encryption`
    from sqlcipher3 import dbapi2 as sqlcipher
except ImportError:  # pragma: no cover - the test environment installs it
    sqlcipher = None

HEADER = b"SQLite format 3\x00"
SALT_BYTES = 16
KDF_ITERATIONS = 256_000  # SQLCipher 4's default (kdf_iter)
INSTALL_HINT = "install clawfs with the extra `encryption` (pip install 'clawfs[encryption]')"
RAW_KEY = re.compile(r"[0-9A-Fa-f]{64}")

# The errors either driver raises (their classes are unrelated): use these in `except`.
Error: tuple[type[Exception], ...] = (sqlite3.Error,)
DatabaseError: tuple[type[Exception], ...] = (sqlite3.DatabaseError,)
OperationalError: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
if sqlcipher is not None:
    Error += (sqlcipher.Error,)
    DatabaseError += (sqlcipher.DatabaseError,)
    OperationalError += (sqlcipher.OperationalError,)


class KeyProblem(WorkspaceError):
    """An encrypted workspace without its key, with another key, or without SQLCipher installed."""


class Key:
    """An encryption key: a passphrase, or 64 hex digits (a raw key). Its secret is never shown."""

    __slots__ = ("_derived", "_raw", "_secret")

    def __init__(self, secret: str, origin: str = "the encryption key") -> None:
        """`origin` names the key in errors (say, "the key in $CLAWFS_KEY")."""
        if not secret:
            raise UsageError(f"{origin} is empty")
        if "\x00" in secret:
            raise UsageError(f"{origin} has a NUL character")
        self._secret = secret
        self._raw = bytes.fromhex(secret) if RAW_KEY.fullmatch(secret) else None
        self._derived: dict[bytes, bytes] = {}

    @classmethod
    def from_file(cls, path: Path) -> Key:
        """The file's text without its final line break (what `echo secret > FILE` writes). Errors are
        raised outside the `except` blocks: a decoding error holds the file's bytes, and must not stay
        attached to ours as its context."""
        problem = ""
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            problem = f"the key file {path} is not UTF-8 text"
        except OSError as e:
            problem = f"cannot read the key file {path}: {e.strerror or type(e).__name__}"
        if problem:
            raise UsageError(problem)
        return cls(text.removesuffix("\n").removesuffix("\r"), f"the key in {path}")

    def __repr__(self) -> str:
        return "Key(<hidden>)"

    def secret_for_scrubbing(self) -> str:
        """The secret itself, only to remove it from texts meant for people or logs."""
        return self._secret

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(("clawfs.Key", self._secret))

    def pragma_value(self, salt: bytes | None) -> str:
        """What `PRAGMA key` / `PRAGMA rekey` take: a raw key (hex) for the file's salt; with `salt`
        None (a new file) a new salt, given explicitly."""
        new_salt = salt is None
        salt = os.urandom(SALT_BYTES) if salt is None else salt
        if self._raw is not None:
            key = self._raw
        else:
            key = self._derived.get(salt) or hashlib.pbkdf2_hmac(
                "sha512", self._secret.encode("utf-8"), salt, KDF_ITERATIONS, 32
            )
            self._derived[salt] = key
        return f"x'{key.hex()}{salt.hex() if new_salt else ''}'"


def is_encrypted(path: Path) -> bool:
    """A file with content that is not SQLite's plain format (an encrypted or a damaged file)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(HEADER))
    except FileNotFoundError:
        return False
    return bool(head) and head != HEADER


def connect(path: Path, key: Key | None = None, *, read_only: bool = False, **options: Any) -> sqlite3.Connection:
    """A connection to the workspace database at `path` (see the module's text for which driver).
    An encrypted file without its key, or with another one, is a KeyProblem (exit 5)."""
    target = f"{path.resolve().as_uri()}?mode=ro" if read_only else str(path)
    encrypted = is_encrypted(path)
    if not encrypted and (key is None or _has_content(path)):
        return cast(sqlite3.Connection, sqlite3.connect(target, uri=read_only, **options))
    if key is None:
        raise KeyProblem(
            f"{path} is encrypted (or is not an SQLite database): give its key with $CLAWFS_KEY or --key-file"
        )
    if sqlcipher is None:
        raise KeyProblem(f"{path} needs SQLCipher, which is not installed: {INSTALL_HINT}")
    salt = _salt(path) if encrypted else None
    db = cast(sqlite3.Connection, sqlcipher.connect(target, uri=read_only, **options))
    try:
        db.execute("PRAGMA cipher_log_level = NONE")  # SQLCipher would log a wrong key's failures to stderr
        db.execute(f'PRAGMA key = "{key.pragma_value(salt)}"')
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DatabaseError:
        db.close()
        raise KeyProblem(f"{path} does not open with this key (another key, or a damaged file)") from None
    return db


def rekey(path: Path, key: Key, new_key: Key) -> None:
    """Encrypt every page of the encrypted database at `path` with `new_key` instead of `key` (SQLCipher
    rewrites them in one transaction, so a crash leaves the old key working), then prove the new key opens
    it and the old one no longer does."""
    if not is_encrypted(path):
        raise UsageError(f"{path} is not encrypted: there is no key to change (migrate --encrypt encrypts)")
    if new_key == key:
        raise UsageError("the new key is the old key")
    db = connect(path, key, isolation_level=None, timeout=30)
    try:
        db.execute(f'PRAGMA rekey = "{new_key.pragma_value(_salt(path))}"')
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    db = connect(path, new_key)
    try:
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise WorkspaceError(f"{path} fails SQLite's quick_check after the key change")
    finally:
        db.close()
    try:
        connect(path, key).close()
    except KeyProblem:
        return
    raise WorkspaceError(f"{path} still opens with the old key after the key change")


def driver_of(db: sqlite3.Connection) -> Any:
    """The module `db` came from (its backup API takes only a connection of the same driver)."""
    return sqlite3 if isinstance(db, sqlite3.Connection) else sqlcipher


def encryption_available() -> bool:
    return sqlcipher is not None


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _salt(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(SALT_BYTES)
