"""A simulated Flamenco Worker speaking the Manager's worker protocol (PROTOCOL §3) over HTTP.

It behaves like the real Python workers of both generations:

- ``generation="2.0"``: registers with ``supported_job_types`` and python-requests' default
  User-Agent, never signs on, knows nothing of status requests; when told to stop a task it
  reports ``canceled``.
- ``generation="2.x"``: registers with ``supported_task_types``, sends
  ``User-Agent: Flamenco-Worker/2.5``, signs on at every later start, applies ``423`` /
  ``status_requested`` (acknowledging with ``/ack-status-change``, polling ``/status-change``
  while asleep), and when told to stop a task sends only a log line and returns the task.

Every request has the workers' 3-second timeout. Tests drive it step by step (``register()``,
``ask_for_task()``, ``send_update()``, ``may_i_run()``, ...) or let it ``run_task()`` /
``loop()``. The module also runs a few workers for demos::

    python -m flamenco.testing.worker --manager http://localhost:8083/ --count 3 --generation 2.x
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from datetime import datetime, timezone
from typing import Awaitable, Callable
from urllib.parse import urljoin

from collections import Counter

import attrs
from treq.client import HTTPClient
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, _HTTP11ClientFactory

from flamenco.testing.worker_updates import OfflineUpdateQueue

log = Logger()

GENERATION_2_0 = "2.0"
GENERATION_2_X = "2.x"
GENERATIONS = (GENERATION_2_0, GENERATION_2_X)

USER_AGENTS = {
    GENERATION_2_0: "python-requests/2.18.4",
    GENERATION_2_X: "Flamenco-Worker/2.5",
}

#: What the shipped workers can run (their default `job_types` / `task_types`).
DEFAULT_TYPES = {
    GENERATION_2_0: ("sleep", "blender-render", "file-management"),
    GENERATION_2_X: ("sleep", "blender-render", "file-management", "exr-merge", "debug",
                     "video-encoding"),
}

#: Both workers give up on a request after this many seconds.
REQUEST_TIMEOUT = 3.0

_SECRET_ALPHABET = string.ascii_letters + string.digits


class ProtocolError(Exception):
    """The Manager answered with a status the caller did not expect."""

    def __init__(self, method: str, path: str, code: int, body: bytes):
        super().__init__(f"{method} {path} answered {code}: {body[:200]!r}")
        self.code = code
        self.body = body


class _QuietClientFactory(_HTTP11ClientFactory):
    """No "Starting factory" log line for every connection."""

    noisy = False


class RequestTimeout(defer.TimeoutError):
    """No complete answer within the request timeout (the workers' 3 s)."""


@attrs.frozen
class Answer:
    """One HTTP response: status code and (already read) body."""

    code: int
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))


@attrs.frozen
class StatusRequest:
    """`/task` answered 423: the Manager wants this worker in `status` first (2.x)."""

    status: str


@attrs.frozen
class TaskOutcome:
    """What `run_task` ended with: `completed`, `failed` (`fails` said so), `canceled` (2.0),
    `returned` (2.x, after may-i-run said no) or `stopped` (the worker itself is shutting
    down)."""

    task_id: str
    result: str
    reason: str = ""
    status_requested: str = ""


def log_line(text: str, now: datetime | None = None) -> str:
    """A worker log line: `<isoformat UTC with +00:00>: <text>` (§0.3)."""
    now = now or datetime.now(timezone.utc)
    return f"{now.isoformat()}: {text}"


