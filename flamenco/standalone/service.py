"""The jobs of a stand-alone Manager: submitting, inspecting and steering them.

Task statuses change only through the update queue (`UpdateQueue.queue`), as every other
task change does, so that they are applied by the store's one rule (§4.3), reach the job's
status through `LocalUpdates`, and are durable before an answer is sent.
"""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import Task
from flamenco.ids import is_object_id, new_object_id, normalise_object_id
from flamenco.jobs import status as job_status
from flamenco.jobs.submission import JobRejected, prepare_job, task_documents
from flamenco.jobs.twoway import TwoWayVariables
from flamenco.jobs.types import JobType
from flamenco.standalone.errors import JobConflict, UnknownJob
from flamenco.store.interface import IStore
from flamenco.store.jobs import IJobStore, Job
from flamenco.standalone.local_queue import LocalUpdateQueue

log = Logger()

#: Task statuses a pause holds back, and what resume and re-queue put back in the queue.
WAITING = frozenset({statuses.QUEUED, statuses.CLAIMED, statuses.SOFT_FAILED})
PAUSED_TASK = "paused"
REQUEUEABLE = frozenset({statuses.FAILED, statuses.CANCELED})


@attrs.frozen
class JobWithTasks:
    job: Job
    tasks: list[Task]

    def task_counts(self) -> dict[str, int]:
        """The job's tasks counted by status, as `task_counts` of every job."""
        counts: dict[str, int] = {}
        for task in self.tasks:
            counts[task.status] = counts.get(task.status, 0) + 1
        return counts


