"""`/metrics` (Prometheus text format), `/healthz` and `/readyz`: no login, can be switched off."""

from __future__ import annotations

from klein import Klein

import flamenco
from flamenco.metrics import CONTENT_TYPE, ManagerMetrics
from flamenco.store.interface import StoreUnavailable
from flamenco.web.responses import json_response


class HealthAPI:
    app = Klein()

    def __init__(self, store, metrics: ManagerMetrics):
        self.store = store
        self.metrics = metrics

    @app.route("/healthz", methods=["GET"])
    def healthz(self, request):
        request.setHeader(b"Cache-Control", b"no-cache")
        return json_response(request, {"status": "ok", "version": flamenco.__version__})

    @app.route("/readyz", methods=["GET"])
    async def readyz(self, request):
        request.setHeader(b"Cache-Control", b"no-cache")
        try:
            await self.store.count_workers()
        except StoreUnavailable as error:
            return json_response(request, {"status": "unavailable", "store": self.store.description,
                                           "reason": str(error)}, 503)
        return json_response(request, {"status": "ready", "store": self.store.description})

    @app.route("/metrics", methods=["GET"])
    async def metrics_text(self, request):
        try:
            body = await self.metrics.render()
        except StoreUnavailable as error:
            return json_response(request, {"error": "database unavailable",
                                           "detail": str(error)}, 503)
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode("ascii"))
        return body
