"""Queueing updates: every task change the Manager makes or receives travels upstream this way."""

from __future__ import annotations

from datetime import datetime

from twisted.internet.interfaces import IReactorTime

from flamenco.documents import TaskUpdate
from flamenco.ids import new_object_id
from flamenco.timefmt import log_stamp, utc_now


class UpdateQueue:
    """Creates TaskUpdates (fresh ObjectId, received now) and hands them to the store."""

    def __init__(self, store, clock: IReactorTime):
        self.store = store
        self.clock = clock

    def now(self) -> datetime:
        return utc_now(self.clock)

    async def queue(self, task_id: str, *, worker_id: str | None = None,
                    ping: datetime | None = None, from_worker: bool = False,
                    **fields) -> TaskUpdate:
        update = TaskUpdate(id=new_object_id(), task_id=task_id,
                            received_on_manager=self.now(), **fields)
        await self.store.queue_update(update, worker_id=worker_id, ping=ping,
                                      from_worker=from_worker)
        return update

    async def queue_note(self, task_id: str, activity: str, *, log: str | None = None,
                         local_time: bool = True, **fields) -> TaskUpdate:
        """A Manager-generated activity plus a time-stamped log line (default: the activity)."""
        line = f"{log_stamp(self.now(), local=local_time)}: {log if log is not None else activity}"
        return await self.queue(task_id, activity=activity, log=line, **fields)
