"""Value formats of DESIGN §2 and §2.2: pure functions, no I/O.

- timestamps: PostgreSQL's binary timestamp (microseconds since 2000-01-01 UTC, int64, with
  INT64_MAX / INT64_MIN for infinity / -infinity) to `YYYY-MM-DDTHH:MM:SS.ffffffZ`. Years outside
  0001-9999 (PostgreSQL allows 4713 BC to 294276 AD) use ISO 8601's expanded form: a sign and the
  astronomical year (1 BC is `0000`, 2 BC is `-0001`).
- embeddings: little-endian float32 blobs.
- ids: directory names with every byte outside `[A-Za-z0-9_-]` percent-encoded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
_US_PER_DAY = 86_400_000_000
_DAYS_1970_TO_2000 = 10_957
# 0001-01-01 and 10000-01-01 in microseconds since 2000-01-01: the range numpy formats like we do.
_FAST_MIN = -63_082_281_600_000_000
_FAST_MAX = 252_455_616_000_000_000
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm)."""
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def format_timestamp(us: int) -> str:
    """One PostgreSQL binary timestamp as text (DESIGN §2.2)."""
    if us == INT64_MAX:
        return "infinity"
    if us == INT64_MIN:
        return "-infinity"
    days, rest = divmod(us, _US_PER_DAY)
    year, month, day = _civil_from_days(days + _DAYS_1970_TO_2000)
    seconds, micros = divmod(rest, 1_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if 0 <= year <= 9999:
        y = f"{year:04d}"
    elif year > 9999:
        y = f"+{year}"
    else:
        y = f"-{-year:04d}"
    return f"{y}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{micros:06d}Z"


_PG_EPOCH_UTC = datetime(2000, 1, 1, tzinfo=UTC)


def datetime_text(value: datetime) -> str:
    """A timezone-aware datetime as DESIGN §2.2 text (the same formatter as PostgreSQL's values)."""
    return format_timestamp((value - _PG_EPOCH_UTC) // timedelta(microseconds=1))


def now_text() -> str:
    return datetime_text(datetime.now(UTC))


def format_timestamps(us: npt.NDArray[np.int64]) -> list[str]:
    """Many binary timestamps at once; numpy formats the common range, Python the rest."""
    us = np.asarray(us, dtype=np.int64)
    fast = (us >= _FAST_MIN) & (us < _FAST_MAX)
    out: list[str]
    if fast.all():
        texts = np.datetime_as_string(_PG_EPOCH + us.astype("timedelta64[us]"), unit="us")
        return [t + "Z" for t in texts.tolist()]
    out = [format_timestamp(int(v)) for v in us.tolist()]
    return out


def embedding_to_blob(vector: Sequence[float] | npt.NDArray[np.floating]) -> bytes:
    """A vector as little-endian float32 bytes (dimension * 4)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def blob_to_embedding(blob: bytes) -> npt.NDArray[np.float32]:
    if len(blob) % 4:
        raise ValueError(f"an embedding blob has {len(blob)} bytes, not a multiple of 4")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
MAX_NAME_BYTES = 255


def encode_id(ident: str) -> str:
    """A workspace or agent id as one safe directory name: `team/a.b` -> `team%2Fa%2Eb`."""
    if not ident:
        raise ValueError("an empty id cannot name a directory")
    name = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in ident.encode("utf-8"))
    if len(name) > MAX_NAME_BYTES:
        raise ValueError(f"id {ident[:40]!r}... is too long for a directory name ({len(name)} bytes encoded)")
    return name


def decode_id(name: str) -> str:
    return unquote(name, encoding="utf-8", errors="strict")


# libpq key=value syntax: a value is single-quoted or runs to ASCII white space; backslash escapes anywhere
_DSN_PASSWORD = re.compile(
    r"(password[ \t\n\r\f\v]*=[ \t\n\r\f\v]*)('(?:[^'\\]|\\.)*'|(?:[^ \t\n\r\f\v\\]|\\.)+)",
    re.IGNORECASE | re.DOTALL,
)


def source_secrets(url: str | None) -> list[str | None]:
    """What must never be printed or written of a source: the URL's password and $PGPASSWORD."""
    return [url_password(url or ""), os.environ.get("PGPASSWORD")]


def source_label(url: str | None) -> str:
    """Where a command reads from, fit to print or log: the URL with its password redacted."""
    return redact_url(url) if url else "(libpq environment)"


def redact_url(url: str) -> str:
    """A connection string that is safe to print: any password replaced by `***`."""
    if "://" not in url:
        return _DSN_PASSWORD.sub(r"\1***", url)
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{hostport}" if ":" in userinfo else f"{user}@{hostport}"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", parts.query, flags=re.IGNORECASE)
    redacted = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    if not netloc and url.startswith(f"{parts.scheme}://"):  # postgresql:///db keeps its empty authority
        redacted = f"{parts.scheme}://{redacted[len(parts.scheme) + 1 :]}"
    return redacted


def url_password(url: str) -> str | None:
    """The password written in a URL or DSN, so that it can be scrubbed from any text."""
    if "://" in url:
        parts = urlsplit(url)
        if parts.password:
            return unquote(parts.password)
        m = re.search(r"(?:^|&)password=([^&]*)", parts.query, flags=re.IGNORECASE)
        return unquote(m.group(1)) if m else None
    m = _DSN_PASSWORD.search(url)
    if not m:
        return None
    value = m.group(2)
    if value.startswith("'") and value.endswith("'") and len(value) >= 2:
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value, flags=re.DOTALL)


def scrub(text: str, secrets: Sequence[str | None]) -> str:
    """Remove every secret (in plain and URL-quoted form) from a text meant for people or logs."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            quoted = quote(secret, safe="")
            if quoted != secret:
                text = text.replace(quoted, "***")
    return text
