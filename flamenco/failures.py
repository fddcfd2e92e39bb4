"""What a Worker's `failed` means (PROTOCOL §5.9): soft-fail, retries, the blocklist.

A task a Worker reports `failed` is retried on other Workers (`soft-failed`) until
`fail_after` different Workers failed it, or until no Worker is left that may run it; then it
is `failed`. A Worker that failed `blocklist_threshold` tasks of one job and task type gets no
more tasks of that pair until the entry expires (`blocklist_expiry`) or an operator removes it.
Failures are counted per (task, Worker) in the store, so a failed task that another Worker
has since taken still counts against the Worker that failed it.
"""

from __future__ import annotations

from datetime import timedelta

import attrs
from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import Task, Worker
from flamenco.errors import BadRequest, UnknownWorker
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.store.farm import BlocklistEntry
from flamenco.store.interface import IStore
from flamenco.updates import UpdateQueue

log = Logger()


@attrs.frozen
class Verdict:
    """The status a reported `failed` becomes, and the full `failed_by_workers` list."""

    status: str
    failed_by_workers: list


class FailureHandling:
    def __init__(self, store: IStore, updates: UpdateQueue, *, soft_fail: bool, fail_after: int,
                 blocklist_threshold: int, blocklist_expiry: float, quarantine=None):
        self.store = store
        self.updates = updates
        self.soft_fail = soft_fail
        self.fail_after = fail_after
        self.blocklist_threshold = blocklist_threshold
        self.blocklist_expiry = timedelta(seconds=blocklist_expiry)
        self.quarantine = quarantine

    async def worker_failed(self, task: Task, worker: Worker, activity: str) -> Verdict:
        """Run when `worker` reports `failed` for its active `task`."""
        now = self.updates.now()
        farm = self.store.farm
        job, kind = task.job, task.schedule_type
        left = await self.workers_left(job, kind) - {worker.id}
        failers = await farm.record_failure(task.id, worker.id, worker.identifier, job, kind, now)
        failers = _merged(task.doc.get("failed_by_workers") or [], failers)
        if self.blocklist_threshold:
            counted = await farm.failed_tasks(worker.id, job, kind)
            if len(counted) >= self.blocklist_threshold:
                await self._blocklist(worker, task, activity, counted, left, now)
        if self.quarantine is not None:
            await self.quarantine.failure_noted(worker, now)
        if not self.soft_fail or len(failers) >= self.fail_after:
            return Verdict(statuses.FAILED, failers)
        left -= {ref["id"] for ref in failers}
        if not left:
            log.info("task {task}: no Worker left to retry it; failed", task=task.id)
            return Verdict(statuses.FAILED, failers)
        return Verdict(statuses.SOFT_FAILED, failers)

    async def blocklist(self) -> list[BlocklistEntry]:
        """Operator view: the entries in force."""
        return await self.store.farm.blocklist(self.updates.now())

    async def forget_blocklist_entry(self, worker_id: str, job_id: str, task_type: str) -> None:
        """Operator action: the Worker may get tasks of (job, type) again."""
        if not (is_object_id(worker_id) and is_object_id(job_id)):
            raise BadRequest("worker and job_id must be ObjectIds")
        if not await self.store.farm.remove_blocklist_entry(
                normalise_object_id(worker_id), normalise_object_id(job_id), task_type):
            raise UnknownWorker(f"no blocklist entry for worker {worker_id}, job {job_id},"
                                f" task type {task_type!r}")
        log.info("blocklist entry of worker {worker} for job {job}, type {kind} removed",
                 worker=worker_id, job=job_id, kind=task_type)

    async def workers_left(self, job: str, kind: str) -> set[str]:
        """Workers (any status) supporting `kind` and not blocklisted for (job, kind)."""
        blocked = await self.store.farm.blocklisted_workers(job, kind, self.updates.now())
        return {w.id for w in await self.store.list_workers()
                if kind in w.supported_types and w.id not in blocked}

    async def _blocklist(self, worker: Worker, task: Task, activity: str, counted: list[str],
                         left: set[str], now) -> None:
        job, kind = task.job, task.schedule_type
        reason = activity or f"failed {len(counted)} tasks of this job"
        await self.store.farm.add_blocklist_entry(BlocklistEntry(
            worker.id, job, kind, reason, now, now + self.blocklist_expiry))
        log.warn("worker {worker} blocklisted for job {job}, task type {kind}: {reason}",
                 worker=worker.identifier, job=job, kind=kind, reason=reason)
        if left:
            return
        # Nobody else may run this job's tasks of this type: what this worker soft-failed
        # would wait for ever.
        for task_id in counted:
            other = await self.store.get_task(task_id)
            if task_id == task.id or other is None or other.status != statuses.SOFT_FAILED:
                continue
            await self.updates.queue_note(
                task_id, f"Manager hard-failed task after blacklisting worker {worker.identifier}",
                task_status=statuses.FAILED, worker=other.worker)


def _merged(server_refs: list, local_refs: list) -> list:
    """The Server's list (it may know failures of other Managers) plus ours, once each."""
    merged, seen = [], set()
    for ref in [*server_refs, *local_refs]:
        if isinstance(ref, dict) and ref.get("id") not in seen:
            seen.add(ref.get("id"))
            merged.append({"id": ref.get("id"), "identifier": ref.get("identifier", "")})
    return merged
