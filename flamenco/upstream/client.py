"""The HTTP adapter for the Flamenco Server API (PROTOCOL §6), on treq.

The only module of the upstream link that speaks HTTP. Every request carries HTTP Basic
authentication with username = `manager_secret` and an empty password (§6.0), and a deadline
that covers connecting, the headers and the body. Methods return plain Python values; services
decide what the status codes mean where the protocol leaves it to them.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import tempfile
import uuid
from typing import IO, Any, Iterator

import attrs
import ijson
from twisted.internet import defer
from twisted.internet.error import TimeoutError as ConnectTimeout
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (Agent, HTTPConnectionPool, RequestNotSent,
                                RequestTransmissionFailed, ResponseNeverReceived)

import treq
from treq.client import HTTPClient

from flamenco.upstream.gzip_choice import GzipChoice

JSON_TYPE = "application/json"
#: A depsgraph answer is spooled to a temporary file beyond this many bytes and decoded one
#: task at a time, so that a 100k-task download does not hold its body and its decoded tree
#: in memory at once (60 MB of JSON is about 200 MiB of Python objects).
DEPSGRAPH_SPOOL_BYTES = 1 << 20

#: Failures that mean the Server received nothing it answered: the request may be sent again.
NEVER_ANSWERED = (RequestNotSent, RequestTransmissionFailed, ResponseNeverReceived)


def server_error_hint(code: int | None) -> str:
    """Which setting to check when the Server refuses this Manager, for the log line."""
    if code in (401, 403):
        return " (check `manager_secret` and `manager_id`)"
    if code == 404:
        return " (check `manager_id` and the `flamenco` URL)"
    return ""


def _deferred(method):
    """Public coroutine methods return Deferreds (the Twisted convention of this project)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs) -> defer.Deferred:
        return defer.ensureDeferred(method(*args, **kwargs))

    return wrapper


class UpstreamError(Exception):
    """The Server could not be reached, was too slow, or answered with a failure status."""

    def __init__(self, message: str, code: int | None = None, body: bytes = b""):
        super().__init__(message)
        self.code = code
        self.body = body


class _Pool(HTTPConnectionPool):
    """A pool that notes whether it handed out an idle connection, one the Server may have
    closed meanwhile (a fresh one is still connecting, so its Deferred has not fired)."""

    retryAutomatically = False  # the client retries itself, for every method (see _request)
    handed_out_idle = False

    def getConnection(self, key, endpoint):
        connection = super().getConnection(key, endpoint)
        self.handed_out_idle = connection.called
        return connection


def _cancelled(error: Exception) -> bool:
    reasons = getattr(error, "reasons", None) or []
    return any(reason.check(defer.CancelledError) for reason in reasons)


@attrs.frozen
class Response:
    """Any response a Server gave us, decoded only as far as bytes."""

    code: int
    headers: dict[str, str]  # lower-case name -> first value
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@attrs.frozen
class Depsgraph:
    code: int  # 200, 204 or 304
    #: Raw task documents (validated by the caller), decoded as they are iterated; iterating
    #: fails with UpstreamError where the body turns out not to be JSON.
    tasks: Iterator[dict]
    last_updated: str  # X-Flamenco-Last-Updated, or ""
    honoured_types: tuple[str, ...]  # the task-type hint the Server says it applied, if any


def _depsgraph_tasks(spool: IO[bytes]) -> Iterator[dict]:
    """The items of `{"depsgraph": [...]}` one at a time; closes `spool` when done."""
    with spool:
        try:
            for item in ijson.items(spool, "depsgraph.item", use_float=True):
                yield item
        except ijson.JSONError as error:
            spool.seek(0)
            raise UpstreamError(f"depsgraph download: undecodable answer: {error}", 200,
                                spool.read(200)) from None


