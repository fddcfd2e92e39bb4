"""The Worker-facing HTTP API (PROTOCOL §3): decode, authenticate, call a service, encode."""

from __future__ import annotations


from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

import flamenco
from flamenco.documents import (
    WorkerRegistration, WorkerSignOn, WorkerTaskUpdate, decode_json_object, parse_output_produced,
)
from flamenco.errors import BadRequest, Forbidden, UnknownTask, UnknownWorker
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.web.access import is_local_peer, peer_host
from flamenco.web.responses import (
    endpoint, form_args, json_error, json_response, no_content, read_body,
)
from flamenco.web.task_log_files import log_file_response

log = Logger()


def _may_keep_running_by_default(request: IRequest) -> bytes:
    # The store is unreachable: let the task go on rather than crash the worker's poller
    # with an error body; its updates will be retried until the store is back.
    return json_response(request, {"may_keep_running": True})


def _user_agent(request: IRequest) -> str:
    return (request.getHeader(b"user-agent") or b"").decode("latin-1")


def _task_id(raw: str) -> str:
    if not is_object_id(raw):
        raise UnknownTask(f"Invalid ObjectID used for task-id: {raw}")
    return normalise_object_id(raw)


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
        return await self.manager.workers.authenticate(username, password, peer_host(request))

    async def _seen(self, request: IRequest, worker, wake: bool = False):
        """Record the sign of life, once the request is known to be acceptable."""
        return await self.manager.workers.seen(worker, peer_host(request),
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
            registration, peer_host(request), _user_agent(request), token
        )
        return json_response(request, worker.to_json())

    @app.route("/sign-on", methods=["POST"])
    @endpoint
    async def sign_on(self, request):
        worker = await self._worker(request)
        body = read_body(request, self.max_body)
        sign_on = WorkerSignOn.from_json(decode_json_object(body, "sign-on") if body.strip() else {})
        await self.manager.workers.sign_on(worker, sign_on, peer_host(request), _user_agent(request))
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
        if not is_local_peer(peer_host(request)):
            raise Forbidden("operator endpoints are only served to the Manager's own machine")

    @app.route("/worker-action/<worker_id>", methods=["POST"])
    @endpoint
    async def worker_action(self, request, worker_id):
        self._require_loopback(request)
        args = form_args(request, self.max_body)
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
        elif action == "send-test-job":
            worker = await workers.existing(worker_id)
            task_id = await self.manager.test_tasks.send_test_task(worker)
            return json_response(request, {"message": f"test task {task_id} queued",
                                           "task_id": task_id})
        elif action == "forget-worker":
            await workers.forget(worker_id)
        elif action in ("forget-blacklist-line", "forget-blocklist-line"):
            await self.manager.failures.forget_blocklist_entry(
                worker_id, args.get("job_id", ""), args.get("task_type", ""))
        else:
            raise BadRequest(f"unknown action {action!r}; use set-status, shutdown, ack-timeout,"
                             " approve, send-test-job, forget-worker or forget-blocklist-line")
        return no_content(request)

    @app.route("/blocklist", methods=["GET"])
    @endpoint
    async def blocklist(self, request):
        self._require_loopback(request)
        entries = await self.manager.failures.blocklist()
        return json_response(request, {"blocklist": [entry.to_json() for entry in entries]})

    @app.route("/set-sleep-schedule/<worker_id>", methods=["POST"])
    @endpoint
    async def set_sleep_schedule(self, request, worker_id):
        self._require_loopback(request)
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
        if content_type != b"application/json":
            return json_error(request, 406, "send the schedule as application/json")
        scheduler = self.manager.sleep_schedules
        schedule = await scheduler.save(worker_id, self._json_body(request, "sleep schedule"),
                                        self.manager.updates.now())
        return json_response(request, schedule.to_json())

    @app.route("/sleep-schedule/<worker_id>", methods=["GET", "DELETE"])
    @endpoint
    async def sleep_schedule(self, request, worker_id):
        self._require_loopback(request)
        scheduler = self.manager.sleep_schedules
        if request.method == b"DELETE":
            await scheduler.clear(worker_id)
            return no_content(request)
        schedule = await scheduler.get(worker_id)
        if schedule is None:
            raise UnknownWorker(f"worker {worker_id} has no sleep schedule")
        return json_response(request, schedule.to_json())

    @app.route("/quarantine", methods=["GET"])
    @endpoint
    async def quarantine(self, request):
        self._require_loopback(request)
        entries = await self.manager.quarantine.listing()
        return json_response(request, {"quarantine": [entry.to_json() for entry in entries]})

    @app.route("/logfile/<job_id>/<task_id>", methods=["GET"])
    @endpoint
    async def logfile(self, request, job_id, task_id):
        self._require_loopback(request)
        if not (is_object_id(job_id) and is_object_id(task_id)):
            raise UnknownTask(f"Invalid ObjectID in /logfile/{job_id}/{task_id}")
        raw_tail = request.args.get(b"tail", [b""])[-1].decode("latin-1")
        if raw_tail and not raw_tail.isdigit():
            raise BadRequest(f"tail must be a number of lines, not {raw_tail!r}")
        task_logs = self.manager.task_logs
        body = None
        if task_logs is not None:
            body = log_file_response(request, task_logs, normalise_object_id(job_id),
                                     normalise_object_id(task_id),
                                     int(raw_tail) if raw_tail else None)
        if body is None:
            raise UnknownTask(f"no log file for task {task_id} of job {job_id}")
        return body

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
