"""The PostgreSQL side of the row checksums of `clawfs._checksum`, as SQL run inside PostgreSQL.

PostgreSQL formats every value itself (`to_char` for timestamps, `jsonb::text`, `vector_send` for the
float32 bytes of an embedding), so nothing of clawfs' own decoding takes part.
"""

from __future__ import annotations

from .._checksum import RANGE_SIZE


def _field(utf8: str) -> str:
    """`<byte length>:<bytes>` or `-` for NULL, of a bytea expression."""
    prefix = f"convert_to(length({utf8})::text || ':', 'UTF8')"
    return f"(CASE WHEN {utf8} IS NULL THEN '\\x2d'::bytea ELSE {prefix} || {utf8} END)"


def timestamp_text(ts: str) -> str:
    """DESIGN §2.2's timestamp text, by PostgreSQL: UTC, six fractional digits, expanded years."""
    year = f"extract(year FROM {ts} AT TIME ZONE 'UTC')::int"
    astronomical = f"(CASE WHEN {year} < 0 THEN {year} + 1 ELSE {year} END)"
    return (
        f"(CASE WHEN {ts} = 'infinity' THEN 'infinity' WHEN {ts} = '-infinity' THEN '-infinity' ELSE "
        f"(CASE WHEN {astronomical} > 9999 THEN '+' || {astronomical}::text "
        f"WHEN {astronomical} >= 0 THEN lpad({astronomical}::text, 4, '0') "
        f"ELSE '-' || lpad((-{astronomical})::text, 4, '0') END)"
        f" || to_char({ts} AT TIME ZONE 'UTC', '-MM-DD\"T\"HH24:MI:SS.US\"Z\"') END)"
    )


def _row_hash(canonical: str) -> str:
    return f"('x' || left(md5({canonical}), 16))::bit(64)::int8"


DOCUMENT_ROWS = f"""
SELECT d.id::int8 AS id, {_row_hash(" || ".join(_field(c) for c in ("b.i", "b.w", "b.c", "b.m", "b.t")))} AS h
FROM documents d, LATERAL (SELECT
    convert_to(d.id::int8::text, 'UTF8') AS i,
    convert_to(d.workspace_id, 'UTF8') AS w,
    convert_to(d.content, 'UTF8') AS c,
    convert_to(d.metadata::text, 'UTF8') AS m,
    convert_to({timestamp_text("d.created_at::timestamptz")}, 'UTF8') AS t OFFSET 0) b
WHERE d.workspace_id = %(workspace)s
"""

VECTOR_ROWS = f"""
SELECT v.id::int8 AS id, {_row_hash(" || ".join(_field(c) for c in ("b.i", "b.d", "b.t", "b.e")))} AS h
FROM vectors v JOIN documents d ON d.id = v.document_id, LATERAL (SELECT
    convert_to(v.id::int8::text, 'UTF8') AS i,
    convert_to(v.document_id::int8::text, 'UTF8') AS d,
    convert_to({timestamp_text("v.created_at::timestamptz")}, 'UTF8') AS t,
    substring(vector_send(v.embedding::vector) FROM 5) AS e OFFSET 0) b
WHERE d.workspace_id = %(workspace)s
"""


def range_sums(rows_query: str) -> str:
    """Per range: (range, rows, sum of row hashes) — the sum as numeric, reduced modulo 2^64 by the caller."""
    return (
        f"SELECT floor(id::numeric / {RANGE_SIZE})::int8 AS r, count(*), sum(h::numeric)"
        f" FROM ({rows_query}) x GROUP BY 1 ORDER BY 1"
    )


def rows_in_ranges(rows_query: str) -> str:
    """Row hashes of the given ranges (%(ranges)s), to name the rows behind a mismatch."""
    return f"SELECT id, h FROM ({rows_query}) x WHERE floor(id::numeric / {RANGE_SIZE})::int8 = ANY(%(ranges)s)"
