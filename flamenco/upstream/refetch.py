"""Refetch before hand-out (PROTOCOL §5.5): is the cached task still as the Server has it?

Each refetch is independent (no lock shared between workers' requests) and bounded by a short
deadline on the injected clock: a slow or hanging Server costs a worker's `/task` at most that
long, and the task is then handed out as cached. The outcome is only reported; the scheduler
stores a changed document or cancels a gone task locally.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco.documents import InvalidDocument, decode_json_object, parse_server_task
from flamenco.upstream import Freshness, Refetched
from flamenco.upstream.client import UpstreamClient, UpstreamError, server_error_hint

log = Logger()

UNCHANGED = Refetched(Freshness.UNCHANGED)
GONE = Refetched(Freshness.GONE)


def interpret(task_id: str, code: int, body: bytes) -> Refetched:
    """The §5.5 table: what a refetch answer means for the cached task."""
    if code == 304:
        return UNCHANGED
    if code in (401, 403):
        log.warn("refetch of task {task}: the Server answered {code}{hint}; cancelling locally",
                 task=task_id, code=code, hint=server_error_hint(code))
        return GONE
    if code == 204 or 400 <= code < 500:
        return GONE
    if code == 200:
        try:
            doc = parse_server_task(decode_json_object(body, "refetched task"))
        except InvalidDocument as error:
            log.warn("refetch of task {task}: undecodable answer ({error}); cancelling locally",
                     task=task_id, error=error.message)
            return GONE
        if doc["_id"] != task_id:
            log.warn("refetch of task {task} answered task {other}; cancelling locally",
                     task=task_id, other=doc["_id"])
            return GONE
        return Refetched(Freshness.CHANGED, doc)
    # 5xx, other 2xx and 3xx other than 304 (never followed): the Server cannot say.
    log.info("refetch of task {task}: Server answered {code}; handing it out as cached",
             task=task_id, code=code)
    return UNCHANGED


class Refetcher:
    """The `refetch` half of ITaskSource (`link.UpstreamLink` combines it with the downloader)."""

    def __init__(self, client: UpstreamClient, clock: IReactorTime, deadline: float):
        self.client = client
        self.clock = clock
        self.deadline = deadline

    def refetch(self, task) -> defer.Deferred:
        d = defer.ensureDeferred(self._refetch(task))
        # The client has its own deadline; this one is measured here so it holds whatever
        # the client does (cancelling aborts the request).
        d.addTimeout(self.deadline, self.clock)
        d.addErrback(self._unknown, task.id)
        return d

    async def _refetch(self, task) -> Refetched:
        response = await self.client.fetch_task(task.id, task.etag, timeout=self.deadline)
        return interpret(task.id, response.code, response.body)

    def _unknown(self, failure, task_id) -> Refetched:
        if failure.check(defer.TimeoutError):
            log.warn("refetch of task {task}: no answer within {deadline} s; handing it out "
                     "as cached", task=task_id, deadline=self.deadline)
        elif failure.check(UpstreamError):
            log.warn("refetch of task {task}: {error}; handing it out as cached",
                     task=task_id, error=str(failure.value))
        else:
            log.failure("refetch of task {task} failed unexpectedly", failure, task=task_id)
        return UNCHANGED
