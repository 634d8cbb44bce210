"""The ClawFS side (the only place sqlite3, SQLCipher and usearch are imported)."""

from ._backup import BackupReport, RestoreReport, backup, restore
from ._builder import WorkspaceBuilder, check_target_free, install_moves, metadata_entries
from ._checksums import stored_row_hash
from ._files import IndexFile, WorkspaceFiles
from ._identity import identity_document
from ._index import DEFAULT_DTYPE, DTYPES, HnswParams, IndexWorker
from ._index_store import store_for
from ._layout import (
    DB_NAME,
    Layout,
    Placement,
    finish_placement,
    index_path_for,
    make_private_dir,
    remove_path,
    remove_tree,
    write_private,
    write_private_temp,
)
from ._schema import CLAWFS_METADATA_KEYS, SCHEMA_VERSION
from ._sqlite import INSTALL_HINT, Key, KeyProblem, encryption_available, is_encrypted, rekey
from ._sqlite import Error as SQLITE_ERRORS
from ._workspace import KEEP, NORM_RANGE, Hit, Workspace, fts_query, usable

# Errors of the target side that a user can cause (disk full, permissions, a damaged file).
TARGET_ERRORS: tuple[type[BaseException], ...] = (OSError, *SQLITE_ERRORS)

__all__ = [
    "CLAWFS_METADATA_KEYS",
    "DB_NAME",
    "DEFAULT_DTYPE",
    "DTYPES",
    "INSTALL_HINT",
    "KEEP",
    "NORM_RANGE",
    "SCHEMA_VERSION",
    "SQLITE_ERRORS",
    "TARGET_ERRORS",
    "BackupReport",
    "Hit",
    "HnswParams",
    "IndexFile",
    "IndexWorker",
    "Key",
    "KeyProblem",
    "Layout",
    "Placement",
    "RestoreReport",
    "Workspace",
    "WorkspaceBuilder",
    "WorkspaceFiles",
    "backup",
    "check_target_free",
    "encryption_available",
    "finish_placement",
    "fts_query",
    "identity_document",
    "index_path_for",
    "install_moves",
    "is_encrypted",
    "make_private_dir",
    "metadata_entries",
    "rekey",
    "remove_path",
    "remove_tree",
    "restore",
    "store_for",
    "stored_row_hash",
    "usable",
    "write_private",
    "write_private_temp",
]
