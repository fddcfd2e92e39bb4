"""What the operator sees of the farm and may do to it; no HTTP here (flamenco/web/operator_api).

Reads go to the store; Worker actions go to the same `WorkerService` calls as the 2.x
`/worker-action` endpoint, so both behave alike.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from twisted.logger import Logger

import flamenco
from flamenco import statuses
from flamenco.config import Config
from flamenco.errors import BadRequest, TaskConflict, UnknownTask
from flamenco.farm_json import task_summary, worker_summary
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.store.interface import IStore
from flamenco.task_activity import TaskActivity
from flamenco.upstream import ITaskSource
from flamenco.upstream.health import UpstreamHealth
from flamenco.workers import WorkerService, named_worker

log = Logger()

MAX_PAGE = 500
#: Operator actions on a Worker: name -> (status to request, or None for ack-timeout).
WORKER_ACTIONS = {
    "sleep": statuses.W_ASLEEP,
    "wake": statuses.W_AWAKE,
    "shutdown": statuses.W_SHUTDOWN,
    "ack-timeout": None,
    "approve": None,  # worker_registration: approve
}
#: A Worker may be forgotten only when it is not working (PROTOCOL §5.10.1 statuses).
FORGETTABLE = frozenset({"", statuses.W_OFFLINE, statuses.W_DOWN, statuses.W_TIMEOUT,
                         statuses.W_ERROR})


class FarmView:
    def __init__(self, config: Config, store: IStore, workers: WorkerService,
                 task_source: ITaskSource, health: UpstreamHealth, activity: TaskActivity):
        self.config = config
        self.store = store
        self.workers = workers
        self.task_source = task_source
        self.health = health
        self.activity = activity

    # -- workers ---------------------------------------------------------------------------------
    async def list_workers(self, status: str = "", task_type: str = "") -> list[dict]:
        found = await self.store.list_workers()
        return [
            worker_summary(worker) for worker in found
            if (not status or worker.status == status)
            and (not task_type or task_type in worker.supported_types)
        ]

    async def worker(self, worker_id: str) -> dict:
        return worker_summary(await named_worker(self.store, worker_id))

    async def act_on_worker(self, worker_id: str, action: str, lazy: bool) -> dict | None:
        """Returns the Worker as it is now, or None when it was forgotten."""
        if action == "forget":
            await self.forget_worker(worker_id)
            return None
        if action not in WORKER_ACTIONS:
            raise BadRequest(f"unknown action {action!r}; use one of "
                             f"{', '.join(sorted([*WORKER_ACTIONS, 'approve', 'forget']))}")
        status = WORKER_ACTIONS[action]
        if action == "approve":
            await self.workers.approve(worker_id)
        elif status is None:
            await self.workers.acknowledge_timeout(worker_id)
        else:
            await self.workers.request_status(worker_id, status, lazy)
        return await self.worker(worker_id)

    async def forget_worker(self, worker_id: str) -> None:
        """Remove a Worker that is not working; its active tasks go back to the queue and its
        credentials stop working (a Worker that comes back registers anew)."""
        worker = await named_worker(self.store, worker_id)
        if worker.status not in FORGETTABLE:
            raise TaskConflict(f"worker {worker.identifier} is {worker.status}; only a Worker "
                               f"that is offline, down, timed out or in error can be forgotten")
        await self.workers.remove(worker, "worker forgotten by operator")

    # -- tasks -----------------------------------------------------------------------------------
    async def list_tasks(self, *, status: str = "", task_type: str = "", job: str = "",
                         offset: int = 0, limit: int = 50) -> dict:
        if status and status not in statuses.TASK_STATUSES:
            raise BadRequest(f"unknown task status {status!r}",
                             {"known": sorted(statuses.TASK_STATUSES)})
        if job and not is_object_id(job):
            raise BadRequest(f"job {job!r} is not a 24-hex ObjectId")
        if offset < 0:
            raise BadRequest(f"offset must be zero or more, not {offset}")
        if not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
        tasks, total = await self.store.list_tasks(
            status or None, task_type or None, normalise_object_id(job) if job else None,
            offset, limit)
        return {"tasks": [task_summary(task) for task in tasks], "total": total,
                "offset": offset, "limit": limit}

    async def task(self, task_id: str) -> dict:
        task = None
        if is_object_id(task_id):
            task = await self.store.get_task(normalise_object_id(task_id))
        if task is None:
            raise UnknownTask(f"no task with ID {task_id}")
        doc = task_summary(task)
        doc["commands"] = [command.get("name", "") for command in task.doc.get("commands", [])]
        doc["status_history"] = self.activity.status_history(task.id)
        doc["log_tail"] = self.activity.log_tail(task.id)
        return doc

    async def queue_depth(self) -> dict:
        by_status: dict[str, int] = {}
        by_type: dict[str, int] = {}
        rows = await self.store.task_counts()
        for status, task_type, count in rows:
            by_status[status] = by_status.get(status, 0) + count
            by_type[task_type] = by_type.get(task_type, 0) + count
        return {
            "by_status": by_status,
            "by_type": by_type,
            "by_status_and_type": [
                {"status": status, "task_type": task_type, "count": count}
                for status, task_type, count in rows
            ],
        }

    # -- the whole farm --------------------------------------------------------------------------
    async def overview(self) -> dict:
        workers = await self.list_workers()
        by_status: dict[str, int] = {}
        for worker in workers:
            status = worker["status"] or "unknown"
            by_status[status] = by_status.get(status, 0) + 1
        return {
            "version": flamenco.__version__,
            "login_required": bool(self.config.admin_password),
            "workers_by_status": by_status,
            "queue": await self.queue_depth(),
            "upstream": await self.health.report(),
        }

    async def status_report(self) -> dict:
        """The StatusReport of `GET /` (PROTOCOL §2.13, §3.11)."""
        return {
            "nr_of_workers": await self.store.count_workers(),
            "nr_of_tasks": await self.store.count_tasks(),
            "upstream_queue_size": await self.store.count_queued_updates(),
            "version": flamenco.__version__,
        }

    async def as_json(self) -> dict:
        """The 2.x status report of `GET /as-json`: the StatusReport with the Workers."""
        workers = await self.store.list_workers()
        server_url = self.config.flamenco
        return {
            **await self.status_report(),
            "workers": [worker.to_json() for worker in workers],
            "manager_name": socket.gethostname(),
            "manager_mode": "production",
            "server": {"name": urlsplit(server_url).hostname or "", "url": server_url},
        }
