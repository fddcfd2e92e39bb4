"""A simulated Flamenco Server: the Server side of PROTOCOL §6, in memory, on Klein.

Used by the tests (in-process, on a loopback port) and by the README demo::

    python -m flamenco.testing.server --port 8090 --demo-job

It follows the Server rules the Manager depends on: managers authenticate with their token as
the Basic-auth username; a depsgraph download claims the `queued` tasks it delivers and honours
`X-Flamenco-If-Updated-Since` (strictly newer `_updated`, waiting statuses only); every Server
change gives the task a new `_updated` and `_etag`, and the task endpoint answers `304` to a
matching `If-None-Match`; pushed updates are accepted by the rules of §6.6 and the answer lists
this Manager's `cancel-requested` tasks. `generation` selects the 2017 or the 2021 behaviour
where they differ.

Beyond the real Server it understands the optional `?task_types=a,b` download hint (it serves
those types first and says so in `X-Flamenco-Task-Types`), optionally limits the number of tasks
per download (`max_tasks_per_download`, like the "N tasks per download" of the 2017 README),
accepts gzip-compressed request bodies (unless `accept_gzip` is off: then 415), and has knobs
for failure injection (`down_status`, `hang`) and an `/sim/...` admin API used by the demo.
"""

from __future__ import annotations

import base64
import gzip
import json
import secrets
import sys
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from email.utils import format_datetime

import attrs
from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.server import Site

from flamenco.ids import is_object_id, new_object_id

DEFAULT_MANAGER_ID = "5a1f0c3e9f1b2c0d4e5f6a70"
DEFAULT_MANAGER_SECRET = "mgr-token-123"
DEFAULT_PROJECT = "5a0b00000000000000000001"
DEFAULT_USER = "5a0b00000000000000000002"

RUNNABLE_JOB = {"2017": {"queued", "active", "cancel-requested"},
                "2021": {"queued", "active", "cancel-requested", "soft-failed"}}
CLEAN_SLATE_TASK = {"2017": {"queued", "claimed-by-manager", "active", "cancel-requested"},
                    "2021": {"queued", "claimed-by-manager", "active", "cancel-requested",
                             "soft-failed"}}
SINCE_TASK = {"2017": {"queued", "claimed-by-manager"},
              "2021": {"queued", "claimed-by-manager", "soft-failed"}}
ALLOWED_STATUS = {"queued", "claimed-by-manager", "active", "completed", "failed",
                  "soft-failed", "cancel-requested", "canceled", "paused",
                  "under-construction"}
AFTER_CANCEL = {"canceled", "failed", "completed"}


@attrs.define
class ServerTask:
    doc: dict  # everything but _updated / _etag
    updated: datetime
    etag: str
    log: str = ""  # the 2021 Server keeps the last few lines here

    def public(self) -> dict:
        out = dict(self.doc)
        out["_etag"] = self.etag
        out["_updated"] = format_datetime(self.updated, usegmt=True)
        return out


@attrs.define
class ServerJob:
    id: str
    manager: str
    status: str
    job_type: str
    priority: int
    task_ids: list


class _Tracked(ProtocolWrapper):
    def connectionLost(self, reason):
        ProtocolWrapper.connectionLost(self, reason)
        self.factory.all_lost()


class _TrackingFactory(WrappingFactory):
    protocol = _Tracked

    def __init__(self, wrapped):
        super().__init__(wrapped)
        self._waiting: list[defer.Deferred] = []

    def all_lost(self):
        if not self.protocols:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def close_all(self) -> defer.Deferred:
        if not self.protocols:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append(d)
        for proto in list(self.protocols):
            proto.transport.abortConnection()
        return d


