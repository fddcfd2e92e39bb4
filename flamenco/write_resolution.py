"""How stale a recorded sign of life may be, so that busy Workers cost fewer writes.

A Worker's `last_activity` and its task's `last_worker_ping` are rewritten only when the stored
value is at least this old. The timeout that reads them must not mistake that lag for silence,
so the lag is at most a twelfth of that timeout.
"""

from __future__ import annotations

#: The lag for the default timeouts (60 s) and for a timeout that is off (0).
MAX_RESOLUTION_SECONDS = 5.0


def resolution_for(timeout: float) -> float:
    """At most a twelfth of `timeout` seconds, and never more than 5 s."""
    if timeout <= 0:
        return MAX_RESOLUTION_SECONDS
    return min(MAX_RESOLUTION_SECONDS, timeout / 12)
