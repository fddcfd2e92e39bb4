"""Task logs the Server asks for (PROTOCOL §6.5.4, §6.7), and the upstream form of updates.

The Server repeats an upload request in every push answer until the upload arrives, so the
requests are kept in memory only, once each, and uploaded one at a time; a failure is logged
and the Server's next request tries again.
"""

from __future__ import annotations

from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from flamenco.documents import TaskUpdate
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.task_logs import TaskLogs, log_tail
from flamenco.upstream.client import UpstreamClient, UpstreamError

log = Logger()


def upstream_form(update: TaskUpdate, *, send_log_tail: bool, server_2017: bool) -> dict:
    """What is pushed for `update`: to a 2021 Server with log files kept here, `log_tail`
    instead of `log`; to a 2017 Server, the full `log` and no 2.x-only fields."""
    doc = update.to_upstream()
    if send_log_tail and "log" in doc:
        tail = log_tail(doc.pop("log"))
        if tail:
            doc["log_tail"] = tail
    if server_2017:
        doc.pop("failed_by_workers", None)
    return doc


class LogUploader:
    def __init__(self, client: UpstreamClient, task_logs: TaskLogs):
        self.client = client
        self.task_logs = task_logs
        self._pending: dict[tuple[str, str], None] = {}  # (job, task), in arrival order
        self._running: defer.Deferred | None = None
        self.uploaded: deque[str] = deque(maxlen=100)  # the last task IDs uploaded

    def request(self, entries) -> None:
        for entry in entries:
            job = entry.get("job") if isinstance(entry, dict) else None
            task = entry.get("task") if isinstance(entry, dict) else None
            if not (isinstance(job, str) and isinstance(task, str)
                    and is_object_id(job) and is_object_id(task)):
                log.warn("ignoring a malformed log upload request from the Server: {entry!r}",
                         entry=entry)
                continue
            self._pending.setdefault((normalise_object_id(job), normalise_object_id(task)))
        if self._pending and self._running is None:
            self._running = defer.ensureDeferred(self._drain())
            self._running.addBoth(self._done)

    def _done(self, result):
        self._running = None
        return None

    def when_idle(self) -> defer.Deferred:
        if self._running is None:
            return defer.succeed(None)
        waiting: defer.Deferred[None] = defer.Deferred()

        def release(result: object) -> object:
            waiting.callback(None)
            return result

        self._running.addBoth(release)
        return waiting

    async def _drain(self) -> None:
        while self._pending:
            job, task = next(iter(self._pending))
            try:
                data = await self.task_logs.gzipped_for_upload(job, task)
                code = await self.client.attach_task_log(task, data)
                if code == 404:
                    log.warn("the Server does not take the log of task {task} (404)", task=task)
                else:
                    self.uploaded.append(task)
            except (UpstreamError, OSError) as error:
                log.warn("uploading the log of task {task} failed: {error}", task=task,
                         error=error)
            finally:
                self._pending.pop((job, task), None)
