"""The operator endpoints the 2.0 and 2.x Managers served beside the Worker API
(PROTOCOL §3.12-3.14), to the Manager's own machine only: decode, call a service, encode."""

from __future__ import annotations

from klein import Klein
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from flamenco.documents import decode_json_object
from flamenco.errors import BadRequest, Forbidden, UnknownTask
from flamenco.failures import FailureHandling
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.log_downloads import LogDownloads
from flamenco.quarantine import SickWorkers
from flamenco.sleep_schedules import SleepScheduler
from flamenco.timeouts import TaskTimeoutChecker
from flamenco.upstream import ITaskSource
from flamenco.web.access import is_local_peer, peer_host
from flamenco.web.responses import (
    endpoint, form_args, json_error, json_response, json_routing_errors, no_content, read_body,
    user_agent,
)
from flamenco.worker_actions import WorkerAction, WorkerActions

log = Logger()

#: The first path segments served here (`web.root.ManagerRoot` routes them).
PATHS = frozenset({b"worker-action", b"blocklist", b"set-sleep-schedule", b"sleep-schedule",
                   b"quarantine", b"logfile", b"kick", b"timeout"})


class LocalOperatorAPI:
    app = json_routing_errors(Klein())
    # As in WorkerAPI: a path with `//` in it is answered 404, not redirected.
    app.url_map.merge_slashes = False

    def __init__(self, actions: WorkerActions, failures: FailureHandling,
                 quarantine: SickWorkers, sleep_schedules: SleepScheduler,
                 log_downloads: LogDownloads, task_source: ITaskSource,
                 timeouts: TaskTimeoutChecker, *, max_body: int):
        self.actions = actions
        self.failures = failures
        self.quarantine = quarantine
        self.sleep_schedules = sleep_schedules
        self.log_downloads = log_downloads
        self.task_source = task_source
        self.timeouts = timeouts
        self.max_body = max_body

    @staticmethod
    def _require_loopback(request: IRequest) -> None:
        if not is_local_peer(peer_host(request)):
            raise Forbidden("operator endpoints are only served to the Manager's own machine")

    # -- Workers ---------------------------------------------------------------------------------
    @app.route("/worker-action/<worker_id>", methods=["POST"])
    @endpoint
    async def worker_action(self, request, worker_id):
        self._require_loopback(request)
        args = form_args(request, self.max_body)
        action = WorkerAction(args.get("action", ""), status=args.get("status", ""),
                              lazy=args.get("lazy", "").lower() == "true",
                              job_id=args.get("job_id", ""), task_type=args.get("task_type", ""))
        task_id = await self.actions.perform(worker_id, action)
        if task_id is None:
            return no_content(request)
        return json_response(request, {"message": f"test task {task_id} queued",
                                       "task_id": task_id})

    @app.route("/blocklist", methods=["GET"])
    @endpoint
    async def blocklist(self, request):
        self._require_loopback(request)
        entries = await self.failures.blocklist()
        return json_response(request, {"blocklist": [entry.to_json() for entry in entries]})

    @app.route("/quarantine", methods=["GET"])
    @endpoint
    async def quarantine_listing(self, request):
        self._require_loopback(request)
        entries = await self.quarantine.listing()
        return json_response(request, {"quarantine": [entry.to_json() for entry in entries]})

    # -- sleep schedules -------------------------------------------------------------------------
    @app.route("/set-sleep-schedule/<worker_id>", methods=["POST"])
    @endpoint
    async def set_sleep_schedule(self, request, worker_id):
        self._require_loopback(request)
        content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
        if content_type != b"application/json":
            return json_error(request, 406, "send the schedule as application/json")
        doc = decode_json_object(read_body(request, self.max_body), "sleep schedule")
        schedule = await self.sleep_schedules.save(worker_id, doc)
        return json_response(request, schedule.to_json())

    @app.route("/sleep-schedule/<worker_id>", methods=["GET", "DELETE"])
    @endpoint
    async def sleep_schedule(self, request, worker_id):
        self._require_loopback(request)
        if request.method == b"DELETE":
            await self.sleep_schedules.clear(worker_id)
            return no_content(request)
        return json_response(request, (await self.sleep_schedules.get(worker_id)).to_json())

    # -- task logs -------------------------------------------------------------------------------
    @app.route("/logfile/<job_id>/<task_id>", methods=["GET"])
    @endpoint
    async def logfile(self, request, job_id, task_id):
        self._require_loopback(request)
        if not (is_object_id(job_id) and is_object_id(task_id)):
            raise UnknownTask(f"Invalid ObjectID in /logfile/{job_id}/{task_id}")
        raw_tail = request.args.get(b"tail", [b""])[-1].decode("latin-1")
        if raw_tail and not raw_tail.isdigit():
            raise BadRequest(f"tail must be a number of lines, not {raw_tail!r}")
        found = self.log_downloads.download(
            normalise_object_id(job_id), normalise_object_id(task_id),
            int(raw_tail) if raw_tail else None, user_agent(request))
        if found.gzipped:
            request.setHeader(b"Content-Type", b"text/plain")
            request.setHeader(b"Content-Encoding", b"gzip")
            request.setHeader(b"Content-Disposition",
                              f'attachment; filename="{found.name}"'.encode())
        else:
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return found.body

    # -- debug endpoints -------------------------------------------------------------------------
    @app.route("/kick", methods=["GET", "POST"])
    @endpoint
    async def kick(self, request):
        self._require_loopback(request)
        log.info("operator asked for a task download now (/kick)")
        self.task_source.download_now()
        return json_response(request, {"message": "Kicked task downloader"})

    @app.route("/timeout", methods=["GET", "POST"])
    @endpoint
    async def timeout(self, request):
        self._require_loopback(request)
        failed = await self.timeouts.sweep()
        log.info("operator ran the task timeout check (/timeout): {count} tasks timed out",
                 count=len(failed))
        return json_response(request, {"message": "Kicked task timeouter", "failed": failed})
