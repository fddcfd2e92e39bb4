"""The Manager's resource tree: the Worker API, the 2.x operator endpoints, and the operator
area, metrics and health.

The first path segment picks the part; the segment is handed back so each Klein app sees the
whole path. The operator area (API, `/as-json`, `/events`, `/app/`) passes `AccessPolicy`
first. The Worker endpoints are served exactly as before, except that a browser page from
another origin cannot trigger the loopback-only `/worker-action`, `/kick` and `/timeout`.
"""

from __future__ import annotations

import time
from typing import cast

from twisted.web.iweb import IRequest
from twisted.web.server import Request
from twisted.web.resource import IResource, Resource
from twisted.web.static import File

from flamenco.metrics import ManagerMetrics
from flamenco.web.access import AccessPolicy, Refusal
from flamenco.web.local_operator_api import PATHS as LOCAL_OPERATOR
from flamenco.web.responses import json_error

HEALTH = {b"metrics", b"healthz", b"readyz"}
OPERATOR = {b"api", b"as-json", b"events", b"app"}
LOGIN = {b"login", b"logout"}
#: The 2.x operator endpoints that change something (loopback only): refused to foreign pages too.
LEGACY_OPERATOR = {b"worker-action", b"kick", b"timeout"}


class RefusalPage(Resource):
    isLeaf = True

    def __init__(self, refusal: Refusal):
        super().__init__()
        self.refusal = refusal

    def render(self, request: IRequest) -> bytes:
        if self.refusal.redirect:
            request.setResponseCode(302)
            request.setHeader(b"Location", self.refusal.redirect.encode("ascii"))
            return b""
        return json_error(request, self.refusal.code, self.refusal.message)


class ManagerRoot(Resource):
    def __init__(self, *, workers: IResource, local_operator: IResource, operator: IResource,
                 events: IResource, dashboard: File, login: IResource, health: IResource | None,
                 access: AccessPolicy, metrics: ManagerMetrics, jobs: IResource | None = None):
        super().__init__()
        self.workers = workers
        self.local_operator = local_operator  # the 2.x Manager's loopback-only endpoints
        self.operator = operator
        self.jobs = jobs  # stand-alone mode: `/api/jobs...`
        self.events = events
        self.dashboard = dashboard
        self.login = login
        self.health = health
        self.access = access
        self.metrics = metrics

    def getChildWithDefault(self, name: bytes, request: IRequest) -> IResource:
        if name == b"task":
            started = time.perf_counter()
            # ManagerSite's requests are `server.Request`s (IRequest does not declare this).
            cast(Request, request).notifyFinish().addBoth(
                lambda _: self.metrics.observe_assign(time.perf_counter() - started))
        if name in HEALTH and self.health is not None:
            return self._whole_path(self.health, request)
        if name in LOGIN:
            return self._whole_path(self.login, request)
        if name in OPERATOR:
            wants_html = name == b"app"
            refusal = self.access.refusal(request, wants_html)
            if refusal is not None:
                return RefusalPage(refusal)
            if name == b"events":
                return self.events
            if name == b"app":
                return self.dashboard
            request.setHeader(b"Cache-Control", b"no-store")  # live data
            if self.jobs is not None and name == b"api" and request.postpath[:1] == [b"jobs"]:
                return self._whole_path(self.jobs, request)
            return self._whole_path(self.operator, request)
        if name in LEGACY_OPERATOR and not self.access.same_origin(request):
            return RefusalPage(Refusal(403, "cross-origin request refused"))
        if name in LOCAL_OPERATOR:
            return self._whole_path(self.local_operator, request)
        return self._whole_path(self.workers, request)

    @staticmethod
    def _whole_path(resource: IResource, request: IRequest) -> IResource:
        request.postpath.insert(0, request.prepath.pop())
        return resource
