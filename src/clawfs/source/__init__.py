"""The PostgreSQL side (the only place psycopg is imported)."""

from ._pgoutput import ChangeSet, PgoutputDecoder, PgoutputError
from ._postgres import DocumentRow, IdentityRow, ReadOnlySwitch, Source, SourceInfo, make_database_read_only
from ._replication import ReplicationSlot, SlotStatus, create_slot, drop_slot, lsn_text
from ._sample import SampleStore, fill_sample_store
from ._vector_copy import VectorBatch

__all__ = [
    "ChangeSet",
    "DocumentRow",
    "IdentityRow",
    "PgoutputDecoder",
    "PgoutputError",
    "ReadOnlySwitch",
    "ReplicationSlot",
    "SampleStore",
    "SlotStatus",
    "Source",
    "SourceInfo",
    "VectorBatch",
    "create_slot",
    "drop_slot",
    "fill_sample_store",
    "lsn_text",
    "make_database_read_only",
]
