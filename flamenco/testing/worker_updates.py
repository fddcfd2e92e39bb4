"""The real Workers' outgoing task-update queue (PROTOCOL §3.5 "Worker reaction").

Both Worker generations persist their task updates and send them strictly in order, one request
at a time, from a queue of their own, while the task goes on running: a Manager that is down or
restarting delays the updates but does not stop the work. 2.0 Workers drop an update only on
`409` and retry anything else for ever; 2.x Workers drop it on `404` or `409`. Connection errors
and other answers are retried after a pause (5 s in the real Workers).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from twisted.internet import defer, task

if TYPE_CHECKING:
    from flamenco.testing.worker import SimulatedWorker

#: Answers after which an update leaves the queue without being retried, per generation.
DISCARDED = {"2.0": frozenset({409}), "2.x": frozenset({404, 409})}


class OfflineUpdateQueue:
    def __init__(self, worker: SimulatedWorker, retry_seconds: float = 5.0):
        self.worker = worker
        self.retry_seconds = retry_seconds
        self.pending: deque[tuple[str, dict]] = deque()
        self.failed_sends = 0
        self._flushing: defer.Deferred | None = None
        self._idle: list[defer.Deferred] = []

    def put(self, task_id: str, fields: dict) -> None:
        self.pending.append((task_id, fields))
        if self._flushing is None:
            self._flushing = defer.ensureDeferred(self._send_all())

    def flushed(self) -> defer.Deferred:
        """Fires once every queued update has been delivered (or discarded)."""
        if not self.pending:
            return defer.succeed(None)
        waiter: defer.Deferred = defer.Deferred()
        self._idle.append(waiter)
        return waiter

    async def _send_all(self) -> None:
        while self.pending:
            task_id, fields = self.pending[0]
            try:
                code = await self.worker.send_update(task_id, **fields)
            except Exception:
                code = None
            if code is not None and (200 <= code < 300
                                     or code in DISCARDED[self.worker.generation]):
                self.pending.popleft()
                continue
            self.failed_sends += 1
            await task.deferLater(self.worker.clock, self.retry_seconds, lambda: None)
        self._flushing = None
        waiters, self._idle = self._idle, []
        for waiter in waiters:
            waiter.callback(None)
