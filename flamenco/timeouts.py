"""Failing tasks whose worker went silent (PROTOCOL §4.5 E7).

A timed-out task whose Worker never reported on it (no update, no may-i-run since it was handed
out) was never started as far as anyone knows (its Worker lost the answer of its /task, e.g. in
a Manager crash): it is re-queued for any Worker instead of failed."""

from __future__ import annotations

from datetime import datetime, timedelta

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import Task
from flamenco.housekeeping import WorkerTimeouts
from flamenco.periodic import PeriodicJob
from flamenco.store.interface import IStore
from flamenco.timefmt import log_stamp, rfc3339
from flamenco.updates import UpdateQueue

log = Logger()

LEASE_NAME = "task-timeout-sweep"


class TaskTimeoutChecker(PeriodicJob):
    """Every `interval` seconds, after a start-up `grace` period so workers can report back
    after a Manager outage, fail the active tasks not pinged within `timeout` seconds."""

    name = "task-timeout-checker"  # type: ignore[assignment]  # Service.name = None, unannotated
    lease_name = LEASE_NAME

    def __init__(self, store: IStore, updates: UpdateQueue, clock: IReactorTime, *,
                 timeout: float, interval: float, grace: float, lease_holder: str,
                 worker_timeouts: WorkerTimeouts | None = None):
        super().__init__(store, clock, first=grace, interval=interval,
                         lease_holder=lease_holder)
        #: `housekeeping.WorkerTimeouts`, run first in every sweep (§4.5 E7/E8).
        self.worker_timeouts = worker_timeouts
        self.updates = updates
        self.timeout = timeout

    async def sweep(self) -> list[str]:
        """Fail (or re-queue, see above) every timed-out task now; returns their IDs."""
        return await self.run_now() or []

    async def run(self, now: datetime) -> list[str]:
        if self.worker_timeouts is not None:
            await self.worker_timeouts.sweep(now)
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
