"""The 2.x Manager's operator verbs of `POST /worker-action/{id}` (PROTOCOL §3.14).

The operator API's own Worker actions (`farm_view.FarmView.act_on_worker`) call the same
`WorkerService` methods; only `forget-worker` differs: here it forgets a Worker whatever its
status, as the 2.x Manager did.
"""

from __future__ import annotations

import attrs

from flamenco import statuses
from flamenco.errors import BadRequest
from flamenco.failures import FailureHandling
from flamenco.test_tasks import TestTasks
from flamenco.workers import WorkerService

ACTIONS = ("set-status", "shutdown", "ack-timeout", "approve", "send-test-job",
           "forget-worker", "forget-blocklist-line")


@attrs.frozen
class WorkerAction:
    """One `/worker-action` request; `status`, `lazy`, `job_id` and `task_type` as the action
    needs them."""

    action: str
    status: str = ""
    lazy: bool = False
    job_id: str = ""
    task_type: str = ""


class WorkerActions:
    def __init__(self, workers: WorkerService, test_tasks: TestTasks,
                 failures: FailureHandling):
        self.workers = workers
        self.test_tasks = test_tasks
        self.failures = failures

    async def perform(self, worker_id: str, request: WorkerAction) -> str | None:
        """Carry out `request`; the ID of the queued test task for `send-test-job`."""
        workers, action = self.workers, request.action
        if action == "set-status":
            await workers.request_status(worker_id, request.status, request.lazy)
        elif action == "shutdown":
            await workers.request_status(worker_id, statuses.W_SHUTDOWN, request.lazy)
        elif action == "ack-timeout":
            await workers.acknowledge_timeout(worker_id)
        elif action == "approve":
            await workers.approve(worker_id)
        elif action == "send-test-job":
            return await self.test_tasks.send_test_task(await workers.existing(worker_id))
        elif action == "forget-worker":
            await workers.forget(worker_id)
        elif action in ("forget-blacklist-line", "forget-blocklist-line"):
            await self.failures.forget_blocklist_entry(worker_id, request.job_id,
                                                       request.task_type)
        else:
            raise BadRequest(f"unknown action {action!r}; use {', '.join(ACTIONS[:-1])}"
                             f" or {ACTIONS[-1]}")
        return None
