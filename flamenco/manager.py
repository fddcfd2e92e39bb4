"""Assembling one Manager: store, services, timers and the HTTP resource tree."""

from __future__ import annotations

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import IResource

from flamenco.config import Config
from flamenco.ids import new_object_id
from flamenco.scheduler import Scheduler
from flamenco.task_updates import TaskUpdateService
from flamenco.timeouts import TaskTimeoutChecker
from flamenco.updates import UpdateQueue
from flamenco.upstream import ITaskSource, NoServer
from flamenco.web.workers_api import WorkerAPI
from flamenco.workers import WorkerService

log = Logger()


class StoreService(Service):
    """Opens the store when the Manager starts and closes it when it stops."""

    name = "store"

    def __init__(self, store):
        self.store = store

    def startService(self):
        super().startService()
        opened = self.store.open()
        opened.addCallback(lambda _: log.info("store {store} is open", store=self.store.description))
        opened.addErrback(lambda failure: log.failure(
            "cannot open store {store}", failure, store=self.store.description))

    def stopService(self):
        super().stopService()
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

    @property
    def resource(self) -> IResource:
        return WorkerAPI(self).app.resource()

    def note_output(self, worker, paths: list[str]) -> None:
        """Produced files (2.x `/output-produced`); the preview system is not implemented."""
        log.info("worker {worker} produced {count} files, first {path}",
                 worker=worker.identifier, count=len(paths), path=paths[0])


def build_manager(config: Config, store, clock: IReactorTime | None = None, *,
                  bcrypt_rounds: int = 10) -> Manager:
    """Everything but the listening port; start `manager.services` to run the timers."""
    if clock is None:
        from twisted.internet import reactor as clock
    lease_holder = new_object_id()
    services = MultiService()
    StoreService(store).setServiceParent(services)
    updates = UpdateQueue(store, clock)
    task_source: ITaskSource = NoServer()
    if config.has_upstream:
        from flamenco.upstream.link import build_upstream

        task_source, upstream_services = build_upstream(config, store, updates, clock, lease_holder)
        for service in upstream_services:
            service.setServiceParent(services)
    else:
        log.warn("no Flamenco Server configured ('flamenco' is empty): running stand-alone")
    task_updates = TaskUpdateService(store, updates)
    timeouts = TaskTimeoutChecker(
        store, updates, clock,
        timeout=config.active_task_timeout_interval_seconds,
        interval=config.task_timeout_check_interval_seconds,
        grace=config.task_timeout_grace_seconds,
        lease_holder=lease_holder,
    )
    timeouts.setServiceParent(services)
    return Manager(
        config=config,
        store=store,
        updates=updates,
        task_source=task_source,
        workers=WorkerService(store, task_updates, clock,
                              registration_secret=config.worker_registration_secret,
                              bcrypt_rounds=bcrypt_rounds),
        task_updates=task_updates,
        scheduler=Scheduler(store, updates, task_source, config.variables),
        timeouts=timeouts,
        services=services,
        lease_holder=lease_holder,
    )
