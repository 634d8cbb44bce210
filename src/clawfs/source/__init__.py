"""The PostgreSQL side (the only place psycopg is imported)."""

from ._postgres import DocumentRow, IdentityRow, Source, SourceInfo
from ._sample import SampleStore, fill_sample_store
from ._vector_copy import VectorBatch

__all__ = [
    "DocumentRow",
    "IdentityRow",
    "SampleStore",
    "Source",
    "SourceInfo",
    "VectorBatch",
    "fill_sample_store",
]
