"""Slowing brute force: too many failed Worker authentications from one address get 429.

Counted in fixed windows per client address. Once an address has `threshold` failures in the
current window, its requests that would need bcrypt are refused with `TooManyFailures` until
the window ends; the Worker service still lets through, first, any request whose secret the
credential cache already vouches for, so a correctly authenticating Worker behind the same
address (a NAT) is not delayed. Each address is logged once per window.
"""

from __future__ import annotations

import math

from twisted.logger import Logger

from flamenco.errors import ManagerError

log = Logger()

#: Past this many tracked addresses, expired windows are pruned (memory stays bounded).
PRUNE_ABOVE = 10_000


class TooManyFailures(ManagerError):
    """Too many failed authentications from this address: retry in `retry_after` s (429)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class FailedAuthLimiter:
    def __init__(self, clock, threshold: int, window: float):
        self.clock = clock
        self.threshold = threshold
        self.window = window
        self._windows: dict[str, list] = {}  # address -> [window start, failures, logged]

    def _current(self, address: str) -> list | None:
        entry = self._windows.get(address)
        if entry is None or self.clock.seconds() >= entry[0] + self.window:
            return None
        return entry

    def check(self, address: str) -> None:
        """Raise TooManyFailures when `address` is over the threshold in this window."""
        entry = self._current(address)
        if entry is not None and entry[1] >= self.threshold:
            retry_after = max(1, math.ceil(entry[0] + self.window - self.clock.seconds()))
            raise TooManyFailures(
                f"too many failed authentications from {address}; try again later", retry_after)

    def failed(self, address: str) -> None:
        entry = self._current(address)
        if entry is None:
            if len(self._windows) >= PRUNE_ABOVE:
                self._prune()
            entry = self._windows[address] = [self.clock.seconds(), 0, False]
        entry[1] += 1
        if entry[1] >= self.threshold and not entry[2]:
            entry[2] = True
            log.warn("{count} failed Worker authentications from {address} within {window:.0f} s;"
                     " refusing its unverified requests with 429 until the window ends",
                     count=entry[1], address=address, window=self.window)

    def _prune(self) -> None:
        now = self.clock.seconds()
        for address in [a for a, e in self._windows.items() if now >= e[0] + self.window]:
            del self._windows[address]
