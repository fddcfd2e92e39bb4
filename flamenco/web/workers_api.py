"""The Worker-facing HTTP API (PROTOCOL §3): decode, authenticate, call a service, encode."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import parse_qs

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

import flamenco
from flamenco.documents import (
    WorkerRegistration, WorkerSignOn, WorkerTaskUpdate, decode_json_object, parse_output_produced,
)
from flamenco.errors import BadRequest, Forbidden, UnknownTask
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.web.responses import endpoint, json_error, json_response, no_content, read_body

log = Logger()


def _may_keep_running_by_default(request: IRequest) -> bytes:
    # The store is unreachable: let the task go on rather than crash the worker's poller
    # with an error body; its updates will be retried until the store is back.
    return json_response(request, {"may_keep_running": True})


def _peer_host(request: IRequest) -> str:
    """The client's address; IPv4 clients of a dual-stack port as plain IPv4."""
    host = getattr(request.getClientAddress(), "host", "") or ""
    try:
        mapped = ip_address(host).ipv4_mapped
    except (ValueError, AttributeError):
        return host
    return str(mapped) if mapped else host


def _user_agent(request: IRequest) -> str:
    return (request.getHeader(b"user-agent") or b"").decode("latin-1")


def _task_id(raw: str) -> str:
    if not is_object_id(raw):
        raise UnknownTask(f"Invalid ObjectID used for task-id: {raw}")
    return normalise_object_id(raw)


def _from_loopback(request: IRequest) -> bool:
    try:
        return ip_address(_peer_host(request)).is_loopback
    except ValueError:
        return False


