"""The whole HTTP resource tree of one Manager."""

from __future__ import annotations

from importlib import resources

from twisted.web.resource import IResource
from twisted.web.static import File

from flamenco.web.events_stream import EventStream
from flamenco.web.health_api import HealthAPI
from flamenco.web.jobs_api import JobsAPI
from flamenco.web.login import LoginPages
from flamenco.web.operator_api import OperatorAPI
from flamenco.web.root import ManagerRoot
from flamenco.web.workers_api import WorkerAPI


def dashboard_files() -> File:
    folder = File(str(resources.files("flamenco.web") / "static"))
    folder.indexNames = ["index.html"]
    folder.contentTypes = {**folder.contentTypes, ".js": "text/javascript",
                           ".css": "text/css", ".svg": "image/svg+xml"}
    return folder


def build_resource(manager) -> IResource:
    view = manager.operator
    health = None
    if manager.config.serve_metrics:
        health = HealthAPI(manager.store, view.metrics).app.resource()
    return ManagerRoot(
        workers=WorkerAPI(manager).app.resource(),
        operator=OperatorAPI(view.farm, view.previews).app.resource(),
        events=EventStream(view.bus, manager.clock),
        dashboard=dashboard_files(),
        login=LoginPages(view.access).app.resource(),
        health=health,
        access=view.access,
        metrics=view.metrics,
        jobs=None if manager.jobs is None else JobsAPI(manager.jobs, manager.config).app.resource(),
    )
