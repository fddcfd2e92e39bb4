"""How the link to the Server is doing, for the operator API, dashboard and metrics.

Green: the last push and download worked and nothing waits long. Amber: one failure in a row,
or the oldest queued update is older than `stale_after` seconds. Red: two failures or more in a
row. "none": no Server is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime

from flamenco.events import EventBus
from flamenco.store.interface import IStore
from flamenco.timefmt import from_epoch, rfc3339, utc_now

if TYPE_CHECKING:
    from flamenco.upstream.link import UpstreamLink

RED_AFTER_FAILURES = 2


class UpstreamHealth:
    def __init__(self, store: IStore, clock: IReactorTime, bus: EventBus,
                 link: UpstreamLink | None = None, *,
                 stale_after: float = 300.0):
        self.store = store
        self.clock = clock
        self.bus = bus
        self.link = link
        self.stale_after = stale_after
        if link is not None:
            link.pusher.observers.append(lambda ok, seconds: self._observed())
            link.downloader.observers.append(lambda ok: self._observed())

    def _observed(self) -> None:
        self.bus.publish("upstream", self.link_state())

    def link_state(self) -> dict:
        """What is known without asking the store."""
        if self.link is None:
            return {"configured": False, "state": "none"}
        pusher, downloader = self.link.pusher, self.link.downloader
        return {
            "configured": True,
            "last_push": _moment(pusher.last_success),
            "last_download": _moment(downloader.last_success),
            "push_failures": pusher.failures,
            "download_failures": downloader.failures,
            "gzip": pusher.client.gzip_choice.in_use,
            "state": self._state(pusher.failures, downloader.failures, 0.0),
        }

    async def report(self) -> dict:
        queued = await self.store.count_queued_updates()
        oldest = await self.store.queued_updates(1)
        age = None
        if oldest:
            age = max(0.0, (utc_now(self.clock) - oldest[0].received_on_manager).total_seconds())
        doc = {"queued_updates": queued, "oldest_queued_age_seconds": age, **self.link_state()}
        if self.link is not None:
            doc["state"] = self._state(doc["push_failures"], doc["download_failures"], age or 0.0)
        return doc

    def _state(self, push_failures: int, download_failures: int, oldest_age: float) -> str:
        worst = max(push_failures, download_failures)
        if worst >= RED_AFTER_FAILURES:
            return "red"
        if worst or oldest_age > self.stale_after:
            return "amber"
        return "green"


def _moment(seconds: float | None) -> str | None:
    moment = from_epoch(seconds)
    return None if moment is None else rfc3339(moment)
