"""Assembling one Manager: store, services, timers and the HTTP resource tree."""

from __future__ import annotations

from typing import Callable

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import IResource

from flamenco.auth_limits import FailedAuthLimiter
from flamenco.config import Config
from flamenco.events import EventBus
from flamenco.failures import FailureHandling
from flamenco.hashing import HashingPool
from flamenco.housekeeping import TaskCleanup, WorkerCleanup, WorkerTimeouts
from flamenco.ids import new_object_id
from flamenco.log_downloads import LogDownloads
from flamenco.operator_view import OperatorView, build_operator_view
from flamenco.quarantine import SickWorkers
from flamenco.readiness import StoreReadiness
from flamenco.scheduler import Scheduler
from flamenco.sleep_schedules import SleepScheduler
from flamenco.standalone.service import JobService
from flamenco.standalone.wiring import build_standalone
from flamenco.store.interface import IStore, StoreUnusable
from flamenco.store.observed import ObservedStore
from flamenco.task_logs import TaskLogs
from flamenco.task_updates import TaskUpdateService
from flamenco.test_tasks import TestTasks
from flamenco.timeouts import TaskTimeoutChecker
from flamenco.updates import UpdateQueue
from flamenco.upstream import ITaskSource, NoServer
from flamenco.web.resource_tree import WebServices, build_resource
from flamenco.worker_actions import WorkerActions
from flamenco.worker_requests import WorkerRequests
from flamenco.workers import WorkerService
from flamenco.write_resolution import resolution_for

log = Logger()


class StoreService(Service):
    """Opens the store when the Manager starts and closes it at stop.

    A store that cannot be opened yet (MongoDB not reachable) is tried again every
    `retry_seconds` until `startup_timeout` seconds have passed since start; then, or at once
    when the store is unusable as configured, `on_startup_failure` gets one line naming the
    setting (the twistd plugin prints it and exits). Until the store is open, requests that
    need it are answered 503. Once open, an outage is the store's `Availability` business.
    """

    retry_seconds = 5.0

    def __init__(self, store: IStore, clock: IReactorTime, *, startup_timeout: float = 30.0,
                 on_startup_failure: Callable[[str], None] | None = None):
        self.setName("store")
        self.store = store
        self.clock = clock
        self.startup_timeout = startup_timeout
        self.on_startup_failure = on_startup_failure or self._log_startup_failure
        self._deadline = 0.0
        self._retry = None
        self._attempt: defer.Deferred | None = None
        self._last_error = ""

    def startService(self):
        super().startService()
        self._deadline = self.clock.seconds() + self.startup_timeout
        self._last_error = ""
        self._open()

    def _open(self):
        self._retry = None
        attempt = self.store.open()
        attempt.addTimeout(max(self._deadline - self.clock.seconds(), 0), self.clock)
        self._attempt = attempt
        attempt.addCallbacks(self._opened, self._failed)

    def _opened(self, _):
        self._attempt = None
        log.info("store {store} is open", store=self.store.description)

    def _failed(self, failure):
        self._attempt = None
        if not self.running:
            return
        if failure.check(StoreUnusable):
            self.on_startup_failure(
                f"database_url: cannot open {self.store.description}: {failure.getErrorMessage()}")
            return
        remaining = self._deadline - self.clock.seconds()
        if remaining <= 0:
            self.on_startup_failure(
                f"database_url: {self.store.description} did not open within "
                f"database_startup_timeout_seconds ({self.startup_timeout:g} s)"
                + (f": {self._last_error}" if self._last_error else ""))
            return
        first, self._last_error = not self._last_error, failure.getErrorMessage()
        (log.warn if first else log.debug)(
            "cannot open store {store} yet: {error}; trying again for up to {seconds:.0f} s",
            store=self.store.description, error=self._last_error, seconds=remaining)
        self._retry = self.clock.callLater(min(self.retry_seconds, remaining), self._open)

    @staticmethod
    def _log_startup_failure(message: str) -> None:
        log.error("{message}", message=message)

    def stopService(self):
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._attempt is not None:
            self._attempt.cancel()
        return self.store.close()


@attrs.define
class Manager:
    config: Config
    store: IStore
    updates: UpdateQueue
    task_source: ITaskSource
    workers: WorkerService
    task_updates: TaskUpdateService
    scheduler: Scheduler
    timeouts: TaskTimeoutChecker
    services: MultiService
    lease_holder: str
    failures: FailureHandling
    quarantine: SickWorkers
    sleep_schedules: SleepScheduler
    test_tasks: TestTasks
    operator: OperatorView
    clock: IReactorTime
    #: What the HTTP layer is given (`resource`).
    web: WebServices
    task_logs: TaskLogs | None = None
    task_cleanup: TaskCleanup | None = None
    worker_cleanup: WorkerCleanup | None = None
    #: Stand-alone mode (no Server configured): the job service behind `/api/jobs`.
    jobs: JobService | None = None

    @property
    def resource(self) -> IResource:
        return build_resource(self.web)


class HashingService(Service):
    """Stops the hashing pool's threads with the Manager."""

    def __init__(self, pool: HashingPool):
        self.pool = pool

    def stopService(self):
        super().stopService()
        self.pool.stop()


