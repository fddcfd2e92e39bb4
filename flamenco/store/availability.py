"""One warning when an open database stops answering and one line when it answers again.

Both stores report the outcome of every call here. Callers of the store (the web layer, the
timers, the Server link) then need not log each `StoreUnavailable` themselves: an outage of
any length is two log lines, not one per request.
"""

from __future__ import annotations

import time

from twisted.logger import Logger

log = Logger()


class Availability:
    def __init__(self, description: str):
        self.description = description
        self._open = False
        self._lost_at: float | None = None

    @property
    def lost(self) -> bool:
        return self._lost_at is not None

    def opened(self) -> None:
        self._open = True
        self._lost_at = None

    def closed(self) -> None:
        self._open = False
        self._lost_at = None

    def succeeded(self) -> None:
        if self._lost_at is not None:
            lost_for = time.monotonic() - self._lost_at
            self._lost_at = None
            log.warn("database {store} answers again (unreachable for {seconds:.0f} s)",
                     store=self.description, seconds=lost_for)

    def failed(self, error: Exception) -> None:
        # Before the first successful open, the StoreService reports (start-up deadline).
        if self._open and self._lost_at is None:
            self._lost_at = time.monotonic()
            log.warn("database {store} unreachable: {error}; requests get 503 until it is back",
                     store=self.description, error=str(error))
