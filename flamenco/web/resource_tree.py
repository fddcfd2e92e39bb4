"""The whole HTTP resource tree of one Manager, built from the services it calls."""

from __future__ import annotations

from importlib import resources

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource
from twisted.web.static import File

from flamenco.failures import FailureHandling
from flamenco.log_downloads import LogDownloads
from flamenco.operator_view import OperatorView
from flamenco.quarantine import SickWorkers
from flamenco.readiness import StoreReadiness
from flamenco.sleep_schedules import SleepScheduler
from flamenco.standalone.service import JobService
from flamenco.timeouts import TaskTimeoutChecker
from flamenco.upstream import ITaskSource
from flamenco.worker_actions import WorkerActions
from flamenco.worker_requests import WorkerRequests
from flamenco.workers import WorkerService
from flamenco.web.access import AccessPolicy
from flamenco.web.events_stream import EventStream
from flamenco.web.health_api import HealthAPI
from flamenco.web.jobs_api import JobsAPI
from flamenco.web.local_operator_api import LocalOperatorAPI
from flamenco.web.login import LoginPages
from flamenco.web.operator_api import OperatorAPI
from flamenco.web.root import ManagerRoot
from flamenco.web.workers_api import WorkerAPI


@attrs.frozen
class WebServices:
    """Everything the HTTP layer calls: services, never the Manager assembly or the store."""

    workers: WorkerService
    worker_requests: WorkerRequests
    worker_actions: WorkerActions
    failures: FailureHandling
    quarantine: SickWorkers
    sleep_schedules: SleepScheduler
    log_downloads: LogDownloads
    task_source: ITaskSource
    timeouts: TaskTimeoutChecker
    operator: OperatorView
    readiness: StoreReadiness
    clock: IReactorTime
    #: `max_request_body_bytes`: the largest request body read.
    max_body: int
    #: `serve_metrics`: `/metrics`, `/healthz` and `/readyz` are served.
    serve_metrics: bool
    #: Served over TLS: the session cookie is Secure.
    tls: bool
    #: Stand-alone mode (no Server configured): the job service behind `/api/jobs`.
    jobs: JobService | None = None


def dashboard_files() -> File:
    folder = File(str(resources.files("flamenco.web") / "static"))
    folder.indexNames = ["index.html"]
    folder.contentTypes = {**folder.contentTypes, ".js": "text/javascript",
                           ".css": "text/css", ".svg": "image/svg+xml"}
    return folder


def build_resource(services: WebServices) -> IResource:
    view = services.operator
    access = AccessPolicy(view.login, tls=services.tls)
    health = None
    if services.serve_metrics:
        health = HealthAPI(services.readiness, view.metrics).app.resource()
    jobs = None
    if services.jobs is not None:
        jobs = JobsAPI(services.jobs, max_body=services.max_body).app.resource()
    local_operator = LocalOperatorAPI(
        services.worker_actions, services.failures, services.quarantine,
        services.sleep_schedules, services.log_downloads, services.task_source,
        services.timeouts, max_body=services.max_body)
    return ManagerRoot(
        workers=WorkerAPI(services.workers, services.worker_requests, view.farm,
                          max_body=services.max_body).app.resource(),
        local_operator=local_operator.app.resource(),
        operator=OperatorAPI(view.farm, view.health, view.previews).app.resource(),
        events=EventStream(view.bus, services.clock),
        dashboard=dashboard_files(),
        login=LoginPages(access).app.resource(),
        health=health,
        access=access,
        metrics=view.metrics,
        jobs=jobs,
    )
