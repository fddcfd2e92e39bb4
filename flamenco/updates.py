"""Queueing updates: every task change the Manager makes or receives travels upstream this way."""

from __future__ import annotations

from datetime import datetime

from twisted.internet.interfaces import IReactorTime

from flamenco.documents import TaskUpdate
from flamenco.ids import new_object_id
from flamenco.store.farm import LogMark
from flamenco.store.interface import IStore
from flamenco.task_logs import TaskLogs
from flamenco.timefmt import log_stamp, utc_now


class UpdateQueue:
    """Creates TaskUpdates (fresh ObjectId, received now) and hands them to the store."""

    def __init__(self, store: IStore, clock: IReactorTime, task_logs: TaskLogs | None = None):
        self.store = store
        self.clock = clock
        #: Where every update's log also goes (None: no log files).
        self.task_logs = task_logs

    def now(self) -> datetime:
        return utc_now(self.clock)

    async def queue(self, task_id: str, *, worker_id: str | None = None,
                    ping: datetime | None = None, from_worker: bool = False,
                    digest: str = "", **fields) -> TaskUpdate:
        """Queue durably; a `log` is appended to the task's log file too. `digest` (of a
        Worker's update) lets a re-send of it be recognised (`TaskLogs.is_resend`)."""
        update = TaskUpdate(id=new_object_id(), task_id=task_id,
                            received_on_manager=self.now(), **fields)

        async def queue_it(log_mark: LogMark | None = None):
            await self.store.queue_update(update, worker_id=worker_id, ping=ping,
                                          from_worker=from_worker, log_mark=log_mark)

        if self.task_logs is not None and update.log:
            await self.task_logs.logged(task_id, update.log, digest, queue_it)
        else:
            await queue_it()
        return update

    async def is_resend(self, task_id: str, digest: str) -> bool:
        """This Worker update was queued already (the Worker did not get our answer)."""
        return self.task_logs is not None and await self.task_logs.is_resend(task_id, digest)

    async def queue_note(self, task_id: str, activity: str, *, log: str | None = None,
                         local_time: bool = True, **fields) -> TaskUpdate:
        """A Manager-generated activity plus a time-stamped log line (default: the activity)."""
        line = f"{log_stamp(self.now(), local=local_time)}: {log if log is not None else activity}"
        return await self.queue(task_id, activity=activity, log=line, **fields)
