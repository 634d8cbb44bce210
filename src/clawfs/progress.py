"""Progress is passed in, silent by default: the library never prints.

A step calls `start(step, total)`, then `advance(step, rows, nbytes)` as work is done, then
`finish(step)`. The CLI passes a live implementation (a bar on a terminal, log lines otherwise).
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, step: str, total: int | None, unit: str = "rows") -> None: ...

    def advance(self, step: str, rows: int, nbytes: int = 0) -> None: ...

    def finish(self, step: str) -> None: ...


class NullProgress:
    def start(self, step: str, total: int | None, unit: str = "rows") -> None:
        pass

    def advance(self, step: str, rows: int, nbytes: int = 0) -> None:
        pass

    def finish(self, step: str) -> None:
        pass


NULL_PROGRESS = NullProgress()
