"""Failing tasks whose worker went silent (PROTOCOL §4.5 E7).

A timed-out task whose Worker never reported on it (no update, no may-i-run since it was handed
out) was never started as far as anyone knows (its Worker lost the answer of its /task, e.g. in
a Manager crash): it is re-queued for any Worker instead of failed."""

from __future__ import annotations

from datetime import timedelta

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import Task
from flamenco.store.interface import StoreUnavailable
from flamenco.timefmt import log_stamp, rfc3339
from flamenco.updates import UpdateQueue

log = Logger()

LEASE_NAME = "task-timeout-sweep"


class TaskTimeoutChecker(Service):
    """Every `interval` seconds, after a start-up `grace` period so workers can report back
    after a Manager outage, fail the active tasks not pinged within `timeout` seconds."""

    name = "task-timeout-checker"

    def __init__(self, store, updates: UpdateQueue, clock, *, timeout: float, interval: float,
                 grace: float, lease_holder: str):
        self.store = store
        self.updates = updates
        self.clock = clock
        self.timeout = timeout
        self.interval = interval
        self.grace = grace
        self.lease_holder = lease_holder
        self._loop = LoopingCall(self._sweep_logging_errors)
        self._loop.clock = clock
        self._first = None

    def startService(self):
        super().startService()
        self._first = self.clock.callLater(self.grace, self._start_loop)

    def _start_loop(self):
        self._first = None
        self._loop.start(self.interval, now=True)

    def stopService(self):
        if self._first is not None and self._first.active():
            self._first.cancel()
        if self._loop.running:
            self._loop.stop()
        return super().stopService()

    async def _sweep_logging_errors(self) -> None:
        try:
            await self.sweep()
        except StoreUnavailable as error:
            log.debug("task timeout check skipped: {error}", error=error)
        except Exception:
            log.failure("task timeout check failed")

    async def sweep(self) -> list[str]:
        """Fail (or re-queue, see above) every timed-out task now; returns their IDs."""
        now = self.updates.now()
        lease = timedelta(seconds=max(self.interval * 3, 15))
        if not await self.store.try_lease(LEASE_NAME, self.lease_holder, now, lease):
            return []
        handled = []
        for task in await self.store.stale_active_tasks(now - timedelta(seconds=self.timeout)):
            if task.worker_reported:
                await self._fail(task)
            else:
                await self._requeue(task)
            handled.append(task.id)
        return handled

    async def _requeue(self, task: Task) -> None:
        ident = task.worker or task.worker_id or "-no worker-"
        reason = "it never reported on the task"
        await self.updates.queue_note(
            task.id, f"Re-queued task after unassigning from worker {ident}: {reason}",
            log=f"Manager re-queued task after unassigning it from worker {ident}: {reason}",
            task_status=statuses.CLAIMED, worker="-")
        log.warn("task {task} was handed to worker {worker}, which never reported on it;"
                 " re-queued", task=task.id, worker=ident)

    async def _fail(self, task: Task) -> None:
        ident = task.worker or task.worker_id or "-no worker-"
        since = rfc3339(task.last_worker_ping) if task.last_worker_ping else "never"
        line = (
            f"{log_stamp(self.updates.now(), local=False)} Task {task.name} ({task.id}) timed out,"
            f" was active but untouched since {since}. Was handled by worker {ident}"
        )
        await self.updates.queue(
            task.id, task_status=statuses.FAILED, activity=f"Task timed out on worker {ident}",
            log=line,
        )
        log.warn("task {task} timed out on worker {worker}", task=task.id, worker=ident)
