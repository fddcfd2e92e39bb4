"""A store that tells the event bus what changed: the one place changes are published.

Every write goes through the store, whichever service makes it (worker service, task updates,
time-outs, downloads), so wrapping the store publishes every change exactly once without each
service knowing about the bus. Reads pass straight through.
"""

from __future__ import annotations

from zope.interface import implementer

from flamenco.documents import Task, TaskUpdate, Worker
from flamenco.events import EventBus
from flamenco.farm_json import task_summary, worker_changes, worker_summary
from flamenco.store.interface import IStore

#: How many characters of a task update's log are published (the log tail follows live).
LOG_EXCERPT_CHARS = 8000


@implementer(IStore)
class ObservedStore:
    def __init__(self, store, bus: EventBus):
        self._store = store
        self.bus = bus

    def __getattr__(self, name):
        return getattr(self._store, name)

    # -- workers ---------------------------------------------------------------------------------
    def add_worker(self, worker: Worker):
        def added(result):
            self.bus.publish("worker", worker_summary(worker))
            return result

        return self._store.add_worker(worker).addCallback(added)

    def update_worker(self, worker_id: str, **changes):
        def updated(found):
            if found:
                self.bus.publish("worker", {"id": worker_id, **worker_changes(changes)})
            return found

        return self._store.update_worker(worker_id, **changes).addCallback(updated)

    def delete_worker(self, worker_id: str):
        def deleted(found):
            if found:
                self.bus.publish("worker-forgotten", {"id": worker_id})
            return found

        return self._store.delete_worker(worker_id).addCallback(deleted)

    # -- tasks -----------------------------------------------------------------------------------
    def claim_task(self, worker: Worker, now, resume_since=None):
        def claimed(task: Task | None):
            if task is not None:
                self.bus.publish("task", task_summary(task))
            return task

        return self._store.claim_task(worker, now, resume_since).addCallback(claimed)

    def set_task_status(self, task_id: str, status: str, only_from=None):
        def changed(done):
            if done:
                self.bus.publish("task", {"id": task_id, "status": status})
            return done

        return self._store.set_task_status(task_id, status, only_from).addCallback(changed)

    def queue_update(self, update: TaskUpdate, worker_id=None, ping=None, from_worker=False,
                     log_mark=None):
        def queued(result):
            event: dict = {"id": update.task_id, "progress": update.task_progress_percentage}
            if update.task_status:
                event["status"] = update.task_status
            if update.activity:
                event["activity"] = update.activity
            if update.worker:
                event["worker"] = update.worker
            if update.log:
                event["log"] = update.log[-LOG_EXCERPT_CHARS:]
            self.bus.publish("task", event)
            return result

        return self._store.queue_update(update, worker_id=worker_id, ping=ping,
                                        from_worker=from_worker,
                                        log_mark=log_mark).addCallback(queued)

    def store_server_tasks(self, docs, now):
        def stored(result):
            self.bus.publish("tasks-downloaded", {"count": len(docs)})
            return result

        return self._store.store_server_tasks(docs, now).addCallback(stored)

    def erase_tasks(self):
        def erased(count):
            self.bus.publish("tasks-downloaded", {"count": 0, "erased": count})
            return count

        return self._store.erase_tasks().addCallback(erased)
