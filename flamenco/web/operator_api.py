"""The operator API (JSON, docs/openapi-operator.yaml): decode, call `FarmView`, encode."""

from __future__ import annotations

import json

from klein import Klein
from twisted.web.iweb import IRequest

from flamenco.errors import BadRequest
from flamenco.farm_view import FarmView
from flamenco.previews import Previews
from flamenco.upstream.health import UpstreamHealth
from flamenco.web.responses import (
    endpoint, json_error, json_response, json_routing_errors, no_content, read_body,
)

MAX_BODY = 64 * 1024


def _query(request: IRequest, name: str) -> str:
    values = request.args.get(name.encode("ascii"))
    return values[-1].decode("utf-8", "replace").strip() if values else ""


def _whole_number(request: IRequest, name: str, default: int) -> int:
    raw = _query(request, name)
    if not raw:
        return default
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a whole number, not {raw!r}")
    return int(raw)


class OperatorAPI:
    app = json_routing_errors(Klein())
    max_body = MAX_BODY

    def __init__(self, farm: FarmView, health: UpstreamHealth, previews: Previews):
        self.farm = farm
        self.health = health
        self.previews = previews

    # -- the farm --------------------------------------------------------------------------------
    @app.route("/api/farm", methods=["GET"])
    @endpoint
    async def farm(self, request):
        return json_response(request, await self.farm.overview())

    @app.route("/as-json", methods=["GET"])
    @endpoint
    async def as_json(self, request):
        request.setHeader(b"Cache-Control", b"no-cache")
        return json_response(request, await self.farm.as_json())

    @app.route("/api/queue", methods=["GET"])
    @endpoint
    async def queue(self, request):
        return json_response(request, await self.farm.queue_depth())

    @app.route("/api/upstream", methods=["GET"])
    @endpoint
    async def upstream(self, request):
        return json_response(request, await self.health.report())

    # -- workers ---------------------------------------------------------------------------------
    @app.route("/api/workers", methods=["GET"])
    @endpoint
    async def workers(self, request):
        found = await self.farm.list_workers(_query(request, "status"), _query(request, "type"))
        return json_response(request, {"workers": found})

    @app.route("/api/workers/<worker_id>", methods=["GET"])
    @endpoint
    async def worker(self, request, worker_id):
        return json_response(request, await self.farm.worker(worker_id))

    @app.route("/api/workers/<worker_id>/actions", methods=["POST"])
    @endpoint
    async def worker_action(self, request, worker_id):
        body = read_body(request, self.max_body)
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("action"), str):
            raise BadRequest('expected {"action": one of sleep, wake, shutdown, ack-timeout, '
                             'forget}')
        lazy = doc.get("lazy", False)
        if not isinstance(lazy, bool):
            raise BadRequest("lazy must be true or false")
        worker = await self.farm.act_on_worker(worker_id, doc["action"], lazy)
        if worker is None:
            return no_content(request)
        return json_response(request, worker)

    # -- tasks -----------------------------------------------------------------------------------
    @app.route("/api/tasks", methods=["GET"])
    @endpoint
    async def tasks(self, request):
        return json_response(request, await self.farm.list_tasks(
            status=_query(request, "status"), task_type=_query(request, "type"),
            job=_query(request, "job"), offset=_whole_number(request, "offset", 0),
            limit=_whole_number(request, "limit", 50)))

    @app.route("/api/tasks/<task_id>", methods=["GET"])
    @endpoint
    async def task(self, request, task_id):
        return json_response(request, await self.farm.task(task_id))

    # -- latest rendered images ------------------------------------------------------------------
    @app.route("/api/images", methods=["GET"])
    @endpoint
    async def images(self, request):
        return json_response(request, {"images": [t.to_json() for t in self.previews.latest()]})

    @app.route("/api/images/<int:image_id>.jpg", methods=["GET"])
    @endpoint
    async def image(self, request, image_id):
        thumbnail = self.previews.get(image_id)
        if thumbnail is None:
            return json_error(request, 404, f"no image {image_id} (only the last few are kept)")
        request.setHeader(b"Content-Type", b"image/jpeg")
        return thumbnail.jpeg
