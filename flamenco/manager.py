"""Assembling one Manager: store, services, timers and the HTTP resource tree."""

from __future__ import annotations

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import IResource

from flamenco.auth_limits import FailedAuthLimiter
from flamenco.config import Config
from flamenco.hashing import HashingPool
from flamenco.ids import new_object_id
from flamenco.scheduler import Scheduler
from flamenco.standalone.service import JobService
from flamenco.standalone.wiring import build_standalone
from flamenco.task_updates import TaskUpdateService
from flamenco.timeouts import TaskTimeoutChecker
from flamenco.updates import UpdateQueue
from flamenco.upstream import ITaskSource, NoServer
from flamenco.web.jobs_api import JobsAPI, with_jobs_api
from flamenco.web.workers_api import WorkerAPI
from flamenco.workers import WorkerService

log = Logger()


class StoreService(Service):
    """Opens the store when the Manager starts, retrying until it can, and closes it at stop.

    Until the store is open, requests that need it are answered 503.
    """

    name = "store"
    retry_seconds = 5.0

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock
        self._retry = None

    def startService(self):
        super().startService()
        self._open()

    def _open(self):
        self._retry = None
        opened = self.store.open()
        opened.addCallbacks(self._opened, self._failed)

    def _opened(self, _):
        log.info("store {store} is open", store=self.store.description)

    def _failed(self, failure):
        log.warn("cannot open store {store}: {error}; retrying in {seconds:.0f} s",
                 store=self.store.description, error=failure.getErrorMessage(),
                 seconds=self.retry_seconds)
        if self.running:
            self._retry = self.clock.callLater(self.retry_seconds, self._open)

    def stopService(self):
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        return self.store.close()


@attrs.define
class Manager:
    config: Config
    store: object
    updates: UpdateQueue
    task_source: ITaskSource
    workers: WorkerService
    task_updates: TaskUpdateService
    scheduler: Scheduler
    timeouts: TaskTimeoutChecker
    services: MultiService
    lease_holder: str
    #: Stand-alone mode (no Server configured): the job service behind `/api/jobs`.
    jobs: JobService | None = None

    @property
    def resource(self) -> IResource:
        workers = WorkerAPI(self).app.resource()
        if self.jobs is None:
            return workers
        return with_jobs_api(workers, JobsAPI(self.jobs, self.config).app.resource())

    def note_output(self, worker, paths: list[str]) -> None:
        """Produced files (2.x `/output-produced`); the preview system is not implemented."""
        log.info("worker {worker} produced {count} files, first {path}",
                 worker=worker.identifier, count=len(paths), path=paths[0])


class HashingService(Service):
    """Stops the hashing pool's threads with the Manager."""

    def __init__(self, pool: HashingPool):
        self.pool = pool

    def stopService(self):
        super().stopService()
        self.pool.stop()


def build_manager(config: Config, store, clock: IReactorTime | None = None, *,
                  bcrypt_rounds: int | None = None, lease_holder: str | None = None) -> Manager:
    """Everything but the listening port; start `manager.services` to run the timers.

    The bcrypt pool hands its results to the real reactor even when `clock` is a test's Clock.
    `lease_holder` names this Manager in the store's leases; keep it the same across restarts
    (the twistd plugin uses host name and port) so a restarted Manager takes its leases back
    at once instead of waiting for them to expire.
    """
    from twisted.internet import reactor

    if clock is None:
        clock = reactor
    lease_holder = lease_holder or new_object_id()
    services = MultiService()
    StoreService(store, clock).setServiceParent(services)
    task_source: ITaskSource = NoServer()
    jobs = None
    if config.has_upstream:
        from flamenco.upstream.link import build_upstream

        updates = UpdateQueue(store, clock)
        task_source, upstream_services = build_upstream(config, store, updates, clock, lease_holder)
        for service in upstream_services:
            service.setServiceParent(services)
    else:
        log.warn("no Flamenco Server configured ('flamenco' is empty): running stand-alone,"
                 " jobs are submitted to this Manager (/api/jobs)")
        updates, jobs, job_rounds = build_standalone(config, store, clock, lease_holder)
        job_rounds.setServiceParent(services)
    task_updates = TaskUpdateService(store, updates)
    timeouts = TaskTimeoutChecker(
        store, updates, clock,
        timeout=config.active_task_timeout_interval_seconds,
        interval=config.task_timeout_check_interval_seconds,
        grace=config.task_timeout_grace_seconds,
        lease_holder=lease_holder,
    )
    timeouts.setServiceParent(services)
    hashing = HashingPool(reactor, threads=config.worker_secret_hashing_threads)
    HashingService(hashing).setServiceParent(services)
    limiter = FailedAuthLimiter(clock, config.worker_auth_failure_limit,
                                config.worker_auth_failure_window_seconds)
    return Manager(
        config=config,
        store=store,
        updates=updates,
        task_source=task_source,
        workers=WorkerService(store, task_updates, task_source, clock, hashing, limiter,
                              registration=config.registration_mode,
                              registration_secret=config.worker_registration_secret,
                              bcrypt_rounds=bcrypt_rounds or config.worker_secret_bcrypt_cost),
        task_updates=task_updates,
        scheduler=Scheduler(store, updates, task_source,
                            {**config.two_way_variables, **config.variables}),
        timeouts=timeouts,
        services=services,
        lease_holder=lease_holder,
        jobs=jobs,
    )
