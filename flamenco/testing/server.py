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
`connection_mode` makes it treat connections like other real servers and proxies do
(`flamenco.testing.connections`); its state and rules are in `server_state`.
"""

from __future__ import annotations

import base64
import gzip
import json
import sys
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP

from klein import Klein
from twisted.internet import defer
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from flamenco.ids import is_object_id
from flamenco.testing.connections import KEEP_ALIVE, MODES, ServerConnections, build_site
from flamenco.testing.server_state import (  # noqa: F401 - DEFAULT_* re-exported for the tests
    CLEAN_SLATE_TASK, DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET, RUNNABLE_JOB, SINCE_TASK,
    ServerState, demo_job_tasks)


class SimulatedServer(ServerState):
    """The Server state (`ServerState`) plus its HTTP API (`self.app`)."""

    app = Klein()
    log = Logger()

    def __init__(self, *, manager_id: str = DEFAULT_MANAGER_ID,
                 manager_secret: str = DEFAULT_MANAGER_SECRET, generation: str = "2021",
                 clock=None, accept_gzip: bool = True, max_tasks_per_download: int = 0,
                 honour_type_hint: bool = True, connection_mode: str = KEEP_ALIVE,
                 idle_timeout: float = 0.5):
        super().__init__(manager_id=manager_id, manager_secret=manager_secret,
                         generation=generation, clock=clock)
        self.notifications: list[tuple[str, dict]] = []  # ("startup"|"update", body)
        self.accept_gzip = accept_gzip
        self.max_tasks_per_download = max_tasks_per_download
        #: False: behave like the real Server, which ignores `?task_types=`.
        self.honour_type_hint = honour_type_hint
        #: One of `connections.MODES`; `idle_timeout` is for the `idle-timeout` mode.
        self.connection_mode = connection_mode
        self.idle_timeout = idle_timeout
        # -- failure injection and observation --
        self.down_status: int | None = None  # answer every API request with this status
        self.hang: set[str] = set()  # route names ("refetch", "push", ...) or task IDs
        self._hanging: list[defer.Deferred] = []
        self.requests: list[tuple[str, dict]] = []  # (route, details)
        self.pushed_batches: list[dict] = []  # {"count", "gzip", "bytes"}
        #: [2021] task ID -> job ID of logs to ask the Manager for (`upload_task_file_queue`)
        self.log_requests: dict[str, str] = {}
        self.attached_logs: dict[str, bytes] = {}  # task ID -> the gzipped upload
        self._waiters: list[list] = []  # [condition, Deferred, timer]
        self._port: IListeningPort | None = None
        self._factory: ServerConnections | None = None

    # -- serving ---------------------------------------------------------------------------------
    def listen(self, reactor=None, port: int = 0, interface: str = "127.0.0.1"):
        if reactor is None:
            from twisted.internet import reactor
        site = build_site(self.app.resource(), self.connection_mode, self.idle_timeout)
        self._factory = ServerConnections(site, self.connection_mode, self.refusal)
        self._port = reactor.listenTCP(port, self._factory, interface=interface)
        return self._port

    def connection_counts(self) -> dict[str, int]:
        """Connections accepted, and closed for being idle, since `listen`."""
        _, factory = self._listening()
        return {"opened": factory.opened, "idle_timeouts": factory.site.idle_timeouts}

    @property
    def url(self) -> str:
        port, _ = self._listening()
        address = port.getHost()
        assert isinstance(address, (IPv4Address, IPv6Address))  # a listenTCP port
        return f"http://{address.host}:{address.port}/"

    def _listening(self) -> tuple[IListeningPort, ServerConnections]:
        if self._port is None or self._factory is None:
            raise RuntimeError("the simulated Server is not listening: call listen() first")
        return self._port, self._factory

    async def stop(self) -> None:
        """Stop listening and close every connection (which also ends hanging requests)."""
        if self._port is not None:
            port, factory = self._listening()
            await defer.maybeDeferred(port.stopListening)
            await factory.close_all()
            self._port = None
        self._hanging.clear()

    def wait_for(self, condition, timeout: float = 30.0, reactor=None) -> defer.Deferred:
        """Fires once `condition(server)` is true, checked after every API request the Server
        handles (event-driven: no polling); fails with TimeoutError after `timeout` seconds."""
        if condition(self):
            return defer.succeed(None)
        if reactor is None:
            from twisted.internet import reactor
        d: defer.Deferred[None] = defer.Deferred()
        entry: list = [condition, d, None]
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

    # -- request plumbing ------------------------------------------------------------------------
    def _json(self, request, code: int, doc) -> bytes:
        body = json.dumps(doc).encode("utf-8") + b"\n"
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Content-Length", b"%d" % len(body))
        return body

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
            d: defer.Deferred[None] = defer.Deferred()
            self._hanging.append(d)
            return d
        token = _token(_header(request, "authorization"))
        if token not in self.managers.values():
            request.setHeader(b"WWW-Authenticate", b'Basic realm="Flamenco Server"')
            return self._error(request, 401, "Please provide proper credentials")
        if manager_id is not None:
            if manager_id not in self.managers:
                return self._error(request, 404, "Manager not found")
            if self.managers[manager_id] != token:
                return self._error(request, 403, "Not your Manager")
        return None

    def refusal(self, path: str, headers: dict) -> tuple[int, str] | None:
        """For the `close-before-body` mode: the answer `_gate` and `_body` would give a request
        to the API from its headers alone (lower-case names), if they refuse it."""
        if not path.startswith("/api/") or self.down_status is not None:
            return None
        if _token(headers.get("authorization", "")) not in self.managers.values():
            refused = (401, "Please provide proper credentials")
        elif headers.get("content-encoding", "").lower() == "gzip" and not self.accept_gzip:
            refused = (415, "gzip request bodies are not supported")
        else:
            return None
        self.requests.append(("refused before the body", {"code": refused[0]}))
        return refused

    def _manager_of_token(self, request) -> str:
        token = _token(_header(request, "authorization"))
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
                clean_slate = CLEAN_SLATE_TASK[self.generation]
                if doc["job"] in runnable_jobs and doc["status"] in clean_slate:
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
                return self._error(request, 400,
                                   f"invalid ObjectId in update {update.get('_id')!r}")
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


def _token(authorization: str) -> str | None:
    """The Manager's token: the Basic-auth username."""
    if not authorization.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0]


