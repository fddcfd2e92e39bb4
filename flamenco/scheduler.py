"""Handing out tasks: `/task` (PROTOCOL §5.1-5.7)."""

from __future__ import annotations

from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import GENERATION_2_X, Task, Worker
from flamenco.errors import NoSupportedTypes, StatusChangePending
from flamenco.store.interface import IStore
from flamenco.upstream import Freshness, ITaskSource
from flamenco.updates import UpdateQueue
from flamenco.variables import replace_in_commands, variables_for_platform

log = Logger()

#: How often the queue is re-examined when the Server says the chosen task changed.
MAX_REEXAMINATIONS = 3


class Scheduler:
    def __init__(self, store: IStore, updates: UpdateQueue, task_source: ITaskSource,
                 variables: dict):
        self.store = store
        self.updates = updates
        self.task_source = task_source
        self.variables = variables
        #: Only tasks handed out since this process started are handed out again to a Worker
        #: that lost them (claim_task's resume_since).
        self.started = updates.now()

    async def assign(self, worker: Worker) -> dict | None:
        """Bind the best task to `worker`; the document to send it, or None for "nothing now".

        A Worker waiting for approval is told "nothing now", so that it keeps polling."""
        if not worker.approved:
            return None
        if worker.status_requested:
            raise StatusChangePending(worker.status_requested)
        if not worker.supported_types:
            kind = "task" if worker.generation == GENERATION_2_X else "job"
            raise NoSupportedTypes(f"You do not support any {kind} types.")
        task = await self._claim_confirmed(worker)
        if task is None:
            return None
        if self.updates.task_logs is not None:
            # A new run of the task: its log so far is kept as the `.1` (§5.6, §6.7).
            await self.updates.task_logs.rotate(task.id, task.job)
        await self.updates.queue(task.id, task_status=statuses.ACTIVE,
                                 worker_id=worker.id, ping=self.updates.now())
        await self.store.update_worker(worker.id, current_task=task.id)
        if worker.is_2x:
            announcement = f"Manager assigned task {task.id} to worker {worker.identifier}"
        else:
            announcement = f"Manager assigned task to worker {worker.identifier}"
        await self.updates.queue_note(task.id, announcement)
        log.info("assigned task {task} to worker {worker}", task=task.id, worker=worker.identifier)
        return self.document_for(worker, task)

    async def _claim_confirmed(self, worker: Worker) -> Task | None:
        """Claim a task and confirm with the Server that it is still as cached."""
        for _ in range(MAX_REEXAMINATIONS + 1):
            task = await self.store.claim_task(worker, self.updates.now(),
                                               resume_since=self.started)
            if task is None:
                log.debug("no runnable task of types {types} for worker {worker}; asking the "
                          "Server for more", types=list(worker.supported_types),
                          worker=worker.identifier)
                self.task_source.kick(worker.supported_types)
                return None
            log.debug("claimed task {task} ({type}, job priority {job_priority}, priority "
                      "{priority}) for worker {worker}: the first runnable one of its types",
                      task=task.id, type=task.doc.get("task_type") or task.job_type,
                      job_priority=task.doc.get("job_priority"), priority=task.doc.get("priority"),
                      worker=worker.identifier)
            if task.job_type == "manager-local":
                return task
            answer = await self.task_source.refetch(task)
            log.debug("task {task}: the Server's copy is {freshness}", task=task.id,
                      freshness=answer.freshness.value)
            if answer.freshness is Freshness.UNCHANGED:
                return task
            if answer.freshness is Freshness.CHANGED:
                # Stored as the Server has it; a still-waiting task stays bound to this worker,
                # so the next round re-confirms the same task.
                await self.store.store_server_tasks([answer.doc], self.updates.now())
            else:
                log.info("task {task} is gone from the Server; cancelled locally", task=task.id)
                await self.store.set_task_status(task.id, statuses.CANCELED)
        log.warn("the Server changed every task chosen for worker {worker}; giving up for now",
                 worker=worker.identifier)
        # The local queue is out of date: send what is queued and download afresh.
        self.task_source.push_soon()
        self.task_source.download_now()
        return None

    def document_for(self, worker: Worker, task: Task) -> dict:
        """The task as sent to a worker: status active, variables replaced for its platform."""
        doc = dict(task.doc)
        doc["status"] = statuses.ACTIVE
        doc["commands"] = replace_in_commands(
            task.doc.get("commands") or [], variables_for_platform(self.variables, worker.platform)
        )
        return doc