class SimulatedServer:
    """The Server state plus its HTTP API (`self.app`)."""

    app = Klein()
    log = Logger()

    def __init__(self, *, manager_id: str = DEFAULT_MANAGER_ID,
                 manager_secret: str = DEFAULT_MANAGER_SECRET, generation: str = "2021",
                 clock=None, accept_gzip: bool = True, max_tasks_per_download: int = 0,
                 honour_type_hint: bool = True):
        if clock is None:
            from twisted.internet import reactor as clock
        assert generation in ("2017", "2021")
        self.clock = clock
        self.generation = generation
        self.managers: dict[str, str] = {manager_id: manager_secret}  # id -> token
        self.manager_id = manager_id
        self.tasks: dict[str, ServerTask] = {}
        self.jobs: dict[str, ServerJob] = {}
        self.task_logs: dict[str, dict] = {}  # update _id -> {task, received_on_manager, log}
        self.notifications: list[tuple[str, dict]] = []  # ("startup"|"update", body)
        self.accept_gzip = accept_gzip
        self.max_tasks_per_download = max_tasks_per_download
        #: False: behave like the real Server, which ignores `?task_types=`.
        self.honour_type_hint = honour_type_hint
        # -- failure injection and observation --
        self.down_status: int | None = None  # answer every API request with this status
        self.hang: set[str] = set()  # route names ("refetch", "push", ...) or task IDs
        self._hanging: list[defer.Deferred] = []
        self.requests: list[tuple[str, dict]] = []  # (route, details)
        self.pushed_batches: list[dict] = []  # {"count", "gzip", "bytes"}
        #: (task ID, new status, received_on_manager or None) for every accepted change.
        self.status_history: list[tuple[str, str, datetime | None]] = []
        #: [2021] task ID -> job ID of logs to ask the Manager for (`upload_task_file_queue`)
        self.log_requests: dict[str, str] = {}
        self.attached_logs: dict[str, bytes] = {}  # task ID -> the gzipped upload
        self._waiters: list[tuple] = []
        self._last_stamp = datetime.fromtimestamp(0, timezone.utc)
        self._port = None
        self._factory = None

    # -- serving ---------------------------------------------------------------------------------
    def site(self) -> Site:
        site = Site(self.app.resource())
        site.noisy = False
        site.displayTracebacks = False
        return site

    def listen(self, reactor=None, port: int = 0, interface: str = "127.0.0.1"):
        if reactor is None:
            from twisted.internet import reactor
        self._factory = _TrackingFactory(self.site())
        self._factory.noisy = False
        self._port = reactor.listenTCP(port, self._factory, interface=interface)
        return self._port

    @property
    def url(self) -> str:
        address = self._port.getHost()
        return f"http://{address.host}:{address.port}/"

    async def stop(self) -> None:
        """Stop listening and close every connection (which also ends hanging requests)."""
        if self._port is not None:
            await self._port.stopListening()
            await self._factory.close_all()
            self._port = None
        self._hanging.clear()

    def wait_for(self, condition, timeout: float = 30.0, reactor=None) -> defer.Deferred:
        """Fires once `condition(server)` is true, checked after every API request the Server
        handles (event-driven: no polling); fails with TimeoutError after `timeout` seconds."""
        if condition(self):
            return defer.succeed(None)
        if reactor is None:
            from twisted.internet import reactor
        d = defer.Deferred()
        entry = [condition, d, None]
        entry[2] = reactor.callLater(timeout, self._expire, entry, timeout)
        self._waiters.append(entry)
        return d

    def _expire(self, entry, timeout):
        if entry in self._waiters:
            self._waiters.remove(entry)
            entry[1].errback(defer.TimeoutError(
                f"the simulated Server did not reach the expected state within {timeout} s"))

    def _check_waiters(self) -> None:
        for entry in list(self._waiters):
            if entry[0](self):
                self._waiters.remove(entry)
                entry[2].cancel()
                entry[1].callback(None)

    # -- Server-side operations (what users do on the Server) ------------------------------------
    def _stamp(self) -> datetime:
        """Strictly increasing `_updated` values at millisecond precision, like MongoDB."""
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def _touch(self, task: ServerTask, when: datetime | None = None) -> None:
        task.updated = when if when is not None else self._stamp()
        task.etag = secrets.token_hex(10)

    def create_job(self, tasks: list[dict], *, job_type: str = "sleep", priority: int = 50,
                   manager_id: str | None = None, status: str = "queued") -> tuple[str, list[str]]:
        """Create a job; `tasks` are partial task documents (name, commands, task_type,
        priority, `parents` as indices into `tasks` or ObjectIds). Returns (job, task IDs)."""
        manager_id = manager_id or self.manager_id
        job_id = new_object_id()
        ids = [spec.get("_id") or new_object_id() for spec in tasks]
        for index, spec in enumerate(tasks):
            parents = [ids[p] if isinstance(p, int) else p for p in spec.get("parents", [])]
            doc = {
                "_id": ids[index],
                "job": job_id,
                "manager": manager_id,
                "project": DEFAULT_PROJECT,
                "user": DEFAULT_USER,
                "name": spec.get("name", f"task-{index}"),
                "status": status,
                "priority": spec.get("priority", 50),
                "job_priority": priority,
                "job_type": job_type,
                "commands": spec.get("commands", [{"name": "echo",
                                                   "settings": {"message": f"task {index}"}}]),
                "parents": parents,
                "activity": "",
                "worker": "",
                "task_progress_percentage": 0,
                "current_command_index": 0,
                "command_progress_percentage": 0,
                "_created": format_datetime(datetime.fromtimestamp(
                    self.clock.seconds(), timezone.utc), usegmt=True),
            }
            if spec.get("task_type"):
                doc["task_type"] = spec["task_type"]
            self.tasks[ids[index]] = ServerTask(doc=doc, updated=self._stamp(),
                                                etag=secrets.token_hex(10))
        self.jobs[job_id] = ServerJob(job_id, manager_id, status, job_type, priority, ids)
        return job_id, ids

    def set_task(self, task_id: str, **fields) -> None:
        """A Server-side edit (new `_updated` and `_etag`)."""
        task = self.tasks[task_id]
        task.doc.update(fields)
        self._touch(task)

    def delete_task(self, task_id: str) -> None:
        del self.tasks[task_id]

    def cancel_job(self, job_id: str) -> None:
        """What the Server does on a user's cancel: tasks not yet given to a Manager are
        canceled; the ones a Manager holds become `cancel-requested`."""
        job = self.jobs[job_id]
        job.status = "cancel-requested"
        for task_id in job.task_ids:
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.doc["status"] == "queued":
                task.doc["status"] = "canceled"
                self._touch(task)
            elif task.doc["status"] in ("claimed-by-manager", "active", "soft-failed"):
                task.doc["status"] = "cancel-requested"
                self._touch(task)
        self._update_job(job)

    def _update_job(self, job: ServerJob) -> None:
        found = [self.tasks[t].doc["status"] for t in job.task_ids if t in self.tasks]
        if job.status == "cancel-requested":
            if "cancel-requested" not in found:
                job.status = "canceled"
        elif found and all(s == "completed" for s in found):
            job.status = "completed"
        elif any(s in ("active", "completed") for s in found) and job.status == "queued":
            job.status = "active"

    def task_status(self, task_id: str) -> str:
        return self.tasks[task_id].doc["status"]

    def logs_of(self, task_id: str) -> list[str]:
        """All log text received for a task, in `received_on_manager` order."""
        entries = sorted((e for e in self.task_logs.values() if e["task"] == task_id),
                         key=lambda e: (e["received_on_manager"], e["_id"]))
        return [e["log"] for e in entries]

    # -- request plumbing ------------------------------------------------------------------------
    def _json(self, request, code: int, doc) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(doc).encode("utf-8") + b"\n"

    def _error(self, request, code: int, message: str) -> bytes:
        return self._json(request, code, {"_status": "ERR",
                                          "_error": {"code": code, "message": message}})

    def _gate(self, request, route: str, manager_id: str | None, **details):
        """Common checks; returns None to go on, or the response (bytes or Deferred)."""
        self.requests.append((route, details))
        request.notifyFinish().addBoth(lambda _: self._check_waiters())
        if self.down_status is not None:
            return self._error(request, self.down_status, "simulated outage")
        if route in self.hang or details.get("task_id") in self.hang:
            d = defer.Deferred()
            self._hanging.append(d)
            return d
        token = self._token(request)
        if token is None or token not in self.managers.values():
            request.setHeader(b"WWW-Authenticate", b'Basic realm="Flamenco Server"')
            return self._error(request, 401, "Please provide proper credentials")
        if manager_id is not None:
            if manager_id not in self.managers:
                return self._error(request, 404, "Manager not found")
            if self.managers[manager_id] != token:
                return self._error(request, 403, "Not your Manager")
        return None

    @staticmethod
    def _token(request) -> str | None:
        header = _header(request, "authorization") or ""
        if not header.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.split(":", 1)[0]

    def _manager_of_token(self, request) -> str:
        token = self._token(request)
        return next(mid for mid, tok in self.managers.items() if tok == token)

    def _body(self, request):
        """The decoded JSON body, or raises _BadBody(code, message)."""
        raw = request.content.read()
        if (_header(request, "content-encoding") or "").lower() == "gzip":
            if not self.accept_gzip:
                raise _BadBody(415, "gzip request bodies are not supported")
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError):
                raise _BadBody(400, "body is not valid gzip") from None
        content_type = (_header(request, "content-type") or "").split(";")[0].strip()
        if content_type != "application/json":
            raise _BadBody(400, "expected application/json")
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _BadBody(400, f"invalid JSON: {error}") from None

    # -- §6.1 / §6.2 notifications ---------------------------------------------------------------
    @app.route("/api/flamenco/managers/<manager_id>/startup", methods=["POST"])
    def startup(self, request, manager_id):
        return self._notification(request, manager_id, "startup")

    @app.route("/api/flamenco/managers/<manager_id>/update", methods=["POST"])
    def update(self, request, manager_id):
        return self._notification(request, manager_id, "update")

    def _notification(self, request, manager_id, kind):
        gated = self._gate(request, kind, manager_id)
        if gated is not None:
            return gated
        try:
            body = self._body(request)
        except _BadBody as bad:
            return self._error(request, bad.code, bad.message)
        if not isinstance(body, dict):
            return self._error(request, 400, "expected a JSON object")
        required = ["manager_url", "variables", "nr_of_workers"]
        if self.generation == "2021" and (body.get("_meta") or {}).get("version", 1) == 1:
            required.append("path_replacement")
        for key in required:
            if key not in body:
                return self._error(request, 400, f"Missing key {key!r}")
        self.notifications.append((kind, body))
        request.setResponseCode(204)
        return b""

    # -- §6.3 depsgraph --------------------------------------------------------------------------
    @app.route("/api/flamenco/managers/<manager_id>/depsgraph", methods=["GET"])
    def depsgraph(self, request, manager_id):
        since_header = _header(request, "x-flamenco-if-updated-since")
        hint = [t for t in (request.args.get(b"task_types", [b""])[0].decode()).split(",") if t]
        gated = self._gate(request, "depsgraph", manager_id, since=since_header, hint=hint)
        if gated is not None:
            return gated
        if not self.honour_type_hint:
            hint = []
        since = None
        if since_header:
            try:
                since = datetime.fromisoformat(since_header)
            except ValueError:
                return self._error(request, 400, "bad X-Flamenco-If-Updated-Since")
            if since.tzinfo is None:
                since = since.replace(tzinfo=timezone.utc)
        runnable_jobs = {job.id for job in self.jobs.values()
                         if job.manager == manager_id
                         and job.status in RUNNABLE_JOB[self.generation]}
        if not runnable_jobs and (since is None or self.generation == "2021"):
            request.setResponseCode(204)
            return b""
        selected = []
        for task in self.tasks.values():
            doc = task.doc
            if doc["manager"] != manager_id:
                continue
            if since is None:
                if doc["job"] in runnable_jobs and doc["status"] in CLEAN_SLATE_TASK[self.generation]:
                    selected.append(task)
            elif task.updated > since and doc["status"] in SINCE_TASK[self.generation]:
                if self.generation == "2017" or doc["job"] in runnable_jobs:
                    selected.append(task)
        selected.sort(key=lambda t: (t.updated, t.doc["_id"]))
        if hint:
            selected.sort(key=lambda t: (t.doc.get("task_type") or t.doc["job_type"]) not in hint)
        if self.max_tasks_per_download:
            selected = selected[:self.max_tasks_per_download]
        if not selected:
            if since is not None:
                request.setResponseCode(304)
                return b""
            return self._json(request, 200, {"depsgraph": []})
        for task in selected:
            if task.doc["status"] == "queued":
                task.doc["status"] = "claimed-by-manager"  # _updated and _etag unchanged
        newest = max(task.updated for task in selected)
        request.setHeader(b"X-Flamenco-Last-Updated", newest.isoformat().encode())
        request.setHeader(b"X-Flamenco-Last-Updated-Format", b"ISO-8601")
        if hint:
            request.setHeader(b"X-Flamenco-Task-Types", ",".join(hint).encode())
        return self._json(request, 200, {"depsgraph": [t.public() for t in selected]})

    # -- §6.4 refetch ----------------------------------------------------------------------------
    @app.route("/api/flamenco/tasks/<task_id>", methods=["GET"])
    def get_task(self, request, task_id):
        gated = self._gate(request, "refetch", None, task_id=task_id)
        if gated is not None:
            return gated
        task = self.tasks.get(task_id)
        if task is None:
            return self._error(request, 404, "Not found")
        if task.doc["manager"] != self._manager_of_token(request):
            return self._error(request, 403, "Not your task")
        etag = (_header(request, "if-none-match") or "").strip('"')
        if etag and etag == task.etag:
            request.setResponseCode(304)
            return b""
        request.setHeader(b"ETag", f'"{task.etag}"'.encode())
        return self._json(request, 200, task.public())

    # -- §6.5 / §6.6 update push -----------------------------------------------------------------
    @app.route("/api/flamenco/managers/<manager_id>/task-update-batch", methods=["POST"])
    def task_update_batch(self, request, manager_id):
        compressed = (_header(request, "content-encoding") or "").lower() == "gzip"
        gated = self._gate(request, "push", manager_id)
        if gated is not None:
            return gated
        request.content.seek(0, 2)
        size = request.content.tell()
        request.content.seek(0)
        try:
            batch = self._body(request)
        except _BadBody as bad:
            return self._error(request, bad.code, bad.message)
        if batch is None:
            batch = []
        if not isinstance(batch, list) or not all(isinstance(u, dict) for u in batch):
            return self._error(request, 400, "expected a JSON array of task updates")
        for update in batch:
            if not (is_object_id(update.get("_id")) and is_object_id(update.get("task_id"))):
                return self._error(request, 400, f"invalid ObjectId in update {update.get('_id')!r}")
        self.pushed_batches.append({"count": len(batch), "gzip": compressed, "bytes": size})
        handled, modified = [], 0
        for update in batch:
            outcome = self._apply_update(manager_id, update)
            if outcome is None:
                continue
            handled.append(update["_id"])
            modified += outcome
        answer = {"modified_count": modified, "handled_update_ids": handled}
        cancel = sorted(t.doc["_id"] for t in self.tasks.values()
                        if t.doc["manager"] == manager_id
                        and t.doc["status"] == "cancel-requested")
        if cancel:
            answer["cancel_task_ids"] = cancel
        if self.generation == "2021" and self.log_requests:
            answer["upload_task_file_queue"] = [
                {"job": job, "task": task} for task, job in sorted(self.log_requests.items())]
        return self._json(request, 200, answer)

    @app.route("/api/flamenco/managers/<manager_id>/attach-task-log/<task_id>",
               methods=["POST"])
    def attach_task_log(self, request, manager_id, task_id):
        """§6.7: one multipart part `logfile` with a `.gz` file name."""
        gated = self._gate(request, "attach-task-log", manager_id, task_id=task_id)
        if gated is not None:
            return gated
        content_type = _header(request, "content-type") or ""
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + request.content.read())
        parts = [part for part in message.iter_parts()
                 if part.get_param("name", header="content-disposition") == "logfile"]
        if not parts or not (parts[0].get_filename() or "").endswith(".gz"):
            return self._error(request, 400, "expected a part 'logfile' with a .gz file")
        task = self.tasks.get(task_id)
        self.log_requests.pop(task_id, None)
        if task is None or task.doc["manager"] != manager_id:
            return self._error(request, 404, "task not found")
        replaced = task_id in self.attached_logs
        self.attached_logs[task_id] = parts[0].get_payload(decode=True)
        request.setHeader(b"Location", f"/api/flamenco/tasks/{task_id}/log".encode())
        return self._json(request, 200 if replaced else 201, {"_message": "ok"})

    def _apply_update(self, manager_id: str, update: dict) -> int | None:
        """§6.6 for one update: None = not acknowledged, else the number of tasks modified."""
        task = self.tasks.get(update["task_id"])
        if task is None:
            return 0 if self.generation == "2021" else None
        if task.doc["manager"] != manager_id:
            return None
        received = update.get("received_on_manager")
        try:
            received_at = datetime.fromisoformat(received.replace("Z", "+00:00")) \
                if received else None
        except (AttributeError, ValueError):
            received_at = None
        if update.get("log"):
            if received_at is None and self.generation == "2017":
                return None
            self.task_logs[update["_id"]] = {
                "_id": update["_id"], "task": task.doc["_id"],
                "received_on_manager": received_at or datetime.now(timezone.utc),
                "log": update["log"],
            }
        doc = task.doc
        for key in ("task_progress_percentage", "current_command_index",
                    "command_progress_percentage"):
            doc[key] = update.get(key, 0)
        new_status = update.get("task_status") or ""
        changed = False
        if new_status and new_status != doc["status"] and new_status in ALLOWED_STATUS:
            if doc["status"] != "cancel-requested" or new_status in AFTER_CANCEL:
                doc["status"] = new_status
                changed = True
                self.status_history.append((doc["_id"], new_status, received_at))
        if update.get("activity"):
            doc["activity"] = update["activity"]
        if update.get("worker"):
            doc["worker"] = update["worker"]
        if self.generation == "2021":
            if update.get("metrics", {}).get("timing"):
                doc.setdefault("metrics", {})["timing"] = update["metrics"]["timing"]
            if update.get("failed_by_workers"):
                doc["failed_by_workers"] = update["failed_by_workers"]
            tail = update.get("log_tail") or "\n".join(
                (update.get("log") or "").splitlines()[-10:])
            if tail:
                task.log = tail
            self._touch(task, max(received_at, self._stamp()) if received_at else None)
        if changed and doc["job"] in self.jobs:
            self._update_job(self.jobs[doc["job"]])
        return 1

    # -- admin API for the demo (not part of the real Server) ------------------------------------
    @app.route("/sim/jobs", methods=["POST"])
    def sim_create_job(self, request):
        try:
            body = json.loads(request.content.read() or b"{}")
        except json.JSONDecodeError:
            return self._error(request, 400, "invalid JSON")
        job_id, ids = self.create_job(body.get("tasks") or demo_job_tasks(),
                                      job_type=body.get("job_type", "sleep"),
                                      priority=body.get("priority", 50))
        return self._json(request, 201, {"job": job_id, "tasks": ids})

    @app.route("/sim/jobs/<job_id>/cancel", methods=["POST"])
    def sim_cancel_job(self, request, job_id):
        if job_id not in self.jobs:
            return self._error(request, 404, "no such job")
        self.cancel_job(job_id)
        return self._json(request, 200, {"job": job_id, "status": self.jobs[job_id].status})

    @app.route("/sim/state", methods=["GET"])
    def sim_state(self, request):
        return self._json(request, 200, {
            "jobs": {j.id: {"status": j.status, "tasks": {
                t: {"name": self.tasks[t].doc["name"], "status": self.tasks[t].doc["status"],
                    "activity": self.tasks[t].doc.get("activity", ""),
                    "worker": self.tasks[t].doc.get("worker", "")}
                for t in j.task_ids if t in self.tasks}} for j in self.jobs.values()},
            "log_entries": len(self.task_logs),
            "notifications": [kind for kind, _ in self.notifications],
        })

    @app.route("/sim/down", methods=["POST"])
    def sim_down(self, request):
        self.down_status = int(request.args.get(b"status", [b"503"])[0])
        return self._json(request, 200, {"down_status": self.down_status})

    @app.route("/sim/up", methods=["POST"])
    def sim_up(self, request):
        self.down_status = None
        return self._json(request, 200, {"down_status": None})