class UpstreamClient:
    """Talks to one Flamenco Server as one Manager."""

    log = Logger()

    def __init__(self, base_url: str, manager_id: str, manager_secret: str, *,
                 timeout: float = 30.0, reactor=None, clock=None,
                 gzip_bodies: bool | GzipChoice = True, persistent: bool = True):
        if reactor is None:
            from twisted.internet import reactor as default_reactor
            reactor = default_reactor
        self.reactor = reactor
        #: What deadlines are measured with (the reactor, or a `task.Clock` in tests).
        self.clock = clock if clock is not None else reactor
        self.base_url = base_url.rstrip("/")
        self.manager_id = manager_id
        self.timeout = timeout
        #: Whether push bodies are gzipped (a bool: learnt in memory only, not remembered).
        self.gzip_choice = gzip_bodies if isinstance(gzip_bodies, GzipChoice) else GzipChoice(
            None, self.clock, self.base_url, enabled=gzip_bodies)
        self._auth = b"Basic " + base64.b64encode(manager_secret.encode("utf-8") + b":")
        self._pool = _Pool(reactor, persistent=persistent)
        self._pool.maxPersistentPerHost = 8
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        #: For the one retry of a request that failed on an idle pooled connection.
        self._fresh = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor,
                                                                        persistent=False)))

    def close(self) -> defer.Deferred:
        """Close idle connections (on service stop and in tests)."""
        return self._pool.closeCachedConnections()

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _manager_url(self, what: str) -> str:
        return self._url(f"/api/flamenco/managers/{self.manager_id}/{what}")

    # -- the one place requests are made ---------------------------------------------------------
    def request(self, method: str, url: str, *, headers: dict | None = None,
                data: bytes | None = None, params: dict | None = None,
                timeout: float | None = None, into: IO[bytes] | None = None) -> defer.Deferred:
        """Fires with a `Response`, or fails with `UpstreamError` (network, deadline).

        The deadline covers connecting, the headers and the body (treq's `timeout=` alone
        covers the headers only). Cancelling the returned Deferred aborts the request.
        With `into`, the body is written there as it arrives (the Response's body is empty).
        """
        timeout = self.timeout if timeout is None else timeout
        all_headers = {"Authorization": [self._auth]}
        for name, value in (headers or {}).items():
            all_headers[name] = [value]
        inner = defer.ensureDeferred(
            self._request(method, url, all_headers, data, params, timeout, into)
        )
        deadline = self.clock.seconds() + timeout
        late, cancelled = [], []

        def cancel(_):
            cancelled.append(True)
            inner.cancel()

        outer: defer.Deferred = defer.Deferred(cancel)

        def too_late():
            late.append(True)
            inner.cancel()

        timer = self.clock.callLater(timeout, too_late)

        def finished(result):
            if timer.active():
                timer.cancel()
            if cancelled or outer.called:  # the caller cancelled: it gets a CancelledError
                return None
            if isinstance(result, Failure):
                # (treq's own timeout may fire first; it is the same deadline)
                if late or self.clock.seconds() >= deadline or result.check(
                        ConnectTimeout, defer.TimeoutError):
                    result = Failure(UpstreamError(f"{method} {url}: no answer in {timeout} s"))
                elif not result.check(UpstreamError):
                    detail = result.getErrorMessage() or result.type.__name__
                    result = Failure(UpstreamError(f"{method} {url}: {detail}"))
                outer.errback(result)
            else:
                outer.callback(result)
            return None

        inner.addBoth(finished)
        return outer

    async def _request(self, method, url, headers, data, params, timeout, into) -> Response:
        """One request; sent once more, on a new connection, if the idle pooled connection it
        went out on turns out closed by the Server before any byte of an answer arrived (an
        HTTP/1.0 Server, a proxy closing after errors, an idle keep-alive timeout).

        Sending twice is safe for every request of this client: GETs only read, notifications
        replace what the Server knows of this Manager, and a push the Server did receive and
        apply is applied again harmlessly: it de-duplicates task updates by their `_id` (their
        logs are stored replace-or-insert by update ID, PROTOCOL §6.6 step 4) and setting the
        same fields and status again changes nothing, so the updates are acknowledged again.
        """
        def send(http: HTTPClient) -> defer.Deferred:
            # treq buffers a whole body in memory unless asked not to (for `into`).
            return http.request(method, url, headers=headers, data=data, params=params,
                                allow_redirects=False, timeout=timeout, reactor=self.clock,
                                unbuffered=into is not None)

        self._pool.handed_out_idle = False
        sent = send(self._http)  # the pool hands out a connection synchronously
        idle = self._pool.handed_out_idle
        try:
            response = await sent
        except NEVER_ANSWERED as error:
            if not idle or _cancelled(error):
                raise
            self.log.debug("{method} {url}: the reused connection was closed by the Server "
                           "before it answered; sending again on a new connection",
                           method=method, url=url)
            response = await send(self._fresh)
        if into is None:
            body = await treq.content(response)
        else:
            await treq.collect(response, into.write)
            body = b""
        if response.version[1:] < (1, 1):
            # An HTTP/1.0 answer: the Server closes this connection (Twisted only honours an
            # explicit `Connection: close`). Drop it from the pool before anyone reuses it.
            self._pool.closeCachedConnections()
        found = {}
        for name, values in response.headers.getAllRawHeaders():
            found[name.decode("latin-1").lower()] = values[0].decode("latin-1")
        return Response(code=response.code, headers=found, body=body)

    async def _post_json(self, url: str, body: Any, *, compress: bool = False) -> Response:
        raw = json.dumps(body, separators=(",", ":")).encode("utf-8")
        if compress and await self.gzip_choice.compress():
            response = await self.request(
                "POST", url, data=gzip.compress(raw, compresslevel=6),
                headers={"Content-Type": JSON_TYPE, "Content-Encoding": "gzip"},
            )
            # 415 is the proper refusal; a Server that cannot decode gzip at all fails to
            # parse the body as JSON and answers 400. Either way, try once without gzip.
            if response.code not in (415, 400):
                if response.code < 300:
                    await self.gzip_choice.accepted()
                return response
            plain = await self.request("POST", url, data=raw,
                                       headers={"Content-Type": JSON_TYPE})
            if response.code == 415 or plain.code < 300:
                await self.gzip_choice.refused(response.code)
            return plain
        return await self.request("POST", url, data=raw, headers={"Content-Type": JSON_TYPE})

    @staticmethod
    def _expect(response: Response, what: str, ok=range(200, 300)) -> Response:
        if response.code not in ok:
            raise UpstreamError(
                f"{what}: the Server answered {response.code}{server_error_hint(response.code)}",
                response.code, response.body,
            )
        return response

    # -- the Server API --------------------------------------------------------------------------
    @_deferred
    async def startup(self, body: dict) -> None:
        """§6.1; fails with UpstreamError unless the Server accepted it."""
        response = await self._post_json(self._manager_url("startup"), body)
        self._expect(response, "startup notification")

    @_deferred
    async def update_notification(self, body: dict) -> None:
        """§6.2 (task types changed)."""
        response = await self._post_json(self._manager_url("update"), body)
        self._expect(response, "update notification")

    @_deferred
    async def depsgraph(self, since: str | None,
                        task_types: tuple[str, ...] = ()) -> Depsgraph:
        """§6.3. `task_types` is a hint (`?task_types=a,b`) a Server may ignore."""
        headers = {}
        if since:
            headers["X-Flamenco-If-Updated-Since"] = since
        params = {"task_types": ",".join(task_types)} if task_types else None
        spool = tempfile.SpooledTemporaryFile(max_size=DEPSGRAPH_SPOOL_BYTES)
        try:
            response = await self.request("GET", self._manager_url("depsgraph"),
                                          headers=headers, params=params, into=spool)
            spool.seek(0)
            if response.code in (204, 304):
                spool.close()
                return Depsgraph(response.code, iter(()), "", ())
            self._expect(attrs.evolve(response, body=spool.read(200)), "depsgraph download",
                         ok=(200,))
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        honoured = response.headers.get("x-flamenco-task-types", "")
        return Depsgraph(
            code=200, tasks=_depsgraph_tasks(spool),
            last_updated=response.headers.get("x-flamenco-last-updated", ""),
            honoured_types=tuple(t for t in honoured.split(",") if t),
        )

    def fetch_task(self, task_id: str, etag: str, timeout: float | None = None) -> defer.Deferred:
        """§6.4: the raw `Response` (the refetcher interprets every status)."""
        return self.request("GET", self._url(f"/api/flamenco/tasks/{task_id}"),
                            headers={"If-None-Match": etag}, timeout=timeout)

    @_deferred
    async def push(self, updates: list[dict]) -> dict:
        """§6.5: fires with the TaskUpdateResponse (as a dict with checked types)."""
        response = await self._post_json(
            self._manager_url("task-update-batch"), updates, compress=True
        )
        self._expect(response, "task update push", ok=(200,))
        try:
            doc = response.json()
            handled = doc.get("handled_update_ids") or []
            cancel = doc.get("cancel_task_ids") or []
            if not (isinstance(handled, list) and isinstance(cancel, list)
                    and all(isinstance(i, str) for i in handled + cancel)):
                raise TypeError("ID lists expected")
        except (ValueError, TypeError, AttributeError) as error:
            raise UpstreamError(f"task update push: undecodable answer: {error}",
                                response.code, response.body[:200]) from None
        return {
            "modified_count": doc.get("modified_count", 0),
            "handled_update_ids": handled,
            "cancel_task_ids": cancel,
            "upload_task_file_queue": doc.get("upload_task_file_queue") or [],
        }

    @_deferred
    async def attach_task_log(self, task_id: str, gzipped: bytes) -> int:
        """§6.7: upload a task's gzipped log (multipart, one part `logfile`). Fires with the
        status (201 new, 200 replaced, 404 not this Manager's task); others fail."""
        boundary = uuid.uuid4().hex
        body = (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="logfile"; filename="task-{task_id}.txt.gz"'
            "\r\nContent-Type: text/plain+gzip\r\n\r\n"
        ).encode("ascii") + gzipped + f"\r\n--{boundary}--\r\n".encode("ascii")
        response = await self.request(
            "POST", self._manager_url(f"attach-task-log/{task_id}"), data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        self._expect(response, "task log upload", ok=(200, 201, 404))
        return response.code