class JobService:
    def __init__(self, store: IStore, jobs: IJobStore, updates: LocalUpdateQueue,
                 job_types: dict[str, JobType], twoway: TwoWayVariables):
        self.store = store
        self.jobs = jobs
        self.updates = updates
        self.job_types = job_types
        self.twoway = twoway

    # -- submitting and reading ------------------------------------------------------------------
    async def submit(self, doc) -> JobWithTasks:
        """Validate, compile and store a job and its tasks (queued). JobRejected lists every
        problem; nothing is stored then."""
        submission = prepare_job(doc, self.job_types, self.twoway)
        now = self.updates.now()
        job = Job(id=new_object_id(), name=submission.name, type=submission.type,
                  priority=submission.priority, status=job_status.QUEUED,
                  settings=submission.settings,
                  submitter_platform=submission.submitter_platform, created=now, updated=now)
        await self.jobs.add_job(job)
        await self.store.store_server_tasks(task_documents(job.id, submission, new_object_id),
                                            now)
        log.info("job {job} ({type}, {name!r}) submitted with {count} tasks", job=job.id,
                 type=job.type, name=job.name, count=len(submission.tasks))
        return JobWithTasks(job, await self.jobs.job_tasks(job.id))

    async def list_jobs(self, status: str | None = None) -> list[Job]:
        if status is not None and status not in job_status.JOB_STATUSES:
            raise JobRejected([f"status: one of {', '.join(job_status.JOB_STATUSES)}, "
                               f"not {status!r}"])
        return await self.jobs.list_jobs(status)

    async def task_counts(self) -> dict[str, dict[str, int]]:
        """Every job's task counts by status: `{job ID: {status: count}}`."""
        return await self.jobs.task_counts()

    async def job(self, raw_id: str) -> Job:
        job = await self.jobs.get_job(normalise_object_id(raw_id)) if is_object_id(raw_id) \
            else None
        if job is None:
            raise UnknownJob(f"no job {raw_id}")
        return job

    async def job_with_tasks(self, raw_id: str) -> JobWithTasks:
        job = await self.job(raw_id)
        return JobWithTasks(job, await self.jobs.job_tasks(job.id))

    def for_submitter(self, job: Job, text: str) -> str:
        """A text a Worker reported (activity, paths) in the submitter's platform form."""
        if not job.submitter_platform or not text:
            return text
        return self.twoway.for_submitter(text, job.submitter_platform)

    # -- steering --------------------------------------------------------------------------------
    async def cancel(self, raw_id: str) -> Job:
        """Waiting tasks are cancelled at once; running ones are told to stop (may-i-run) and
        end `canceled` when their Worker reports or the next cancel round (`LocalUpdates`)."""
        job = await self.job(raw_id)
        if job.status in job_status.FINAL:
            raise JobConflict(f"job {job.id} is already {job.status}")
        await self._set_status(job, job_status.CANCEL_REQUESTED)
        await self.cancel_tasks(job, "Manager cancelled task: its job was cancelled")
        return await self.reconcile(job.id)

    async def cancel_tasks(self, job: Job, reason: str) -> None:
        for task in await self.jobs.job_tasks(job.id):
            if task.status == statuses.ACTIVE:
                await self.store.set_task_status(task.id, statuses.CANCEL_REQUESTED,
                                                 only_from=(statuses.ACTIVE,))
            elif task.status in WAITING or task.status == PAUSED_TASK:
                await self.updates.queue_note(task.id, reason,
                                              task_status=statuses.CANCELED)

    async def pause(self, raw_id: str) -> Job:
        """Waiting tasks are held back; running ones finish."""
        job = await self.job(raw_id)
        if job.status not in (job_status.QUEUED, job_status.ACTIVE):
            raise JobConflict(f"job {job.id} is {job.status}; only a queued or active job "
                              "can be paused")
        await self._set_status(job, job_status.PAUSED)
        for task in await self.jobs.job_tasks(job.id):
            if task.status in WAITING:
                await self.updates.queue_note(task.id, "Paused with its job",
                                              task_status=PAUSED_TASK)
        return await self.reconcile(job.id)

    async def resume(self, raw_id: str) -> Job:
        job = await self.job(raw_id)
        if job.status != job_status.PAUSED:
            raise JobConflict(f"job {job.id} is {job.status}, not paused")
        await self._set_status(job, job_status.QUEUED)
        for task in await self.jobs.job_tasks(job.id):
            if task.status == PAUSED_TASK:
                await self.updates.queue_note(task.id, "Resumed with its job",
                                              task_status=statuses.QUEUED)
        return await self.reconcile(job.id)

    async def requeue(self, raw_id: str) -> tuple[Job, int]:
        """Failed and cancelled tasks back in the queue; the job with them. Fires with the job
        and how many tasks were re-queued."""
        job = await self.job(raw_id)
        if job.status in (job_status.CANCEL_REQUESTED, job_status.PAUSED):
            raise JobConflict(f"job {job.id} is {job.status}; re-queue it once that is over")
        tasks = [task for task in await self.jobs.job_tasks(job.id)
                 if task.status in REQUEUEABLE]
        if tasks:
            await self._set_status(job, job_status.QUEUED)
        for task in tasks:
            await self.store.farm.clear_failures(task.id)  # a fresh start, for every Worker
            await self.updates.queue_note(task.id, "Re-queued by request",
                                          task_status=statuses.QUEUED, worker="-")
        return await self.reconcile(job.id), len(tasks)

    async def requeue_all(self) -> int:
        """`requeue` for every job that has failed or cancelled tasks and allows it."""
        count = 0
        for job in await self.jobs.list_jobs():
            if job.status in (job_status.FAILED, job_status.ACTIVE, job_status.CANCELED):
                count += (await self.requeue(job.id))[1]
        return count

    async def set_priority(self, raw_id: str, priority) -> Job:
        if isinstance(priority, bool) or not isinstance(priority, int) or \
                not 1 <= priority <= 100:
            raise JobRejected([f"priority: a whole number 1..100, not {priority!r}"])
        job = await self.job(raw_id)
        await self.jobs.update_job(job.id, {"priority": priority,
                                            "updated": self.updates.now()})
        # Only waiting tasks: priorities matter for hand-out alone, and a running task's
        # document is left to its Worker's updates.
        docs = [dict(task.doc, job_priority=priority)
                for task in await self.jobs.job_tasks(job.id)
                if task.status in WAITING or task.status == PAUSED_TASK]
        if docs:
            await self.store.store_server_tasks(docs, self.updates.now())
        return await self.job(job.id)

    async def delete(self, raw_id: str) -> None:
        job = await self.job(raw_id)
        if job.status not in job_status.FINAL:
            raise JobConflict(f"job {job.id} is {job.status}; cancel it before deleting it")
        await self.jobs.delete_job(job.id)
        self.updates.forget_job(job.id)
        log.info("job {job} deleted", job=job.id)

    # -- status ----------------------------------------------------------------------------------
    async def reconcile(self, job_id: str) -> Job:
        """Derive the job's status from its tasks' (§6.6 rules); a job that failed has the
        rest of its tasks cancelled."""
        job = await self.jobs.get_job(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id}")
        tasks = await self.jobs.job_tasks(job.id)
        verdict = job_status.derive_job_status(job.status, [task.status for task in tasks])
        if verdict.status != job.status:
            await self._set_status(job, verdict.status)
            log.info("job {job} is now {status}", job=job.id, status=verdict.status)
        if verdict.cancel_rest:
            await self.cancel_tasks(job, "Manager cancelled task: too many tasks of its job "
                                         "failed")
        return await self.jobs.get_job(job.id)

    async def _set_status(self, job: Job, status: str) -> None:
        await self.jobs.update_job(job.id, {"status": status, "updated": self.updates.now()})