def _header(request, name: str) -> str:
    value = request.getHeader(name.encode("ascii"))
    return value.decode("latin-1") if value is not None else ""


class _BadBody(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def demo_job_tasks(seconds: int = 2) -> list[dict]:
    """A small diamond: prepare -> (render-a, render-b) -> merge."""

    def sleep(name, task_type, parents):
        return {"name": name, "task_type": task_type, "parents": parents,
                "commands": [{"name": "echo", "settings": {"message": f"{name} starting"}},
                             {"name": "sleep", "settings": {"time_in_seconds": seconds}}]}

    return [sleep("prepare", "sleep", []), sleep("render-a", "sleep", [0]),
            sleep("render-b", "sleep", [0]), sleep("merge", "sleep", [1, 2])]


def main(argv=None) -> None:
    import argparse

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    parser = argparse.ArgumentParser(description="Run a simulated Flamenco Server.")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--manager-id", default=DEFAULT_MANAGER_ID)
    parser.add_argument("--manager-secret", default=DEFAULT_MANAGER_SECRET)
    parser.add_argument("--generation", choices=("2017", "2021"), default="2021")
    parser.add_argument("--demo-job", action="store_true",
                        help="create a four-task diamond job at start")
    parser.add_argument("--no-gzip", action="store_true",
                        help="refuse gzip request bodies with 415")
    args = parser.parse_args(argv)

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    server = SimulatedServer(manager_id=args.manager_id, manager_secret=args.manager_secret,
                             generation=args.generation, accept_gzip=not args.no_gzip)
    if args.demo_job:
        job_id, _ = server.create_job(demo_job_tasks())
        SimulatedServer.log.info("created demo job {job}", job=job_id)
    server.listen(reactor, args.port, args.interface)
    SimulatedServer.log.info(
        "simulated Flamenco Server ({generation}) on {url}\n"
        "  flamenco: {url}\n  manager_id: {manager_id}\n  manager_secret: {secret}\n"
        "  create a job:  curl -X POST {url}sim/jobs\n  watch:  curl {url}sim/state",
        generation=args.generation, url=server.url, manager_id=args.manager_id,
        secret=args.manager_secret)
    reactor.run()


if __name__ == "__main__":
    main()