class WorkerAPI:
    app = Klein()
    # Werkzeug would answer a path with `//` in it (`/tasks/..%2f/update`) with a 308 redirect.
    app.url_map.merge_slashes = False

    def __init__(self, manager):
        self.manager = manager
        self.max_body = manager.config.max_request_body_bytes

    # -- helpers -------------------------------------------------------------------------------
    async def _worker(self, request: IRequest):
        """The authenticated Worker; nothing is written (a refused request changes nothing)."""
        username = request.getUser().decode("utf-8", "replace")
        password = request.getPassword().decode("utf-8", "replace")
        return await self.manager.workers.authenticate(username, password, _peer_host(request))

    async def _seen(self, request: IRequest, worker, wake: bool = False):
        """Record the sign of life, once the request is known to be acceptable."""
        return await self.manager.workers.seen(worker, _peer_host(request),
                                               _user_agent(request), wake)

    def _json_body(self, request: IRequest, what: str) -> dict:
        return decode_json_object(read_body(request, self.max_body), what)

    # -- unknown routes and methods --------------------------------------------------------------
    @app.handle_errors(NotFound)
    def not_found(self, request, failure):
        return json_error(request, 404, f"no such endpoint: {request.path.decode('latin-1')}")

    @app.handle_errors(MethodNotAllowed)
    def wrong_method(self, request, failure):
        return json_error(request, 405, f"method {request.method.decode('latin-1')} not allowed here")

    # -- status ----------------------------------------------------------------------------------
    @app.route("/", methods=["GET"])
    @endpoint
    async def status_report(self, request):
        store = self.manager.store
        request.setHeader(b"Cache-Control", b"no-cache")
        return json_response(request, {
            "nr_of_workers": await store.count_workers(),
            "nr_of_tasks": await store.count_tasks(),
            "upstream_queue_size": await store.count_queued_updates(),
            "version": flamenco.__version__,
        })

    # -- registration and sign-on/off ------------------------------------------------------------
    @app.route("/register-worker", methods=["POST"])
    @endpoint
    async def register_worker(self, request):
        registration = WorkerRegistration.from_json(self._json_body(request, "registration"))
        authorization = (request.getHeader(b"authorization") or b"").decode("latin-1")
        token = authorization[7:].strip() if authorization.startswith("Bearer ") else None
        worker = await self.manager.workers.register(
            registration, _peer_host(request), _user_agent(request), token
        )
        return json_response(request, worker.to_json())

    @app.route("/sign-on", methods=["POST"])
    @endpoint
    async def sign_on(self, request):
        worker = await self._worker(request)
        body = read_body(request, self.max_body)
        sign_on = WorkerSignOn.from_json(decode_json_object(body, "sign-on") if body.strip() else {})
        await self.manager.workers.sign_on(worker, sign_on, _peer_host(request), _user_agent(request))
        return no_content(request)

    @app.route("/sign-off", methods=["POST"])
    @endpoint
    async def sign_off(self, request):
        worker = await self._worker(request)
        await self.manager.workers.sign_off(worker)
        return no_content(request)

    # -- tasks -----------------------------------------------------------------------------------
    @app.route("/task", methods=["POST", "GET"])
    @endpoint
    async def task(self, request):
        worker = await self._seen(request, await self._worker(request), wake=True)
        doc = await self.manager.scheduler.assign(worker)
        if doc is None:
            return no_content(request)
        return json_response(request, doc)

    @app.route("/tasks/<raw_id>/update", methods=["POST"])
    @endpoint
    async def task_update(self, request, raw_id):
        worker = await self._worker(request)
        task_id = _task_id(raw_id)
        report = WorkerTaskUpdate.from_json(self._json_body(request, "task update"))
        await self.manager.task_updates.accept_update(worker, task_id, report)
        await self._seen(request, worker)
        return no_content(request)

    @app.route("/tasks/<raw_id>/return", methods=["POST"])
    @endpoint
    async def task_return(self, request, raw_id):
        worker = await self._worker(request)
        await self.manager.task_updates.return_task(worker, _task_id(raw_id))
        await self._seen(request, worker)
        return no_content(request)

    @app.route("/may-i-run/<raw_id>", methods=["GET"])
    @endpoint(when_store_unavailable=_may_keep_running_by_default)
    async def may_i_run(self, request, raw_id):
        worker = await self._worker(request)
        task_id = _task_id(raw_id)
        worker = await self._seen(request, worker, wake=True)
        may, reason = await self.manager.task_updates.may_keep_running(worker, task_id)
        answer: dict = {"may_keep_running": may}
        if not may:
            answer["reason"] = reason
        if worker.status_requested and worker.is_2x:
            # 2.0 workers fail on any key they do not know (§5.10.6).
            answer["status_requested"] = worker.status_requested
        return json_response(request, answer)

    @app.route("/output-produced", methods=["POST"])
    @endpoint
    async def output_produced(self, request):
        worker = await self._worker(request)
        paths = parse_output_produced(self._json_body(request, "output-produced"))
        self.manager.note_output(worker, paths)
        return no_content(request)

    # -- worker status (2.x) -----------------------------------------------------------------------
    @app.route("/status-change", methods=["GET"])
    @endpoint
    async def status_change(self, request):
        worker = await self._seen(request, await self._worker(request))
        if not worker.status_requested:
            return no_content(request)
        return json_response(request, {"status_requested": worker.status_requested})

    @app.route("/ack-status-change/<status>", methods=["POST"])
    @endpoint
    async def ack_status_change(self, request, status):
        worker = await self._worker(request)
        await self.manager.workers.acknowledge_status(worker, status)
        return no_content(request)

    # -- operator and debug endpoints: loopback only ---------------------------------------------
    def _require_loopback(self, request):
        if not _from_loopback(request):
            raise Forbidden("operator endpoints are only served to the Manager's own machine")

    def _operator_args(self, request: IRequest) -> dict[str, str]:
        """Query arguments, and those of a form-encoded body (WorkerRequest leaves bodies alone)."""
        raw = dict(request.args)
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
        if content_type.lower() == b"application/x-www-form-urlencoded":
            raw.update(parse_qs(read_body(request, self.max_body), keep_blank_values=True))
        return {key.decode("utf-8", "replace"): values[-1].decode("utf-8", "replace")
                for key, values in raw.items()}

    @app.route("/worker-action/<worker_id>", methods=["POST"])
    @endpoint
    async def worker_action(self, request, worker_id):
        self._require_loopback(request)
        args = self._operator_args(request)
        action = args.get("action", "")
        lazy = args.get("lazy", "").lower() == "true"
        workers = self.manager.workers
        if action == "set-status":
            await workers.request_status(worker_id, args.get("status", ""), lazy)
        elif action == "shutdown":
            await workers.request_status(worker_id, "shutdown", lazy)
        elif action == "ack-timeout":
            await workers.acknowledge_timeout(worker_id)
        elif action == "approve":
            await workers.approve(worker_id)
        else:
            raise BadRequest(f"unknown action {action!r};"
                             " use set-status, shutdown, ack-timeout or approve")
        return no_content(request)

    @app.route("/kick", methods=["GET", "POST"])
    @endpoint
    async def kick(self, request):
        self._require_loopback(request)
        log.info("operator asked for a task download now (/kick)")
        self.manager.task_source.download_now()
        return json_response(request, {"message": "Kicked task downloader"})

    @app.route("/timeout", methods=["GET", "POST"])
    @endpoint
    async def timeout(self, request):
        self._require_loopback(request)
        failed = await self.manager.timeouts.sweep()
        log.info("operator ran the task timeout check (/timeout): {count} tasks timed out",
                 count=len(failed))
        return json_response(request, {"message": "Kicked task timeouter", "failed": failed})
