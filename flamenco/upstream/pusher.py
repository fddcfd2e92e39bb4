"""The task-update pusher (PROTOCOL §6.5): the outgoing queue to the Server, in batches.

Every `inspect_interval` (1 s) the queue is inspected. With N queued updates, t_u seconds since
the last successful push that carried updates and t seconds since the last successful push of
any kind (both infinite at start):
- N ≥ max_count, or N > 0 and t_u ≥ max_interval: push the oldest ≤ max_count updates, and keep
  pushing while full batches remain (a backlog drains at the Server's pace, not one batch/s);
- otherwise t ≥ cancel_interval: an empty push, to learn about cancel requests. (Two clocks,
  so that the cancel poll does not postpone a partial batch forever when max_interval is the
  longer of the two, as in the 2017 defaults 30 s / 10 s.)
- `push_soon()` forces a push at the next inspection.
Exactly the acknowledged updates (`handled_update_ids`) are removed; cancel requests go to
`CancelRequests`. Acknowledging and cancel handling are independent: one failing does not skip
the other. A failed push removes nothing and backs off exponentially (1 s, 2 s, 4 s … capped at
`backoff_max`); the first success resets it. Only the holder of the store lease pushes, so
several Managers sharing a database do not push the same queue. An update left unacknowledged
by `give_up_after` successful pushes is dropped and logged in full (§6.5.2 recommendation).
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco import upstream_limits
from flamenco.cancellation import CancelRequests
from flamenco.logs import log_failure
from flamenco.periodic import Rounds
from flamenco.test_tasks import is_local_task
from flamenco.timefmt import utc_now
from flamenco.upstream.client import UpstreamClient, UpstreamError

LEASE_NAME = "task-update-push"


class UpdatePusher(Rounds):
    """An inspection (`inspect`) every `inspect_interval` seconds: forcing and back-off are
    decided inside each inspection, so the timer itself is a plain one."""

    log = Logger()

    def __init__(self, client: UpstreamClient, store, cancels: CancelRequests,
                 clock: IReactorTime, *, max_count: int, max_interval: float,
                 cancel_interval: float, backoff_max: float, lease_holder: str,
                 lease_seconds: float, give_up_after: int = 0, inspect_interval: float = 1.0,
                 upstream_form=None, log_uploads=None):
        super().__init__(inspect_interval)
        self.client = client
        #: TaskUpdate -> the dict pushed (the Server generation decides `log` / `log_tail`).
        self.upstream_form = upstream_form or (lambda update: update.to_upstream())
        #: Where the Server's `upload_task_file_queue` goes (`log_upload.LogUploader`).
        self.log_uploads = log_uploads
        self.store = store
        self.cancels = cancels
        self.clock = clock
        self.max_count = max_count
        self.max_interval = max_interval
        self.cancel_interval = cancel_interval
        self.backoff_max = backoff_max
        self.give_up_after = give_up_after
        self.unacknowledged_sends: dict[str, int] = {}  # update ID -> successful pushes
        self.inspect_interval = inspect_interval
        self.lease_holder = lease_holder
        self.lease = timedelta(seconds=lease_seconds)
        self.last_success: float | None = None  # any successful push (the cancel poll)
        self.last_update_push: float | None = None  # a successful push that carried updates
        self.failures = 0
        self.retry_at = float("-inf")
        self.pushed = 0  # updates acknowledged since start (status report, bench)
        #: Called with (succeeded, seconds taken) after every push (health, metrics).
        self.observers: list[Callable[[bool, float], None]] = []
        self._forced = False
        self._stopping = False

    # -- service ---------------------------------------------------------------------------------
    def startService(self):
        self._stopping = False
        super().startService()

    def stopService(self):
        self._stopping = True
        # A push in flight is let finish: what it does not acknowledge stays queued.
        return super().stopService()

    def push_soon(self) -> None:
        """Push at the next inspection regardless of the batching rules (§6.5.1, forced)."""
        self._forced = True
        self.retry_at = float("-inf")

    def when_idle(self) -> defer.Deferred[None]:
        """Fires when no push round is running (tests, bench)."""
        if self._busy is None:
            return defer.succeed(None)
        idle: defer.Deferred[None] = defer.Deferred()

        def fire(result: object) -> object:
            idle.callback(None)
            return result

        self._busy.addBoth(fire)
        return idle

    # -- one inspection --------------------------------------------------------------------------
    def _round_failed(self, failure) -> None:
        log_failure(self.log, "update push round failed", failure)

    def _since(self, moment: float | None) -> float:
        return float("inf") if moment is None else self.clock.seconds() - moment

    async def _round(self) -> None:
        if self.clock.seconds() < self.retry_at:
            return
        queued = await self.store.count_queued_updates()
        forced, self._forced = self._forced, False
        regular = queued > 0 and (forced or queued >= self.max_count
                                  or self._since(self.last_update_push) >= self.max_interval)
        if not (regular or forced or self._since(self.last_success) >= self.cancel_interval):
            return
        while True:
            now = utc_now(self.clock)
            if not await self.store.try_lease(LEASE_NAME, self.lease_holder, now, self.lease):
                self.log.debug("another Manager holds the push lease; not pushing")
                return
            batch = await self.store.queued_updates(self.max_count) if regular else []
            if not await self.push_batch(batch) or self._stopping:
                return
            # A full batch went through: drain a backlog without waiting for the next tick.
            if await self.store.count_queued_updates() < self.max_count:
                return

    def _within_limits(self, update) -> dict:
        """The upstream form, corrected so that one bad update cannot fail the whole batch."""
        doc, corrected = upstream_limits.sanitised(self.upstream_form(update))
        if corrected:
            self.log.warn("update {id} of task {task}: out-of-range {fields} not sent as queued",
                          id=update.id, task=update.task_id, fields=", ".join(corrected))
        return doc

    async def push_batch(self, batch) -> bool:
        """Push one batch; True if it succeeded with a full batch."""
        local = [update.id for update in batch if is_local_task(update.task_id)]
        if local:  # test tasks' updates never leave the Manager (§5.11)
            await self.store.ack_updates(local)
            batch = [update for update in batch if not is_local_task(update.task_id)]
            if not batch:
                return True
        sent_ids = [update.id for update in batch]
        started = time.perf_counter()
        try:
            answer = await self.client.push([self._within_limits(update) for update in batch])
        except UpstreamError as error:
            self._failed(error)
            self._tell_observers(False, time.perf_counter() - started)
            return False
        seconds = time.perf_counter() - started
        self.last_success = self.clock.seconds()
        if batch:
            self.last_update_push = self.last_success
        if self.failures:
            self.log.info("pushing to the Server works again after {n} failures",
                          n=self.failures)
        self.failures = 0
        self.retry_at = float("-inf")
        self._tell_observers(True, seconds)
        sent = set(sent_ids)
        handled = [i for i in answer["handled_update_ids"] if i in sent]
        if len(handled) != len(answer["handled_update_ids"]):
            self.log.warn("the Server acknowledged updates that were not sent; ignored")
        try:
            removed = await self.store.ack_updates(handled)
            self.pushed += removed
        except Exception:  # noqa: BLE001 - cancel handling must still happen
            log_failure(self.log, "removing {n} acknowledged updates failed", n=len(handled))
        if len(handled) < len(sent_ids):
            self.log.warn("the Server handled {handled} of {sent} pushed updates; the others "
                          "stay queued", handled=len(handled), sent=len(sent_ids))
            await self._give_up_on_stuck(batch, set(handled))
        self.cancels.acknowledged(handled)
        if answer["cancel_task_ids"]:
            await self.cancels.handle(answer["cancel_task_ids"])
        if answer["upload_task_file_queue"] and self.log_uploads is not None:
            self.log_uploads.request(answer["upload_task_file_queue"])
        self.log.debug("pushed {sent} updates: {handled} acknowledged, cancel requested: {cancel}",
                       sent=len(sent_ids), handled=len(handled), cancel=answer["cancel_task_ids"])
        return len(batch) >= self.max_count and len(handled) == len(sent_ids)

    async def _give_up_on_stuck(self, batch, handled: set[str]) -> None:
        for update_id in handled:
            self.unacknowledged_sends.pop(update_id, None)
        if not self.give_up_after:
            return
        stuck = []
        for update in batch:
            if update.id in handled:
                continue
            sends = self.unacknowledged_sends.get(update.id, 0) + 1
            self.unacknowledged_sends[update.id] = sends
            if sends >= self.give_up_after:
                stuck.append(update)
        if not stuck:
            return
        await self.store.ack_updates([update.id for update in stuck])
        for update in stuck:
            del self.unacknowledged_sends[update.id]
            self.log.error("dropped task update {id} for task {task}: the Server left it "
                           "unacknowledged {n} times; it was {update}", id=update.id,
                           task=update.task_id, n=self.give_up_after,
                           update=json.dumps(update.to_upstream()))

    def _tell_observers(self, succeeded: bool, seconds: float) -> None:
        for observer in self.observers:
            observer(succeeded, seconds)

    def _failed(self, error: UpstreamError) -> None:
        self.failures += 1
        delay = min(self.backoff_max, self.inspect_interval * 2 ** (self.failures - 1))
        self.retry_at = self.clock.seconds() + delay
        self.log.warn("pushing task updates failed ({n} in a row), next try in {delay:.0f} s: "
                      "{error}", n=self.failures, delay=delay, error=str(error))
