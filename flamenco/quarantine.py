"""Sick-worker quarantine: a Worker that fails tasks of many jobs is put to sleep.

One job's tasks failing on a Worker points at the job (the blocklist handles that); tasks of
`jobs` different jobs failing on it within `window` point at the machine. Such a Worker is
asked to go `asleep` at once, with the reason logged, and stays quarantined until an operator
asks it to be `awake`; only failures after that count towards a new quarantine. None of the
Flamenco Managers had this. Off when `jobs` is 0.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import Worker
from flamenco.store.farm import Quarantine
from flamenco.store.interface import IStore

log = Logger()


class SickWorkers:
    def __init__(self, store: IStore, *, jobs: int, window: float):
        self.store = store
        self.jobs = jobs
        self.window = timedelta(seconds=window)

    async def failure_noted(self, worker: Worker, now: datetime) -> None:
        """`worker` just failed a task (already recorded)."""
        if not self.jobs:
            return
        farm = self.store.farm
        earlier = await farm.quarantine_of(worker.id)
        if earlier is not None and earlier.released is None:
            return  # in quarantine already
        since = now - self.window
        if earlier is not None and earlier.released > since:
            since = earlier.released
        jobs = await farm.jobs_failed_since(worker.id, since)
        if jobs < self.jobs:
            return
        minutes = self.window.total_seconds() / 60
        reason = f"failed tasks of {jobs} different jobs within {minutes:g} minutes"
        await farm.set_quarantine(Quarantine(worker.id, reason, now))
        await self.store.update_worker(worker.id, status_requested=statuses.W_ASLEEP,
                                       lazy_status_request=False)
        log.warn("worker {worker} quarantined (asked to sleep): {reason}; an operator's "
                 "'awake' request ends it", worker=worker.identifier, reason=reason)

    async def released(self, worker_id: str, now: datetime) -> None:
        """An operator asked the Worker to be awake: the quarantine ends."""
        current = await self.store.farm.quarantine_of(worker_id)
        if current is not None and current.released is None:
            await self.store.farm.set_quarantine(
                Quarantine(worker_id, current.reason, current.since, now))
            log.info("worker {worker} released from quarantine", worker=worker_id)

    async def listing(self) -> list[Quarantine]:
        return await self.store.farm.quarantined()
