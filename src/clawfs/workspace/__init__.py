"""The ClawFS side (the only place sqlite3 and usearch are imported)."""

import sqlite3

from ._backup import BackupReport, RestoreReport, backup, restore
from ._builder import WorkspaceBuilder, check_target_free, install_moves, metadata_entries
from ._checksums import stored_row_hash
from ._files import IndexFile, WorkspaceFiles
from ._identity import identity_document
from ._index import DEFAULT_DTYPE, DTYPES, HnswParams, IndexWorker
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
from ._workspace import KEEP, NORM_RANGE, Hit, Workspace, fts_query, usable

# Errors of the target side that a user can cause (disk full, permissions, a damaged file).
TARGET_ERRORS: tuple[type[BaseException], ...] = (OSError, sqlite3.Error)

__all__ = [
    "CLAWFS_METADATA_KEYS",
    "DB_NAME",
    "DEFAULT_DTYPE",
    "DTYPES",
    "KEEP",
    "NORM_RANGE",
    "SCHEMA_VERSION",
    "TARGET_ERRORS",
    "BackupReport",
    "Hit",
    "HnswParams",
    "IndexFile",
    "IndexWorker",
    "Layout",
    "Placement",
    "RestoreReport",
    "Workspace",
    "WorkspaceBuilder",
    "WorkspaceFiles",
    "backup",
    "check_target_free",
    "finish_placement",
    "fts_query",
    "identity_document",
    "index_path_for",
    "install_moves",
    "make_private_dir",
    "metadata_entries",
    "remove_path",
    "remove_tree",
    "restore",
    "stored_row_hash",
    "usable",
    "write_private",
    "write_private_temp",
]
