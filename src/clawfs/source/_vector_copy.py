"""Decode `COPY ... TO STDOUT (FORMAT BINARY)` of the vectors query with numpy.

The query yields five columns: workspace index (int4), id (int8), document_id (int8), embedding
(pgvector `vector` or `halfvec`) and created_at (timestamptz). When every field is present and the
embedding has the expected dimension, every tuple has the same size, so a whole buffer of tuples is
one numpy structured array: decoding costs a few vectorised passes, not a Python loop per float.
A tuple that breaks the pattern (a NULL, another dimension) is decoded on its own and reported.

pgvector's binary format: int16 dimension, int16 unused, then big-endian float4 (halfvec: float2).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .._values import format_timestamps
from ..errors import BadRowError, SourceError

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_FIELDS = 5


@dataclass(frozen=True)
class VectorBatch:
    """Vectors of one workspace, decoded: ids, document ids, float32 embeddings, created_at texts."""

    workspace: int
    ids: npt.NDArray[np.int64]
    document_ids: npt.NDArray[np.int64]
    embeddings: npt.NDArray[np.float32]
    created_at: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def _tuple_dtype(dimension: int, element: str) -> np.dtype[np.void]:
    return np.dtype(
        [
            ("nfields", ">i2"),
            ("ws_len", ">i4"),
            ("ws", ">i4"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("doc_len", ">i4"),
            ("doc", ">i8"),
            ("emb_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("emb", element, (dimension,)),
            ("ts_len", ">i4"),
            ("ts", ">i8"),
        ]
    )


class VectorCopyDecoder:
    """Feed raw COPY chunks in, get `VectorBatch`es out; irregular tuples go to `on_bad_row`."""

    def __init__(
        self,
        dimension: int,
        halfvec: bool,
        batch_rows: int,
        on_bad_row: Callable[[BadRowError], None],
        orphan_reason: Callable[[int | None], str],
    ) -> None:
        self.dimension = dimension
        self.element = ">f2" if halfvec else ">f4"
        self.element_size = 2 if halfvec else 4
        self.dtype = _tuple_dtype(dimension, self.element)
        self.emb_len = 4 + dimension * self.element_size
        self.batch_bytes = max(1, batch_rows) * self.dtype.itemsize
        self.on_bad_row = on_bad_row
        self.orphan_reason = orphan_reason
        self.buffer = bytearray()
        self.header_done = False
        self.finished = False
        self.bytes_read = 0
        self.rows_read = 0

    def decode(self, chunks: Iterable[bytes | bytearray | memoryview]) -> Iterator[VectorBatch]:
        for chunk in chunks:
            self.buffer += chunk
            self.bytes_read += len(chunk)
            if len(self.buffer) >= self.batch_bytes:
                yield from self._drain()
        yield from self._drain()
        if not self.finished:
            raise SourceError("the COPY stream of vectors ended without its trailer (connection lost?)")

    def _drain(self) -> Iterator[VectorBatch]:
        buf = self.buffer
        pos = 0
        if not self.header_done:
            if len(buf) < 19:
                return
            if bytes(buf[:11]) != COPY_SIGNATURE:
                raise SourceError("unexpected COPY BINARY header from PostgreSQL")
            (ext_len,) = struct.unpack_from(">i", buf, 15)
            pos = 19 + ext_len
            self.header_done = True
        size = self.dtype.itemsize
        while not self.finished:
            if len(buf) - pos >= 2 and buf[pos : pos + 2] == b"\xff\xff":
                self.finished = True
                pos += 2
                break
            count = (len(buf) - pos) // size
            if count:
                records = np.frombuffer(buf, dtype=self.dtype, count=count, offset=pos)
                regular = (
                    (records["nfields"] == _FIELDS)
                    & (records["ws_len"] == 4)
                    & (records["id_len"] == 8)
                    & (records["doc_len"] == 8)
                    & (records["emb_len"] == self.emb_len)
                    & (records["dim"] == self.dimension)
                    & (records["ts_len"] == 8)
                )
                irregular = np.flatnonzero(~regular)
                good = int(irregular[0]) if len(irregular) else count
                if good:
                    yield from self._batches(records[:good])
                    pos += good * size
                del records
                if good < count:
                    step = self._irregular(buf, pos)
                    if step is None:
                        break
                    pos += step
                continue
            step = self._irregular(buf, pos)  # fewer bytes than a regular tuple: maybe a short one
            if step is None:
                break
            pos += step
        del buf[:pos]

    def _batches(self, records: npt.NDArray[np.void]) -> Iterator[VectorBatch]:
        self.rows_read += len(records)
        embeddings = records["emb"].astype("<f4")
        finite = np.isfinite(embeddings).all(axis=1)
        if not finite.all():
            for i in np.flatnonzero(~finite):
                self.on_bad_row(BadRowError("vectors", int(records["id"][i]), "embedding has NaN or Inf"))
            records = records[finite]
            embeddings = embeddings[finite]
        workspaces = records["ws"].astype(np.int32)
        for ws in np.unique(workspaces):
            mask = workspaces == ws
            yield VectorBatch(
                workspace=int(ws),
                ids=records["id"][mask].astype(np.int64),
                document_ids=records["doc"][mask].astype(np.int64),
                embeddings=np.ascontiguousarray(embeddings[mask]),
                created_at=format_timestamps(records["ts"][mask].astype(np.int64)),
            )

    def _irregular(self, buf: bytearray, pos: int) -> int | None:
        """Decode one tuple field by field; report it. Returns its length, or None if incomplete."""
        if len(buf) - pos < 2:
            return None
        (nfields,) = struct.unpack_from(">h", buf, pos)
        if nfields != _FIELDS:
            raise SourceError(f"unexpected COPY tuple with {nfields} fields in vectors")
        at = pos + 2
        fields: list[bytes | None] = []
        for _ in range(nfields):
            if len(buf) - at < 4:
                return None
            (length,) = struct.unpack_from(">i", buf, at)
            at += 4
            if length < 0:
                fields.append(None)
                continue
            if len(buf) - at < length:
                return None
            fields.append(bytes(buf[at : at + length]))
            at += length
        self.rows_read += 1
        self._report_irregular(fields)
        return at - pos

    def _report_irregular(self, fields: list[bytes | None]) -> None:
        ws_raw, id_raw, doc_raw, emb_raw, ts_raw = fields
        row_id = struct.unpack(">q", id_raw)[0] if id_raw is not None else None
        document_id = struct.unpack(">q", doc_raw)[0] if doc_raw is not None else None
        if ws_raw is None:
            reason = self.orphan_reason(document_id)
        elif emb_raw is None:
            reason = "embedding is NULL"
        elif struct.unpack_from(">h", emb_raw)[0] != self.dimension:
            reason = f"embedding has dimension {struct.unpack_from('>h', emb_raw)[0]}, expected {self.dimension}"
        elif ts_raw is None:
            reason = "created_at is NULL (the workspace needs a value)"
        else:
            reason = "unexpected field sizes"  # cannot happen with the query of source._postgres
        self.on_bad_row(BadRowError("vectors", row_id, reason))
