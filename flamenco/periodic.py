"""A job run a while after start-up and then periodically, on the injected clock, guarded by a
store lease so that only one of several Managers sharing a database runs it at a time."""

from __future__ import annotations

from datetime import datetime, timedelta

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from flamenco.store.interface import StoreUnavailable
from flamenco.timefmt import utc_now

log = Logger()


class PeriodicJob(Service):
    """Runs `run(now)` `first` seconds after start, then every `interval` seconds."""

    lease_name = ""

    def __init__(self, store, clock, *, first: float, interval: float, lease_holder: str):
        self.store = store
        self.clock = clock
        self.first = first
        self.interval = interval
        self.lease_holder = lease_holder
        self._loop = LoopingCall(self._run_logging_errors)
        self._loop.clock = clock
        self._first = None

    def startService(self):
        super().startService()
        self._first = self.clock.callLater(self.first, self._start_loop)

    def _start_loop(self):
        self._first = None
        self._loop.start(self.interval, now=True)

    def stopService(self):
        if self._first is not None and self._first.active():
            self._first.cancel()
        if self._loop.running:
            self._loop.stop()
        return super().stopService()

    async def _run_logging_errors(self) -> None:
        try:
            await self.run_now()
        except StoreUnavailable as error:
            # The store's availability log says once that the database is gone.
            log.debug("{job} skipped: {error}", job=self.name, error=error)
        except Exception:
            log.failure("{job} failed", job=self.name)

    async def run_now(self):
        now = utc_now(self.clock)
        lease = timedelta(seconds=max(self.interval * 3, 15))
        if not await self.store.try_lease(self.lease_name, self.lease_holder, now, lease):
            return None
        return await self.run(now)

    async def run(self, now: datetime):
        raise NotImplementedError
