"""Periodic clean-up (PROTOCOL §5.10.2, §5.11): the Worker timeout, old Workers, old tasks.

Each job runs on the injected clock, a while after start-up and then periodically, guarded by
a store lease so that only one of several Managers sharing a database runs it at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco import statuses
from flamenco.periodic import PeriodicJob
from flamenco.store.interface import IStore
from flamenco.task_logs import TaskLogs
from flamenco.task_updates import TaskUpdateService
from flamenco.workers import WorkerService

log = Logger()

#: Old tasks are removed in batches of this many.
TASK_BATCH = 500


class WorkerTimeouts:
    """§5.10.2: an `awake` Worker not heard of for `timeout` seconds becomes `timeout`, and its
    active tasks are re-queued (E8). Run by the task-timeout check, before it fails tasks, so
    that with equal thresholds a silent Worker's task is re-queued rather than failed."""

    def __init__(self, store: IStore, task_updates: TaskUpdateService, *, timeout: float):
        self.store = store
        self.task_updates = task_updates
        self.timeout = timeout

    async def sweep(self, now: datetime) -> list[str]:
        """Time out the silent Workers now; returns their IDs."""
        if not self.timeout:
            return []
        cutoff = now - timedelta(seconds=self.timeout)
        timed_out = []
        for worker in await self.store.list_workers():
            if worker.status != statuses.W_AWAKE or (
                    worker.last_activity is not None and worker.last_activity >= cutoff):
                continue
            changes: dict = {"status": statuses.W_TIMEOUT}
            if worker.is_2x and not worker.status_requested:
                # It is asked to be what it was when it returns (a 2.0 Worker cannot be asked).
                changes.update(status_requested=worker.status, lazy_status_request=False)
            await self.store.update_worker(worker.id, **changes)
            tasks = await self.store.tasks_of_worker(worker.id, statuses.ACTIVE)
            for task in tasks:
                await self.task_updates.requeue(task, worker,
                                                f"worker {worker.identifier} timed out")
            log.warn("worker {worker} timed out (last seen {seen}); {n} tasks re-queued",
                     worker=worker.identifier, seen=worker.last_activity, n=len(tasks))
            timed_out.append(worker.id)
        return timed_out


class WorkerCleanup(PeriodicJob):
    """§5.11: Workers in one of `worker_statuses` not seen for `max_age` seconds are removed,
    their active tasks re-queued first. Off when `max_age` is 0."""

    name = "worker-cleanup"  # type: ignore[assignment]  # Service.name = None, unannotated
    lease_name = "worker-cleanup"

    def __init__(self, store: IStore, workers: WorkerService, clock: IReactorTime, *,
                 max_age: float, worker_statuses: Iterable[str],
                 lease_holder: str, first: float = 300, interval: float = 30):
        super().__init__(store, clock, first=first, interval=interval,
                         lease_holder=lease_holder)
        self.workers = workers
        self.max_age = max_age
        self.worker_statuses = frozenset(worker_statuses)

    async def run(self, now: datetime) -> list[str]:
        cutoff = now - timedelta(seconds=self.max_age)
        removed = []
        for worker in await self.store.list_workers():
            if worker.status in self.worker_statuses and (
                    worker.last_activity is None or worker.last_activity < cutoff):
                await self.workers.remove(worker, "worker is being auto-removed")
                removed.append(worker.id)
        return removed


class TaskCleanup(PeriodicJob):
    """§5.11: local tasks untouched for `max_age` seconds are removed with their log files,
    never an active one nor one with updates still queued; the Server sends any it changes
    later again. Expired blocklist entries go too."""

    name = "task-cleanup"  # type: ignore[assignment]  # Service.name = None, unannotated
    lease_name = "task-cleanup"

    def __init__(self, store: IStore, task_logs: TaskLogs | None, clock: IReactorTime, *,
                 max_age: float, lease_holder: str,
                 first: float = 360, interval: float = 600):
        super().__init__(store, clock, first=first, interval=interval,
                         lease_holder=lease_holder)
        self.task_logs = task_logs
        self.max_age = max_age

    async def run(self, now: datetime) -> list[str]:
        cutoff = now - timedelta(seconds=self.max_age)
        removed: list[str] = []
        while True:
            batch = await self.store.farm.remove_old_tasks(cutoff, TASK_BATCH)
            for old in batch:
                if self.task_logs is not None:
                    self.task_logs.remove(old.job_id, old.task_id)
                removed.append(old.task_id)
            if len(batch) < TASK_BATCH:
                break
        expired = await self.store.farm.expire_blocklist(now)
        if removed or expired:
            log.info("housekeeping removed {n} old tasks and {e} expired blocklist entries",
                     n=len(removed), e=expired)
        return removed
