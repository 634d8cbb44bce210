"""Agent identity files (DESIGN §2.4): the spec's key order, every source key kept, numbers exact.

JSON numbers are carried as their source text (jsonb prints them exactly; a float round-trip would
not), so the file is written by a small serializer that matches `json.dumps(indent=2)` layout.
"""

from __future__ import annotations

import json
from typing import Any

STATE_FIRST = ("current_phase", "current_task", "last_checkpoint", "status")


class _Number(str):
    """A JSON number kept as its text."""


def _loads(text: str) -> Any:
    return json.loads(text, parse_int=_Number, parse_float=_Number)


def _dump(value: Any, indent: int = 0) -> str:
    pad = "  " * (indent + 1)
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dump(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        items = [pad + _dump(v, indent + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(value, ensure_ascii=False)


def identity_document(
    *,
    agent_id: str,
    version: int,
    created_at: str | None,
    updated_at: str | None,
    state: str,
    memory: str,
    history: str,
    performance: str,
    checksum: str,
) -> bytes:
    """The identity.json bytes for one source row (JSON columns given as PostgreSQL's text)."""
    source_state = _loads(state)
    if not isinstance(source_state, dict):
        raise ValueError("state is not a JSON object")
    ordered_state = {key: source_state.get(key) for key in STATE_FIRST}
    ordered_state.update((k, v) for k, v in source_state.items() if k not in STATE_FIRST)
    doc = {
        "agent_id": agent_id,
        "version": _Number(str(version)),
        "created_at": created_at,
        "updated_at": updated_at,
        "state": ordered_state,
        "memory": _loads(memory),
        "history": _loads(history),
        "performance": _loads(performance),
        "checksum": checksum,
    }
    return (_dump(doc) + "\n").encode("utf-8")