class SimulatedWorker:
    def __init__(self, manager_url: str, *, generation: str = GENERATION_2_X,
                 nickname: str = "sim-worker", platform: str = "linux",
                 types: tuple[str, ...] | None = None, reactor=None, clock=None,
                 pool: HTTPConnectionPool | None = None, timeout: float = REQUEST_TIMEOUT,
                 work_seconds: float = 0.0, may_i_run_interval: float = 5.0,
                 work: Callable[..., Awaitable[None]] | None = None,
                 worker_id: str = "", secret: str = "",
                 fails: Callable[[dict], bool] | None = None, offline_queue: bool = False,
                 update_retry_seconds: float = 5.0):
        if generation not in GENERATIONS:
            raise ValueError(f"generation must be one of {GENERATIONS}, not {generation!r}")
        if reactor is None:
            from twisted.internet import reactor
        self.manager_url = manager_url if manager_url.endswith("/") else manager_url + "/"
        self.generation = generation
        self.nickname = nickname
        self.platform = platform
        self.types = tuple(types if types is not None else DEFAULT_TYPES[generation])
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self._own_pool = pool is None
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool._factory = _QuietClientFactory
        self.pool = pool
        self.http = HTTPClient(Agent(reactor, pool=self.pool))
        self.timeout = timeout
        self.work_seconds = work_seconds
        self.may_i_run_interval = may_i_run_interval
        self.work = work
        #: Tasks for which this says True fail at their first command (a broken machine).
        self.fails = fails
        self.worker_id = worker_id
        self.secret = secret
        #: The worker's own status (2.x): "", awake, asleep, shutdown ...
        self.status = ""
        self.current_task: str | None = None
        #: How often run_task started on each task ID (a re-run shows as 2).
        self.runs: Counter[str] = Counter()
        #: With `offline_queue`, task updates go through the real Workers' own queue: sent in
        #: order in the background, retried while the Manager is unreachable.
        self.updates = OfflineUpdateQueue(self, update_retry_seconds) if offline_queue else None
        self._stopping = False

    @property
    def is_2x(self) -> bool:
        return self.generation == GENERATION_2_X

    @property
    def identifier(self) -> str:
        return f"{self.worker_id} ({self.nickname})"

    async def close(self) -> None:
        """Drop the kept-alive connections (of its own pool)."""
        if self._own_pool:
            await self.pool.closeCachedConnections()

    # -- HTTP ------------------------------------------------------------------------------------
    def _headers(self, auth: bool, json_body: bool) -> dict:
        headers = {b"User-Agent": [USER_AGENTS[self.generation].encode()]}
        if auth:
            token = base64.b64encode(f"{self.worker_id}:{self.secret}".encode()).decode()
            headers[b"Authorization"] = [f"Basic {token}".encode()]
        if json_body:
            headers[b"Content-Type"] = [b"application/json"]
        return headers

    async def request(self, method: str, path: str, doc=None, *, auth: bool = True,
                      data: dict | None = None) -> Answer:
        """One request, body read, within the timeout (the whole exchange, like `requests`)."""
        body = None
        if doc is not None:
            body = json.dumps(doc).encode("utf-8")
        headers = self._headers(auth, doc is not None)

        async def exchange() -> Answer:
            response = await self.http.request(
                method, urljoin(self.manager_url, path.lstrip("/")), headers=headers,
                data=body if body is not None else data,
            )
            return Answer(response.code, await response.content())

        exchanging = defer.ensureDeferred(exchange())
        expired = []

        def expire():
            expired.append(True)
            exchanging.cancel()

        timer = self.clock.callLater(self.timeout, expire)
        try:
            return await exchanging
        except Exception as error:
            if expired:
                raise RequestTimeout(f"{method} {path}: no answer within {self.timeout} s") \
                    from error
            raise
        finally:
            if timer.active():
                timer.cancel()

    async def _expect(self, method: str, path: str, codes: tuple[int, ...], doc=None,
                      auth: bool = True) -> Answer:
        answer = await self.request(method, path, doc, auth=auth)
        if answer.code not in codes:
            raise ProtocolError(method, path, answer.code, answer.body)
        return answer

    # -- the protocol, one endpoint at a time ----------------------------------------------------
    async def register(self) -> dict:
        """`POST /register-worker` with a fresh 64-character secret; remembers the new ID."""
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(64))
        key = "supported_task_types" if self.is_2x else "supported_job_types"
        answer = await self._expect("POST", "/register-worker", (200,), {
            "secret": secret, "platform": self.platform, key: list(self.types),
            "nickname": self.nickname,
        }, auth=False)
        doc = answer.json()
        self.worker_id, self.secret = doc["_id"], secret
        log.info("worker {nickname} registered as {id}", nickname=self.nickname, id=self.worker_id)
        return doc

    async def sign_on(self) -> Answer:
        """`POST /sign-on` (2.x, at every start after the first); answers as received."""
        answer = await self.request("POST", "/sign-on", {
            "supported_task_types": list(self.types), "nickname": self.nickname,
        })
        if answer.code == 204:
            self.status = "starting"
        return answer

    async def ask_for_task(self) -> dict | StatusRequest | None:
        """`POST /task`: the task document, None for "nothing now" (204), or a StatusRequest
        (423, 2.x). Any other answer raises ProtocolError."""
        answer = await self._expect("POST", "/task", (200, 204, 423))
        if answer.code == 204:
            return None
        if answer.code == 423:
            return StatusRequest(answer.json()["status_requested"])
        return answer.json()

    async def send_update(self, task_id: str, **fields) -> int:
        """`POST /tasks/{id}/update` with exactly `fields`; returns the HTTP status."""
        answer = await self.request("POST", f"/tasks/{task_id}/update", fields)
        return answer.code

    async def may_i_run(self, task_id: str) -> dict:
        """`GET /may-i-run/{id}`: the MayKeepRunningResponse (whatever the HTTP status, the real
        workers parse the body as one)."""
        answer = await self.request("GET", f"/may-i-run/{task_id}")
        return answer.json()

    async def return_task(self, task_id: str) -> int:
        """`POST /tasks/{id}/return` (2.x)."""
        return (await self.request("POST", f"/tasks/{task_id}/return")).code

    async def status_change(self) -> str | None:
        """`GET /status-change` (2.x): the requested status, or None (204)."""
        answer = await self._expect("GET", "/status-change", (200, 204))
        return answer.json()["status_requested"] if answer.code == 200 else None

    async def ack_status_change(self, status: str) -> int:
        """`POST /ack-status-change/{status}` (2.x); the worker is now in `status`."""
        self.status = status
        return (await self.request("POST", f"/ack-status-change/{status}")).code

    async def output_produced(self, *paths: str) -> int:
        return (await self.request("POST", "/output-produced", {"paths": list(paths)})).code

    async def sign_off(self) -> int:
        """`POST /sign-off`."""
        return (await self.request("POST", "/sign-off")).code

    # -- running a task --------------------------------------------------------------------------
    async def _report(self, task_id: str, **fields) -> None:
        """A task update while running: queued (offline queue) or sent and awaited."""
        if self.updates is not None:
            self.updates.put(task_id, fields)
        else:
            await self.send_update(task_id, **fields)

    def _update(self, status: str, **fields) -> dict:
        # The 2.0 worker always sends its current task status; 2.x only when it is set.
        if status or not self.is_2x:
            fields["task_status"] = status
        return fields

    async def run_task(self, doc: dict) -> TaskOutcome:
        """Execute `doc`'s commands the way the real workers report them (§3.15)."""
        task_id = doc["_id"]
        self.current_task = task_id
        self.runs[task_id] += 1
        commands = doc.get("commands") or []
        try:
            await self._report(task_id, **self._update(
                "active", activity="", current_command_idx=0, task_progress_percentage=0,
                command_progress_percentage=0))
            for index, command in enumerate(commands):
                name = command.get("name", "")
                stop = await self._should_stop(task_id)
                if stop is not None:
                    return await self._stop(task_id, *stop)
                await self._report(task_id, **self._update(
                    "active", activity=f"starting {name}", current_command_idx=index,
                    task_progress_percentage=0, command_progress_percentage=0,
                    log=log_line(f"{name}: Starting")))
                if self.fails is not None and self.fails(doc):
                    await self._report(task_id, **self._update(
                        "failed", activity=f"{name} failed: simulated error",
                        current_command_idx=index, task_progress_percentage=0,
                        command_progress_percentage=0,
                        log=log_line(f"{name}: Error: simulated error")))
                    return TaskOutcome(task_id, "failed")
                stop = await self._execute(task_id, index, command)
                if stop is not None:
                    return await self._stop(task_id, *stop)
                await self._report(task_id, **self._update(
                    "active", activity=f"finished {name}", current_command_idx=index,
                    task_progress_percentage=0, command_progress_percentage=100,
                    log=log_line(f"{name}: Finished")))
            await self._report(task_id, **self._update(
                "completed", activity="Task completed",
                current_command_idx=max(len(commands) - 1, 0), task_progress_percentage=0,
                command_progress_percentage=100))
            return TaskOutcome(task_id, "completed")
        finally:
            self.current_task = None

    async def _should_stop(self, task_id: str) -> tuple[str, str] | None:
        """(reason, status_requested) when the Manager says stop, else None."""
        if self._stopping:
            return ("worker shutting down", "")
        try:
            answer = await self.may_i_run(task_id)
        except Exception as error:  # connection error: ignored until the next poll
            log.warn("may-i-run for {task} failed: {error}", task=task_id, error=error)
            return None
        if answer.get("may_keep_running", True):
            return None
        return (answer.get("reason", ""), answer.get("status_requested", "") if self.is_2x else "")

    async def _execute(self, task_id: str, index: int, command: dict) -> tuple[str, str] | None:
        """Run one command: the `work` hook, or wait `work_seconds` polling may-i-run."""
        if self.work is not None:
            await self.work(self, task_id, index, command)
            return ("worker shutting down", "") if self._stopping else None
        remaining = self.work_seconds
        until_poll = self.may_i_run_interval
        while remaining > 0:
            step = min(remaining, until_poll, 0.25)
            await task.deferLater(self.clock, step, lambda: None)
            remaining -= step
            until_poll -= step
            if self._stopping:
                return ("worker shutting down", "")
            if until_poll <= 0 and remaining > 0:
                until_poll = self.may_i_run_interval
                stop = await self._should_stop(task_id)
                if stop is not None:
                    return stop
        return None

    async def _stop(self, task_id: str, reason: str, status_requested: str) -> TaskOutcome:
        if reason == "worker shutting down":
            # Aborted without a status update; sign-off re-queues it (§3.15).
            return TaskOutcome(task_id, "stopped", reason)
        log.info("worker {nickname} stops task {task}: {reason}", nickname=self.nickname,
                 task=task_id, reason=reason)
        if not self.is_2x:
            await self._report(task_id, task_status="canceled", activity="Task was canceled",
                                   current_command_idx=0, task_progress_percentage=0,
                                   command_progress_percentage=0)
            return TaskOutcome(task_id, "canceled", reason)
        await self._report(task_id, log=log_line(
            f"Worker {self.identifier} stopped running this task, no longer allowed to run by"
            " Manager"))
        if self.updates is not None:
            await self.updates.flushed()  # as the 2.5 Worker does before returning a task
        await self.return_task(task_id)
        if status_requested:
            await self.apply_status(status_requested)
        return TaskOutcome(task_id, "returned", reason, status_requested)

    # -- status requests (2.x) -------------------------------------------------------------------
    async def apply_status(self, status: str) -> None:
        """What the 2.5 worker does with a requested status (§5.10.5), minus the waiting."""
        if status == "shutdown":
            self._stopping = True
            return
        if status not in ("awake", "error"):
            status = "asleep"
        await self.ack_status_change(status)

    # -- the main loop ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask `loop()` to finish: the running task is aborted, then the worker signs off."""
        self._stopping = True

    async def _pause(self, seconds: float) -> None:
        waited = 0.0
        while waited < seconds and not self._stopping:
            step = min(0.25, seconds - waited)
            await task.deferLater(self.clock, step, lambda: None)
            waited += step

    async def loop(self, *, max_tasks: int | None = None, after_task: float = 3.0,
                   after_nothing: float = 5.0, after_error: float = 10.0,
                   asleep_poll: float = 30.0, register_retry: float = 30.0) -> int:
        """Register (or sign on), then fetch and run tasks until `stop()` or `max_tasks` tasks;
        signs off at the end. Returns the number of tasks run. Delays are the real workers'."""
        while not self._stopping:
            try:
                if not self.worker_id:
                    await self.register()
                elif self.is_2x:
                    signed_on = await self.sign_on()
                    if signed_on.code == 401:
                        await self.register()
                        await self.sign_on()
                break
            except Exception as error:
                log.warn("worker {nickname} cannot register: {error}", nickname=self.nickname,
                         error=error)
                await self._pause(register_retry)
        done = 0
        while not self._stopping and (max_tasks is None or done < max_tasks):
            if self.status == "asleep":
                await self._pause(asleep_poll)
                requested = await self._safely(self.status_change())
                if requested:
                    await self.apply_status(requested)
                continue
            try:
                answer = await self.ask_for_task()
            except Exception as error:
                log.warn("worker {nickname}: /task failed: {error}", nickname=self.nickname,
                         error=error)
                await self._pause(after_error)
                continue
            if answer is None:
                await self._pause(after_nothing)
            elif isinstance(answer, StatusRequest):
                if self.is_2x:
                    await self.apply_status(answer.status)
                    if answer.status == "awake":
                        await self._pause(after_task)
                else:
                    await self._pause(after_error)
            else:
                outcome = await self.run_task(answer)
                done += 1
                log.info("worker {nickname}: task {task} {result}", nickname=self.nickname,
                         task=outcome.task_id, result=outcome.result)
                await self._pause(after_task)
        await self._safely(self.sign_off())
        return done

    async def _safely(self, awaitable):
        try:
            return await awaitable
        except Exception as error:
            log.warn("worker {nickname}: {error}", nickname=self.nickname, error=error)
            return None


if __name__ == "__main__":
    from flamenco.testing.worker_cli import main

    main()
