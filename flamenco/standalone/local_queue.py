"""The update queue of a stand-alone Manager.

Every task change still goes through `IStore.queue_update`, which applies it to the task and
puts it on disk in one step (§4.3). An update of a task of a local job then has nowhere to
go, so it is acknowledged at once and its job is marked for reconciling (`LocalUpdates`).
Updates of other tasks (left from a time a Server was configured) stay queued for that
Server, as before.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from flamenco.documents import TaskUpdate
from flamenco.store.interface import IStore
from flamenco.store.jobs import IJobStore
from flamenco.updates import UpdateQueue


class LocalUpdateQueue(UpdateQueue):
    def __init__(self, store: IStore, clock: IReactorTime, *args, jobs: IJobStore, **kwargs):
        super().__init__(store, clock, *args, **kwargs)
        self.jobs = jobs
        #: Jobs whose tasks changed status since they were last reconciled.
        self.dirty: set[str] = set()
        self._local_jobs: set[str] = set()

    async def queue(self, task_id: str, **kwargs) -> TaskUpdate:
        update = await super().queue(task_id, **kwargs)
        await self.settle([update])
        return update

    async def settle(self, updates: list[TaskUpdate]) -> int:
        """Acknowledge the updates of local jobs' tasks (already applied) and mark those jobs
        dirty when a status changed; fires with the number acknowledged."""
        done = []
        for update in updates:
            task = await self.store.get_task(update.task_id)
            if task is None or not await self.is_local_job(task.job):
                continue
            done.append(update.id)
            if update.task_status:
                self.dirty.add(task.job)
        return await self.store.ack_updates(done) if done else 0

    async def is_local_job(self, job_id: str) -> bool:
        if job_id in self._local_jobs:
            return True
        if job_id and await self.jobs.get_job(job_id) is not None:
            self._local_jobs.add(job_id)
            return True
        return False

    def forget_job(self, job_id: str) -> None:
        self._local_jobs.discard(job_id)
        self.dirty.discard(job_id)
