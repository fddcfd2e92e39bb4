"""`/metrics` (Prometheus text format), `/healthz` and `/readyz`: no login, can be switched off."""

from __future__ import annotations

from klein import Klein

import flamenco
from flamenco.metrics import CONTENT_TYPE, ManagerMetrics
from flamenco.readiness import StoreReadiness
from flamenco.store.interface import StoreUnavailable
from flamenco.web.responses import json_response


class HealthAPI:
    app = Klein()

    def __init__(self, readiness: StoreReadiness, metrics: ManagerMetrics):
        self.readiness = readiness
        self.metrics = metrics

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request):
        request.setHeader(b"Cache-Control", b"no-cache")
        return json_response(request, {"status": "ok", "version": flamenco.__version__})

    @app.route("/readyz", methods=["GET"])
    async def readyz(self, request):
        request.setHeader(b"Cache-Control", b"no-cache")
        found = await self.readiness.check()
        if not found.ready:
            return json_response(request, {"status": "unavailable", "store": found.store,
                                           "reason": found.reason}, 503)
        return json_response(request, {"status": "ready", "store": found.store})

    @app.route("/metrics", methods=["GET"])
    async def metrics_text(self, request):
        try:
            body = await self.metrics.render()
        except StoreUnavailable as error:
            return json_response(request, {"error": "database unavailable",
                                           "detail": str(error)}, 503)
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode("ascii"))
        return body
