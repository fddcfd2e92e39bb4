"""What the Worker requests that touch more than one service do (PROTOCOL §3.4-3.10).

Each method is one request of an authenticated Worker: which requests record its sign of life
(and whether before or after the work, so that a refused request changes nothing), which wake
it (§5.10.2), and which parts of an answer only 2.x Workers are sent. No HTTP here
(`flamenco.web.workers_api` decodes and encodes).
"""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from flamenco.documents import Worker, WorkerTaskUpdate
from flamenco.previews import Previews
from flamenco.scheduler import Scheduler
from flamenco.task_updates import TaskUpdateService
from flamenco.workers import WorkerService

log = Logger()


@attrs.frozen
class Contact:
    """Where a Worker's request came from: its address and `User-Agent`."""

    address: str
    user_agent: str


@attrs.frozen
class RunPermission:
    """The answer to may-i-run (§3.7): a MayKeepRunningResponse."""

    may_keep_running: bool
    reason: str = ""
    #: Only ever set for 2.x Workers: a 2.0 Worker fails on any key it does not know (§5.10.6).
    status_requested: str = ""

    def to_json(self) -> dict:
        answer: dict = {"may_keep_running": self.may_keep_running}
        if not self.may_keep_running:
            answer["reason"] = self.reason
        if self.status_requested:
            answer["status_requested"] = self.status_requested
        return answer


#: The may-i-run answer while the store is unreachable: the task goes on rather than the
#: Worker's poller failing on an error body; its updates are retried until the store is back.
WHILE_STORE_UNAVAILABLE = RunPermission(True)


class WorkerRequests:
    def __init__(self, workers: WorkerService, scheduler: Scheduler,
                 task_updates: TaskUpdateService, previews: Previews):
        self.workers = workers
        self.scheduler = scheduler
        self.task_updates = task_updates
        self.previews = previews

    async def _seen(self, worker: Worker, contact: Contact, *, wake: bool = False) -> Worker:
        return await self.workers.seen(worker, contact.address, contact.user_agent, wake)

    async def next_task(self, worker: Worker, contact: Contact) -> dict | None:
        """`/task`: wakes the Worker, then the task document to send it (None: nothing now)."""
        return await self.scheduler.assign(await self._seen(worker, contact, wake=True))

    async def update_task(self, worker: Worker, contact: Contact, task_id: str,
                          report: WorkerTaskUpdate) -> None:
        """`/tasks/{id}/update`: the sign of life is recorded once the update is accepted."""
        await self.task_updates.accept_update(worker, task_id, report)
        await self._seen(worker, contact)

    async def return_task(self, worker: Worker, contact: Contact, task_id: str) -> None:
        """`/tasks/{id}/return`."""
        await self.task_updates.return_task(worker, task_id)
        await self._seen(worker, contact)

    async def may_i_run(self, worker: Worker, contact: Contact, task_id: str) -> RunPermission:
        """`/may-i-run/{id}`: wakes the Worker; a status request rides along for 2.x."""
        worker = await self._seen(worker, contact, wake=True)
        may, reason = await self.task_updates.may_keep_running(worker, task_id)
        return RunPermission(may, "" if may else reason,
                             worker.status_requested if worker.is_2x else "")

    async def requested_status(self, worker: Worker, contact: Contact) -> str:
        """`/status-change` (2.x): the status the Worker is asked to go to, or ""."""
        return (await self._seen(worker, contact)).status_requested

    def output_produced(self, worker: Worker, paths: list[str]) -> None:
        """`/output-produced` (2.x): thumbnails for the dashboard, made in the background."""
        log.info("worker {worker} produced {count} files, first {path}",
                 worker=worker.identifier, count=len(paths), path=paths[0])
        self.previews.note(worker.identifier, paths)
