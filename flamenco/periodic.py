"""Periodic work on the injected clock: `PeriodicJob`, a job run a while after start-up and
then periodically, guarded by a store lease so that only one of several Managers sharing a
database runs it at a time; and `Rounds`, a timer whose round can also be started by hand."""

from __future__ import annotations

from datetime import datetime, timedelta

from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from flamenco.store.interface import IStore, StoreUnavailable
from flamenco.timefmt import utc_now

log = Logger()


class PeriodicJob(TimerService):
    """Runs `run(now)` `first` seconds after start, then every `interval` seconds.

    A `TimerService` (which runs at once when started) whose start is put off by `first`
    seconds. Stopping waits for a run in flight.
    """

    lease_name = ""

    def __init__(self, store: IStore, clock: IReactorTime, *, first: float, interval: float,
                 lease_holder: str):
        super().__init__(interval, self._run_logging_errors)
        self.clock = clock
        self.store = store
        self.first = first
        self.lease_holder = lease_holder
        self._first: IDelayedCall | None = None

    @property
    def interval(self) -> float:
        return self.step

    def startService(self):
        Service.startService(self)
        self._first = self.clock.callLater(self.first, self._start_timer)

    def _start_timer(self) -> None:
        self._first = None
        super().startService()

    def stopService(self):
        if self._first is not None:  # stopped before the first run
            self._first.cancel()
            self._first = None
            return Service.stopService(self)
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


class Rounds(TimerService):
    """Runs `_round()` every `interval` seconds and when `inspect()` is called; a round is
    skipped while one runs, and stopping waits for the one in flight, however it started
    (a `TimerService` alone waits only for the rounds its timer started)."""

    def __init__(self, interval: float):
        super().__init__(interval, self.inspect)
        self._busy: defer.Deferred | None = None

    def stopService(self):
        stopped = super().stopService()
        if self._busy is None:
            return stopped
        return defer.gatherResults([stopped, self._busy])

    def inspect(self) -> defer.Deferred:
        """One round (skipped while one runs); fires when it is done."""
        if self._busy is not None:
            return defer.succeed(None)
        busy = defer.ensureDeferred(self._round())
        busy.addErrback(self._round_failed)
        if busy.called:
            return busy
        self._busy = busy

        def idle(result):
            self._busy = None
            return result

        return busy.addBoth(idle)

    async def _round(self) -> None:
        raise NotImplementedError

    def _round_failed(self, failure) -> None:
        raise NotImplementedError
