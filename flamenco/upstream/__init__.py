"""The link to the Flamenco Server: what the scheduler needs from it, and a stand-in for none.

`ITaskSource` is the scheduler's whole view of the Server. `flamenco.upstream.link` provides
the real one (treq); `NoServer` is used when no Server is configured.
"""

from __future__ import annotations

import enum

import attrs
from twisted.internet import defer
from zope.interface import Interface, implementer


#: Setting that remembers the Server's last `X-Flamenco-Last-Updated` (cleanslate removes it).
DEPSGRAPH_TIMESTAMP = "depsgraph_last_updated"


class Freshness(enum.Enum):
    UNCHANGED = "unchanged"  # 304, or the Server could not say (timeout, 5xx): hand it out
    CHANGED = "changed"      # 200 with a new document: store it and choose again
    GONE = "gone"            # 204/4xx/undecodable: cancel locally and choose again


@attrs.frozen
class Refetched:
    freshness: Freshness
    doc: dict | None = None  # the validated new document when CHANGED


class ITaskSource(Interface):
    def refetch(task):
        """Ask the Server whether `task` changed (PROTOCOL §5.5). Fires with a `Refetched`
        within the refetch deadline; never fails."""

    def kick(types):
        """A worker supporting `types` found nothing to do: download tasks soon, favouring
        those types (throttled; never blocks the caller)."""

    def download_now():
        """Operator request: a full task download now (not throttled; never blocks)."""

    def push_soon():
        """Push queued updates at the next opportunity (the scheduler gave up, §5.1 step 7)."""

    def types_changed():
        """The workers' supported types changed: tell the Server (§6.2)."""


@implementer(ITaskSource)
class NoServer:
    """No Server configured: every task is as cached, and there is nothing to download."""

    def refetch(self, task):
        return defer.succeed(Refetched(Freshness.UNCHANGED))

    def kick(self, types):
        pass

    def download_now(self):
        pass

    def push_soon(self):
        pass

    def types_changed(self):
        pass
