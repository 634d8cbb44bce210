"""The PostgreSQL side (the only place psycopg is imported)."""

from ._postgres import DocumentRow, IdentityRow, ReadOnlySwitch, Source, SourceInfo, make_database_read_only
from ._sample import SampleStore, fill_sample_store
from ._vector_copy import VectorBatch

__all__ = [
    "DocumentRow",
    "IdentityRow",
    "ReadOnlySwitch",
    "SampleStore",
    "Source",
    "SourceInfo",
    "VectorBatch",
    "fill_sample_store",
    "make_database_read_only",
]
