"""The PostgreSQL side (the only place psycopg is imported)."""

from ._postgres import DocumentRow, IdentityRow, Source, SourceInfo
from ._vector_copy import VectorBatch

__all__ = ["DocumentRow", "IdentityRow", "Source", "SourceInfo", "VectorBatch"]
