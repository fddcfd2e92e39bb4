"""What a Server would do with the queued updates of a stand-alone Manager's jobs: derive each
job's status from its tasks' (§6.6 rules), and finish cancellations as a Server's cancel list
does (§6.5.3): a task still `cancel-requested` one round later (a 2.x Worker returns a
stopped task silently) becomes `canceled`.

Jobs are reconciled in rounds (every second) rather than per update, as a job's status needs
all its tasks. At start every unfinished job is reconciled and updates left queued by a crash
are acknowledged, so nothing depends on the in-memory set of changed jobs surviving; a round
that fails (database unavailable) leaves its jobs for the next.
"""

from __future__ import annotations

from datetime import timedelta

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco import statuses
from flamenco.jobs import status as job_status
from flamenco.periodic import Rounds
from flamenco.standalone.local_queue import LocalUpdateQueue
from flamenco.standalone.service import JobService
from flamenco.store.interface import StoreUnavailable
from flamenco.timefmt import utc_now

LEASE_NAME = "local-jobs"
#: Jobs whose tasks may still be `cancel-requested`.
CANCELLING = (job_status.CANCEL_REQUESTED, job_status.FAILED, job_status.CANCELED)
#: Updates examined at start for leftovers of a crash.
STARTUP_SCAN = 10_000


class LocalUpdates(Rounds):
    """One round (`inspect`) every `interval` seconds."""

    log = Logger()

    def __init__(self, updates: LocalUpdateQueue, jobs: JobService, clock: IReactorTime, *,
                 lease_holder: str, lease_seconds: float, cancel_interval: float,
                 interval: float = 1.0):
        super().__init__(interval)
        self.updates = updates
        self.jobs = jobs
        self.clock = clock
        self.lease_holder = lease_holder
        self.lease = timedelta(seconds=lease_seconds)
        self.cancel_interval = cancel_interval
        self._started = False
        self._last_cancel_round = float("-inf")
        self._cancel_seen: set[str] = set()

    def _round_failed(self, failure) -> None:
        # The store reports its own outages (once); the next round tries again.
        if failure.check(StoreUnavailable):
            self.log.debug("local job round skipped: {error}", error=failure.value)
        else:
            self.log.failure("local job round failed", failure)

    async def _round(self) -> None:
        store = self.updates.store
        if not self._started:
            await self.updates.settle(await store.queued_updates(STARTUP_SCAN))
            for job in await self.jobs.jobs.list_jobs():
                if job.status not in job_status.FINAL:
                    self.updates.dirty.add(job.id)
            self._started = True
        # Every Manager sharing the database reconciles the jobs it saw change (the result
        # depends only on the stored tasks); one of them finishes the cancellations.
        dirty = sorted(self.updates.dirty)
        self.updates.dirty.clear()
        for done, job_id in enumerate(dirty):
            try:
                if await self.jobs.jobs.get_job(job_id) is not None:
                    await self.jobs.reconcile(job_id)
            except Exception:
                self.updates.dirty.update(dirty[done:])  # the next round tries again
                raise
        if self.clock.seconds() - self._last_cancel_round < self.cancel_interval:
            return
        self._last_cancel_round = self.clock.seconds()
        if await store.try_lease(LEASE_NAME, self.lease_holder, utc_now(self.clock), self.lease):
            await self._finish_cancellations()

    async def _finish_cancellations(self) -> None:
        still: set[str] = set()
        for status in CANCELLING:
            for job in await self.jobs.jobs.list_jobs(status):
                for found in await self.jobs.jobs.job_tasks(job.id):
                    if found.status != statuses.CANCEL_REQUESTED:
                        continue
                    if found.id in self._cancel_seen:
                        await self.updates.queue_note(
                            found.id, "Manager cancelled task: its Worker stopped it",
                            task_status=statuses.CANCELED)
                    else:
                        still.add(found.id)
        self._cancel_seen = still
