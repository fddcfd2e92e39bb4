"""Cancel requests from the Flamenco Server (PROTOCOL §4.5 E5/E6, §6.5.3).

The Server lists its `cancel-requested` tasks in every push answer until it receives `canceled`
(or `failed`/`completed`) for them. For each listed task:
- locally `active`: the local status becomes `cancel-requested` (no update queued); the worker
  learns it from may-i-run and stops;
- any other local status: an `{activity, log}` note and a `canceled` update are queued;
- unknown locally: a `canceled` update is queued.
A `canceled` update this Manager queued and the Server has not acknowledged yet is not queued
again (the Server keeps listing the task until that update reaches it).
"""

from __future__ import annotations

from twisted.logger import Logger

from flamenco import statuses
from flamenco.logs import log_failure
from flamenco.store.interface import IStore
from flamenco.updates import UpdateQueue

log = Logger()

NOTE = "Manager cancelled task by request of Flamenco Server"


class CancelRequests:
    def __init__(self, store: IStore, updates: UpdateQueue):
        self.store = store
        self.updates = updates
        self._pending: dict[str, str] = {}  # task ID -> ID of the queued `canceled` update

    async def handle(self, task_ids: list[str]) -> None:
        """Apply one push answer's `cancel_task_ids`. Each task is handled on its own: a
        failure for one is logged and the others still go ahead."""
        for task_id in dict.fromkeys(task_ids):
            try:
                await self._one(task_id)
            except Exception:  # noqa: BLE001
                log_failure(log, "handling the Server's cancel request for task {task} failed",
                            task=task_id)

    async def _one(self, task_id: str) -> None:
        if task_id in self._pending:
            return
        task = await self.store.get_task(task_id)
        if task is not None and task.status == statuses.ACTIVE:
            # Only if still active: the worker may have finished it since it was read.
            if not await self.store.set_task_status(
                    task_id, statuses.CANCEL_REQUESTED, only_from=(statuses.ACTIVE,)):
                return
            log.info("task {task} is active on worker {worker}: cancel requested, the worker "
                     "will be told to stop", task=task_id, worker=task.worker or task.worker_id)
            return
        if task is not None:
            await self.updates.queue_note(task_id, NOTE)
        update = await self.updates.queue(task_id, task_status=statuses.CANCELED)
        self._pending[task_id] = update.id
        log.info("task {task} ({status}) canceled by request of the Server", task=task_id,
                 status=task.status if task is not None else "unknown here")

    def acknowledged(self, update_ids) -> None:
        """The Server handled these updates: stop remembering our `canceled` ones among them."""
        handled = set(update_ids)
        for task_id, update_id in list(self._pending.items()):
            if update_id in handled:
                del self._pending[task_id]
