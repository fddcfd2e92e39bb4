"""The Worker-facing HTTP API (PROTOCOL §3.1-3.11): decode, authenticate, call a service, encode.

The operator endpoints the 2.x Manager served beside these are in `local_operator_api`.
"""

from __future__ import annotations

from klein import Klein
from twisted.web.iweb import IRequest

from flamenco.documents import (
    Worker, WorkerRegistration, WorkerSignOn, WorkerTaskUpdate, decode_json_object,
    parse_output_produced,
)
from flamenco.errors import UnknownTask
from flamenco.farm_view import FarmView
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.web.access import peer_host
from flamenco.web.responses import (
    endpoint, json_response, json_routing_errors, no_content, read_body, user_agent,
)
from flamenco.worker_requests import WHILE_STORE_UNAVAILABLE, Contact, WorkerRequests
from flamenco.workers import WorkerService


def _may_keep_running_by_default(request: IRequest) -> bytes:
    return json_response(request, WHILE_STORE_UNAVAILABLE.to_json())


def _contact(request: IRequest) -> Contact:
    return Contact(peer_host(request), user_agent(request))


def _task_id(raw: str) -> str:
    if not is_object_id(raw):
        raise UnknownTask(f"Invalid ObjectID used for task-id: {raw}")
    return normalise_object_id(raw)


class WorkerAPI:
    app = json_routing_errors(Klein())
    # Werkzeug would answer a path with `//` in it (`/tasks/..%2f/update`) with a 308 redirect.
    app.url_map.merge_slashes = False

    def __init__(self, workers: WorkerService, requests: WorkerRequests, farm: FarmView, *,
                 max_body: int):
        self.workers = workers
        self.requests = requests
        self.farm = farm
        self.max_body = max_body

    # -- helpers -------------------------------------------------------------------------------
    async def _worker(self, request: IRequest) -> Worker:
        """The authenticated Worker; nothing is written (a refused request changes nothing)."""
        username = request.getUser().decode("utf-8", "replace")
        password = request.getPassword().decode("utf-8", "replace")
        return await self.workers.authenticate(username, password, peer_host(request))

    def _json_body(self, request: IRequest, what: str) -> dict:
        return decode_json_object(read_body(request, self.max_body), what)

    # -- status ----------------------------------------------------------------------------------
    @app.route("/", methods=["GET"])
    @endpoint
    async def status_report(self, request):
        request.setHeader(b"Cache-Control", b"no-cache")
        return json_response(request, await self.farm.status_report())

    # -- registration and sign-on/off ------------------------------------------------------------
    @app.route("/register-worker", methods=["POST"])
    @endpoint
    async def register_worker(self, request):
        registration = WorkerRegistration.from_json(self._json_body(request, "registration"))
        authorization = (request.getHeader(b"authorization") or b"").decode("latin-1")
        token = authorization[7:].strip() if authorization.startswith("Bearer ") else None
        worker = await self.workers.register(registration, peer_host(request),
                                             user_agent(request), token)
        return json_response(request, worker.to_json())

    @app.route("/sign-on", methods=["POST"])
    @endpoint
    async def sign_on(self, request):
        worker = await self._worker(request)
        body = read_body(request, self.max_body)
        doc = decode_json_object(body, "sign-on") if body.strip() else {}
        await self.workers.sign_on(worker, WorkerSignOn.from_json(doc), peer_host(request),
                                   user_agent(request))
        return no_content(request)

    @app.route("/sign-off", methods=["POST"])
    @endpoint
    async def sign_off(self, request):
        worker = await self._worker(request)
        await self.workers.sign_off(worker)
        return no_content(request)

    # -- tasks -----------------------------------------------------------------------------------
    @app.route("/task", methods=["POST", "GET"])
    @endpoint
    async def task(self, request):
        doc = await self.requests.next_task(await self._worker(request), _contact(request))
        if doc is None:
            return no_content(request)
        return json_response(request, doc)

    @app.route("/tasks/<raw_id>/update", methods=["POST"])
    @endpoint
    async def task_update(self, request, raw_id):
        worker = await self._worker(request)
        task_id = _task_id(raw_id)
        report = WorkerTaskUpdate.from_json(self._json_body(request, "task update"))
        await self.requests.update_task(worker, _contact(request), task_id, report)
        return no_content(request)

    @app.route("/tasks/<raw_id>/return", methods=["POST"])
    @endpoint
    async def task_return(self, request, raw_id):
        worker = await self._worker(request)
        await self.requests.return_task(worker, _contact(request), _task_id(raw_id))
        return no_content(request)

    @app.route("/may-i-run/<raw_id>", methods=["GET"])
    @endpoint(when_store_unavailable=_may_keep_running_by_default)
    async def may_i_run(self, request, raw_id):
        worker = await self._worker(request)
        answer = await self.requests.may_i_run(worker, _contact(request), _task_id(raw_id))
        return json_response(request, answer.to_json())

    @app.route("/output-produced", methods=["POST"])
    @endpoint
    async def output_produced(self, request):
        worker = await self._worker(request)
        paths = parse_output_produced(self._json_body(request, "output-produced"))
        self.requests.output_produced(worker, paths)
        return no_content(request)

    # -- worker status (2.x) -----------------------------------------------------------------------
    @app.route("/status-change", methods=["GET"])
    @endpoint
    async def status_change(self, request):
        requested = await self.requests.requested_status(await self._worker(request),
                                                         _contact(request))
        if not requested:
            return no_content(request)
        return json_response(request, {"status_requested": requested})

    @app.route("/ack-status-change/<status>", methods=["POST"])
    @endpoint
    async def ack_status_change(self, request, status):
        worker = await self._worker(request)
        await self.workers.acknowledge_status(worker, status)
        return no_content(request)