def build_manager(config: Config, store, clock: IReactorTime | None = None, *,
                  bcrypt_rounds: int | None = None, lease_holder: str | None = None,
                  on_startup_failure: Callable[[str], None] | None = None) -> Manager:
    """Everything but the listening port; start `manager.services` to run the timers.

    The bcrypt pool hands its results to the real reactor even when `clock` is a test's Clock.
    `lease_holder` names this Manager in the store's leases; keep it the same across restarts
    (the twistd plugin uses host name and port) so a restarted Manager takes its leases back
    at once instead of waiting for them to expire. `on_startup_failure(line)` is called when
    the store cannot be opened (see `StoreService`).
    """
    from twisted.internet import reactor

    if clock is None:
        clock = reactor
    lease_holder = lease_holder or new_object_id()
    bus = EventBus()
    backend, store = store, ObservedStore(store, bus)
    services = MultiService()
    StoreService(store, clock, startup_timeout=config.database_startup_timeout_seconds,
                 on_startup_failure=on_startup_failure).setServiceParent(services)
    task_logs = TaskLogs(store, config.task_logs_path) if config.task_logs_path else None
    task_source: ITaskSource = NoServer()
    jobs = None
    updates: UpdateQueue
    if config.has_upstream:
        from flamenco.upstream.link import build_upstream

        updates = UpdateQueue(store, clock, task_logs)
        task_source, upstream_services = build_upstream(config, store, updates, clock, lease_holder)
        for service in upstream_services:
            service.setServiceParent(services)
    else:
        log.warn("no Flamenco Server configured ('flamenco' is empty): running stand-alone,"
                 " jobs are submitted to this Manager (/api/jobs)")
        updates, jobs, job_rounds = build_standalone(config, store, backend, clock,
                                                     lease_holder, task_logs, bus)
        job_rounds.setServiceParent(services)
    quarantine = SickWorkers(store, jobs=config.sick_worker_jobs,
                             window=config.sick_worker_window)
    failures = FailureHandling(
        store, updates, quarantine=quarantine, soft_fail=config.soft_fail,
        fail_after=config.task_fail_after_softfail_count,
        blocklist_threshold=config.blocklist_threshold,
        blocklist_expiry=config.blocklist_expiry,
    )
    task_updates = TaskUpdateService(
        store, updates, failures,
        ping_resolution=resolution_for(config.active_task_timeout_interval_seconds))
    hashing = HashingPool(reactor, threads=config.worker_secret_hashing_threads)
    HashingService(hashing).setServiceParent(services)
    limiter = FailedAuthLimiter(clock, config.worker_auth_failure_limit,
                                config.worker_auth_failure_window_seconds)
    workers = WorkerService(store, task_updates, task_source, clock, hashing, limiter,
                            registration=config.registration_mode,
                            registration_secret=config.worker_registration_secret,
                            bcrypt_rounds=bcrypt_rounds or config.worker_secret_bcrypt_cost,
                            quarantine=quarantine,
                            seen_resolution=resolution_for(
                                config.active_worker_timeout_interval_seconds))
    timeouts = TaskTimeoutChecker(
        store, updates, clock,
        timeout=config.active_task_timeout_interval_seconds,
        interval=config.task_timeout_check_interval_seconds,
        grace=config.task_timeout_grace_seconds,
        lease_holder=lease_holder,
        worker_timeouts=WorkerTimeouts(
            store, task_updates, timeout=config.active_worker_timeout_interval_seconds),
    )
    timeouts.setServiceParent(services)
    sleep_schedules = SleepScheduler(store, clock, zone=config.sleep_schedule_zone,
                                     lease_holder=lease_holder)
    sleep_schedules.setServiceParent(services)
    worker_cleanup = task_cleanup = None
    if config.worker_cleanup_max_age:
        worker_cleanup = WorkerCleanup(store, workers, clock,
                                       max_age=config.worker_cleanup_max_age,
                                       worker_statuses=config.worker_cleanup_status,
                                       lease_holder=lease_holder)
        worker_cleanup.setServiceParent(services)
    if config.task_cleanup_max_age:
        task_cleanup = TaskCleanup(store, task_logs, clock, max_age=config.task_cleanup_max_age,
                                   lease_holder=lease_holder)
        task_cleanup.setServiceParent(services)
    scheduler = Scheduler(store, updates, task_source,
                          {**config.two_way_variables, **config.variables})
    test_tasks = TestTasks(store, updates)
    operator = build_operator_view(config, store, bus, workers, task_source, clock)
    web = WebServices(
        workers=workers,
        worker_requests=WorkerRequests(workers, scheduler, task_updates, operator.previews),
        worker_actions=WorkerActions(workers, test_tasks, failures),
        failures=failures,
        quarantine=quarantine,
        sleep_schedules=sleep_schedules,
        log_downloads=LogDownloads(task_logs),
        task_source=task_source,
        timeouts=timeouts,
        operator=operator,
        readiness=StoreReadiness(store),
        clock=clock,
        max_body=config.max_request_body_bytes,
        serve_metrics=config.serve_metrics,
        tls=config.tls,
        jobs=jobs,
    )
    return Manager(
        config=config,
        store=store,
        updates=updates,
        task_source=task_source,
        workers=workers,
        task_updates=task_updates,
        scheduler=scheduler,
        timeouts=timeouts,
        services=services,
        lease_holder=lease_holder,
        failures=failures,
        quarantine=quarantine,
        sleep_schedules=sleep_schedules,
        test_tasks=test_tasks,
        operator=operator,
        clock=clock,
        web=web,
        task_logs=task_logs,
        task_cleanup=task_cleanup,
        worker_cleanup=worker_cleanup,
        jobs=jobs,
    )
