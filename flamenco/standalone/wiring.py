"""Assembling stand-alone mode: the update queue, the job service and the job rounds."""

from __future__ import annotations

from twisted.logger import Logger

from flamenco.config import Config
from flamenco.events import EventBus
from flamenco.jobs.twoway import TwoWayVariables
from flamenco.jobs.types import load_job_types
from flamenco.standalone.local_queue import LocalUpdateQueue
from flamenco.standalone.local_updates import LocalUpdates
from flamenco.standalone.service import JobService
from flamenco.store.jobs import job_store_for
from flamenco.store.observed_jobs import ObservedJobStore
from flamenco.task_logs import TaskLogs

log = Logger()


def build_standalone(config: Config, store, backend, clock, lease_holder: str,
                     task_logs: TaskLogs | None,
                     bus: EventBus) -> tuple[LocalUpdateQueue, JobService, LocalUpdates]:
    """`store` as the services use it; `backend` the SQLite or MongoDB store under it, which
    the jobs part shares (and, on SQLite, its group commit); `bus` hears of every job
    change."""
    job_store = ObservedJobStore(job_store_for(backend), bus)
    updates = LocalUpdateQueue(store, clock, task_logs, jobs=job_store)
    job_types = load_job_types()
    if job_types:
        log.info("job types: {names}", names=", ".join(sorted(job_types)))
    else:
        log.warn("no job types are installed (entry point group flamenco.job_types); install "
                 "the Manager with pip so that its own are registered")
    jobs = JobService(store, job_store, updates, job_types,
                      TwoWayVariables(config.two_way_variables))
    rounds = LocalUpdates(updates, jobs, clock, lease_holder=lease_holder,
                          lease_seconds=config.upstream_lease_seconds,
                          cancel_interval=config.cancel_task_fetch_max_interval_seconds)
    return updates, jobs, rounds
