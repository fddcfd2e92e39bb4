"""Telling the Server about this Manager (PROTOCOL §6.1, §6.2, §2.12).

The startup notification goes out shortly after start and is retried every `retry` seconds until
the Server accepts it once. The body is rebuilt for every attempt (current worker count). It is
the version-1 body with `path_replacement: {}` and `worker_task_types`, which both the 2017 and
the 2021 Server accept.

The task-types update notification (§6.2) is sent when workers' supported types change
(`types_changed()`); one retry loop at a time, a trigger while one is pending is absorbed, and
notifications start at most once per `types_interval` seconds (the body lists every Worker, so
a registration storm of N Workers would otherwise build it N times: N² rows read).
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from flamenco.store.interface import IStore, StoreUnavailable
from flamenco.upstream.client import UpstreamClient, UpstreamError


async def notification_body(store, manager_url: str, variables: dict) -> dict:
    workers = await store.list_workers()
    types = sorted({t for worker in workers for t in worker.supported_types})
    return {
        "manager_url": manager_url,
        "variables": variables,
        "nr_of_workers": len(workers),
        "path_replacement": {},
        "worker_task_types": types,
    }


class _RetryUntilAccepted:
    """Call `attempt` now-ish and every `retry` seconds until it succeeds once."""

    def __init__(self, clock: IReactorTime, attempt, retry: float, what: str, log: Logger):
        self.clock = clock
        self.attempt = attempt
        self.retry = retry
        self.what = what
        self.log = log
        self.call: IDelayedCall | None = None
        self.attempts = 0
        self.done = False
        self.current: defer.Deferred = defer.succeed(None)  # the latest attempt (tests)

    def start(self, delay: float) -> None:
        if self.call is None or not self.call.active():
            self.call = self.clock.callLater(delay, self._go)

    def stop(self) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()

    def _go(self) -> defer.Deferred:
        d = defer.ensureDeferred(self._attempt())
        d.addErrback(lambda f: self.log.failure("{what} failed unexpectedly", f, what=self.what))
        self.current = d
        return d

    async def _attempt(self) -> None:
        self.attempts += 1
        try:
            await self.attempt()
        except (UpstreamError, StoreUnavailable) as error:
            self.log.warn("{what} failed ({error}); retrying in {retry} s", what=self.what,
                          error=str(error), retry=self.retry)
            self.call = self.clock.callLater(self.retry, self._go)
            return
        self.done = True
        self.log.info("{what} accepted by the Server", what=self.what)


class StartupNotifier(Service):
    log = Logger()

    def __init__(self, client: UpstreamClient, store: IStore, clock: IReactorTime, *,
                 manager_url: str, variables: dict, first_delay: float = 0.5, retry: float = 30.0,
                 types_retry: float = 10.0, types_interval: float = 10.0):
        self.client = client
        self.clock = clock
        self.types_interval = types_interval
        self._types_started = float("-inf")
        self.store = store
        self.manager_url = manager_url
        self.variables = variables
        self.first_delay = first_delay
        self.startup = _RetryUntilAccepted(clock, self._send_startup, retry,
                                           "startup notification", self.log)
        self.types = _RetryUntilAccepted(clock, self._send_update, types_retry,
                                         "task-types notification", self.log)

    def startService(self):
        super().startService()
        self.startup.start(self.first_delay)

    def stopService(self):
        super().stopService()
        self.startup.stop()
        self.types.stop()

    def types_changed(self) -> None:
        """A worker registered or signed on with different types (§6.2)."""
        if self.types.call is not None and self.types.call.active():
            return  # a retry loop or a throttled start is pending; it sends the current types
        self.types.start(max(0.0, self._types_started + self.types_interval
                             - self.clock.seconds()))

    async def _body(self) -> dict:
        return await notification_body(self.store, self.manager_url, self.variables)

    async def _send_startup(self) -> None:
        await self.client.startup(await self._body())

    async def _send_update(self) -> None:
        self._types_started = self.clock.seconds()
        await self.client.update_notification(await self._body())
