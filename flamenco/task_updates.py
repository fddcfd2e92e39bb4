"""What Workers report about their tasks: updates, may-i-run polls, returns (PROTOCOL §3.5-3.7)."""

from __future__ import annotations

import attrs
from twisted.logger import Logger

from flamenco import statuses, upstream_limits
from flamenco.failures import FailureHandling
from flamenco.documents import Task, Worker, WorkerTaskUpdate
from flamenco.errors import TaskConflict, UnknownTask
from flamenco.store.interface import IStore
from flamenco.task_logs import update_digest
from flamenco.updates import UpdateQueue
from flamenco.write_resolution import MAX_RESOLUTION_SECONDS

log = Logger()


class TaskUpdateService:
    def __init__(self, store: IStore, updates: UpdateQueue,
                 failures: FailureHandling | None = None,
                 ping_resolution: float = MAX_RESOLUTION_SECONDS):
        """A may-i-run poll records the Worker's ping on its task only when the recorded one
        is `ping_resolution` seconds old (`write_resolution`); updates always ping."""
        self.store = store
        self.updates = updates
        self.failures = failures
        self.ping_resolution = ping_resolution

    async def accept_update(self, worker: Worker, task_id: str, report: WorkerTaskUpdate) -> None:
        """Validate against the local task, apply and queue durably; returns once on disk."""
        task = await self.store.get_task(task_id)
        if task is None:
            if worker.is_2x:
                raise UnknownTask(f"Task {task_id} is unknown.")
            # A 2.0 worker retries anything but 409 forever, blocking its later updates (A7).
            raise TaskConflict(f"Task {task_id} is unknown.")
        if task.worker_id and task.worker_id != worker.id:
            raise TaskConflict(f"Task {task_id} is assigned to another worker.")
        digest = update_digest(worker.id, attrs.asdict(report)) if report.log else ""
        if digest and await self.updates.is_resend(task_id, digest):
            log.info("worker {worker} sent its last update of task {task} again; already "
                     "accepted", worker=worker.identifier, task=task_id)
            await self.store.ping_task(task_id, worker.id, self.updates.now())
            return
        status, activity = self._reportable(task, report, worker)
        report = self._within_limits(task, report, worker)
        failed_by_workers: list = []
        if (status == statuses.FAILED and task.status == statuses.ACTIVE
                and self.failures is not None):
            verdict = await self.failures.worker_failed(task, worker, activity)
            status, failed_by_workers = verdict.status, verdict.failed_by_workers
        await self.updates.queue(
            task_id,
            digest=digest,
            failed_by_workers=failed_by_workers,
            task_status=status,
            activity=activity,
            task_progress_percentage=report.task_progress_percentage,
            current_command_idx=report.current_command_idx,
            command_progress_percentage=report.command_progress_percentage,
            log=report.log,
            worker=worker.identifier,
            metrics=report.metrics,
            worker_id=worker.id,
            ping=self.updates.now(),
            from_worker=True,
        )

    @staticmethod
    def _within_limits(task: Task, report: WorkerTaskUpdate, worker: Worker) -> WorkerTaskUpdate:
        """Item values the Server's schema would refuse go upstream as their defaults."""
        fields = {key: getattr(report, key) for key in (
            "task_progress_percentage", "command_progress_percentage", "current_command_idx",
            "metrics")}
        fixed, corrected = upstream_limits.sanitised(fields, len(task.doc.get("commands") or []))
        if not corrected:
            return report
        log.warn("worker {worker} sent {fields} out of range for task {task}; not passed on",
                 worker=worker.identifier, fields=", ".join(corrected), task=task.id)
        fixed.setdefault("metrics", {})
        return attrs.evolve(report, **fixed)

    @staticmethod
    def _reportable(task: Task, report: WorkerTaskUpdate, worker: Worker) -> tuple[str, str]:
        """PROTOCOL §4.4: a worker changes status/activity only of an active task, except that
        a cancel-requested task accepts the ending statuses (2.0 workers report `canceled`)."""
        if task.status == statuses.ACTIVE:
            return report.task_status, report.activity
        if task.status == statuses.CANCEL_REQUESTED and (
            report.task_status in statuses.ACCEPTED_AFTER_CANCEL
        ):
            return report.task_status, report.activity
        if report.task_status or report.activity:
            log.info(
                "dropping status {status!r} / activity of worker {worker} for task {task}"
                " in local status {local}",
                status=report.task_status, worker=worker.identifier, task=task.id,
                local=task.status,
            )
        return "", ""

    async def may_keep_running(self, worker: Worker, task_id: str) -> tuple[bool, str]:
        """PROTOCOL §3.7: (may keep running, reason when not); pings the task when it may."""
        task = await self.store.get_task(task_id)
        if task is None:
            return False, f"unable to find task {task_id}"
        if task.worker_id and task.worker_id != worker.id:
            return False, f"task {task_id} reassigned to another worker"
        if task.status not in statuses.RUNNABLE:
            return False, f"task {task_id} in non-runnable status {task.status}"
        # A 2.0 worker cannot act on a status request; stopping its task would cancel it.
        if (worker.is_2x and worker.status_requested and not worker.lazy_status_request
                and worker.status_requested not in (statuses.W_AWAKE, statuses.W_TESTING)):
            return False, f"worker status change to {worker.status_requested} requested"
        now = self.updates.now()
        if not (task.worker_reported and task.worker_id == worker.id
                and task.last_worker_ping is not None
                and (now - task.last_worker_ping).total_seconds() < self.ping_resolution):
            await self.store.ping_task(task_id, worker.id, now)
        return True, ""

    async def return_task(self, worker: Worker, task_id: str) -> None:
        """A 2.x worker stopped this task when told to; put it back in the queue."""
        task = await self.store.get_task(task_id)
        if task is None:
            raise UnknownTask(f"Task {task_id} is unknown.")
        if task.worker_id and task.worker_id != worker.id:
            return
        if task.status != statuses.ACTIVE:
            return
        await self.requeue(task, worker, "returned by worker")

    async def requeue(self, task: Task, worker: Worker, reason: str) -> None:
        """Put a task of `worker` back in the queue, telling the Server with `worker: "-"`."""
        ident = worker.identifier
        activity = f"Re-queued task after unassigning from worker {ident}: {reason}"
        line = f"Manager re-queued task after unassigning it from worker {ident}: {reason}"
        await self._queue_requeue(task, activity, line)

    async def requeue_after_2_0_sign_off(self, task: Task, worker: Worker) -> None:
        """The 2.0 Manager's texts for a task re-queued when its worker signed off (§3.3)."""
        ident = worker.identifier
        await self._queue_requeue(task, f"Re-queued task after worker {ident} signed off",
                                  f"Manager re-queued task after worker {ident} signed off")

    async def _queue_requeue(self, task: Task, activity: str, line: str) -> None:
        await self.updates.queue_note(
            task.id, activity, log=line, task_status=statuses.CLAIMED, worker="-"
        )