def _header(request, name: str) -> str:
    value = request.getHeader(name.encode("ascii"))
    return value.decode("latin-1") if value is not None else ""


class _BadBody(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


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
    parser.add_argument("--connection-mode", choices=MODES, default=KEEP_ALIVE,
                        help="how connections are treated, like real servers and proxies do "
                             "(see flamenco/testing/connections.py)")
    parser.add_argument("--idle-timeout", type=float, default=0.5, metavar="SECONDS",
                        help="idle keep-alive timeout of the idle-timeout mode")
    args = parser.parse_args(argv)

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    server = SimulatedServer(manager_id=args.manager_id, manager_secret=args.manager_secret,
                             generation=args.generation, accept_gzip=not args.no_gzip,
                             connection_mode=args.connection_mode,
                             idle_timeout=args.idle_timeout)
    if args.demo_job:
        job_id, _ = server.create_job(demo_job_tasks())
        SimulatedServer.log.info("created demo job {job}", job=job_id)
    server.listen(reactor, args.port, args.interface)
    SimulatedServer.log.info(
        "simulated Flamenco Server ({generation}, {mode}) on {url}\n"
        "  flamenco: {url}\n  manager_id: {manager_id}\n  manager_secret: {secret}\n"
        "  create a job:  curl -X POST {url}sim/jobs\n  watch:  curl {url}sim/state",
        generation=args.generation, mode=args.connection_mode, url=server.url,
        manager_id=args.manager_id,
        secret=args.manager_secret)
    reactor.run()


if __name__ == "__main__":
    main()
