"""The task downloader (PROTOCOL §6.3, §5.8): the Server's depsgraph into the local queue.

Downloads run at start, every `download_task_sleep_seconds`, and when a worker found nothing
to do (`kick`, throttled by `download_task_recheck_throttle_seconds`: negative = never, 0 = no
throttle, else at most once per that many seconds *per task type*). One download at a time;
kicks during a download are coalesced into one more download after it. A kick never blocks the
caller.

Job-type awareness: a kicked download carries the idle worker's types as a hint,
`?task_types=a,b`. A Server that does not know the parameter ignores it and answers as usual. A
Server that honours it serves those types first and says so in `X-Flamenco-Task-Types`; such an
answer may be a partial view, so its `X-Flamenco-Last-Updated` is not remembered (the next regular
download, sent with the older timestamp, fills in anything skipped).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Callable

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from flamenco.documents import InvalidDocument, parse_server_task
from flamenco.logs import log_failure
from flamenco.timefmt import utc_now
from flamenco.upstream import DEPSGRAPH_TIMESTAMP
from flamenco.upstream.client import UpstreamClient, UpstreamError

LEASE_NAME = "depsgraph-download"


class TaskDownloader(Service):
    """Its own `LoopingCall` rather than a `TimerService`: kicks start downloads between the
    ticks, coalesced with the timer's, and stopping does not wait for a download in flight
    (a `TimerService` would, for as long as the Server takes to answer or time out)."""

    log = Logger()

    def __init__(self, client: UpstreamClient, store, clock: IReactorTime, *,
                 interval: float, throttle: float, lease_holder: str, lease_seconds: float):
        self.client = client
        self.store = store
        self.clock = clock
        self.interval = interval
        self.throttle = throttle
        self.lease_holder = lease_holder
        self.lease = timedelta(seconds=lease_seconds)
        self._loop: task.LoopingCall | None = None
        self._last_kick: dict[str, float] = {}
        self._want_full = False
        self._want_types: set[str] = set()
        self._running: defer.Deferred | None = None
        self._scheduled: IDelayedCall | None = None
        self._idle_waiters: list[defer.Deferred[None]] = []
        self.downloads = 0  # completed download attempts (for tests and the status report)
        self.failures = 0  # download attempts failed in a row
        self.last_success: float | None = None
        #: Called with `succeeded` after every download attempt (health, metrics).
        self.observers: list[Callable[[bool], None]] = []

    # -- service ---------------------------------------------------------------------------------
    def startService(self):
        super().startService()
        self._loop = task.LoopingCall(self.download_now)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("task download loop stopped", f))

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        # A download in flight finishes (or times out) by itself; nothing is lost either way.

    # -- triggers --------------------------------------------------------------------------------
    def download_now(self) -> defer.Deferred:
        """A full download as soon as possible; fires when it (and any queued kick) is done."""
        self._want_full = True
        return self._start()

    def kick(self, types) -> None:
        """A worker supporting `types` found no task (§5.8). Fire and forget."""
        if self.throttle < 0:
            return
        now = self.clock.seconds()
        keys = tuple(types) or ("",)
        due = [key for key in keys if self.throttle == 0
               or now - self._last_kick.get(key, float("-inf")) > self.throttle]
        if not due:
            return
        for key in keys:
            self._last_kick[key] = now
        self._want_types.update(t for t in types if t)
        if not self._want_types:
            self._want_full = True
        if self._running is None and (self._scheduled is None or not self._scheduled.active()):
            # Not from inside the worker's request: start on the next reactor turn.
            self._scheduled = self.clock.callLater(0, self._start)

    def when_idle(self) -> defer.Deferred[None]:
        """Fires once no download is running or pending (tests)."""
        if self._running is None and not (self._scheduled and self._scheduled.active()):
            return defer.succeed(None)
        idle: defer.Deferred[None] = defer.Deferred()
        self._idle_waiters.append(idle)
        return idle

    # -- the download loop -----------------------------------------------------------------------
    def _start(self) -> defer.Deferred[None]:
        if self._running is None:
            self._running = defer.ensureDeferred(self._drain())
            self._running.addBoth(self._done)
        done: defer.Deferred[None] = defer.Deferred()
        self._idle_waiters.append(done)
        return done

    def _done(self, _):
        self._running = None
        if self._scheduled is not None and self._scheduled.active():
            return  # a kick is about to start another round; waiters wait for it
        waiters, self._idle_waiters = self._idle_waiters, []
        for d in waiters:
            d.callback(None)

    async def _drain(self) -> None:
        while self._want_types or self._want_full:
            if self._want_types:
                hint = tuple(sorted(self._want_types))
                self._want_types.clear()
            else:
                hint = ()
                self._want_full = False
            try:
                await self.download(hint)
            except Exception:  # noqa: BLE001 - never let one round stop the loop
                log_failure(self.log, "task download failed")

    def _tell_observers(self, succeeded: bool) -> None:
        for observer in self.observers:
            observer(succeeded)

    async def download(self, hint: tuple[str, ...] = ()) -> int:
        """One depsgraph round; returns the number of tasks stored."""
        now = utc_now(self.clock)
        if not await self.store.try_lease(LEASE_NAME, self.lease_holder, now, self.lease):
            self.log.debug("another Manager is downloading tasks; skipping this round")
            return 0
        since = await self.store.get_setting(DEPSGRAPH_TIMESTAMP)
        try:
            result = await self.client.depsgraph(since, hint)
        except UpstreamError as error:
            self.log.warn("task download failed: {error}", error=str(error))
            self.failures += 1
            self._tell_observers(False)
            return 0
        finally:
            self.downloads += 1
        self.failures = 0
        self.last_success = self.clock.seconds()
        self._tell_observers(True)
        if result.code != 200:
            self.log.debug("task download: {code}, nothing new", code=result.code)
            return 0
        docs = []
        for raw in result.tasks:
            try:
                docs.append(parse_server_task(raw))
            except InvalidDocument as error:
                self.log.warn("task download: skipping a task: {error}", error=error.message)
        if docs:
            await self.store.store_server_tasks(docs, utc_now(self.clock))
        partial = bool(result.honoured_types)
        if result.last_updated and not partial:
            await self.store.set_setting(DEPSGRAPH_TIMESTAMP, result.last_updated)
        self.log.info("downloaded {count} tasks{hint}", count=len(docs),
                      hint=f" (types {', '.join(hint)} first)" if partial else "")
        return len(docs)
