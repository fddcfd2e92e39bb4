"""Test tasks for Workers in `testing` (PROTOCOL §5.11): local, never refetched, never pushed.

A test task's ObjectId has a zero timestamp (`00000000…`), which no Server-made ID has, so its
updates are recognised by their task ID alone and kept away from the Server.
"""

from __future__ import annotations

import secrets

from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import Worker
from flamenco.errors import BadRequest
from flamenco.store.interface import IStore
from flamenco.updates import UpdateQueue

log = Logger()

LOCAL_JOB_TYPE = "manager-local"
TEST_TASK_TYPE = "test-blender-render"
ZERO_ID = "0" * 24
_LOCAL_PREFIX = "00000000"


def is_local_task(task_id: str) -> bool:
    return task_id.startswith(_LOCAL_PREFIX)


def new_local_task_id() -> str:
    return _LOCAL_PREFIX + secrets.token_hex(8)


class TestTasks:
    def __init__(self, store: IStore, updates: UpdateQueue):
        self.store = store
        self.updates = updates

    async def send_test_task(self, worker: Worker) -> str:
        """Queue a test task that the testing Worker gets at its next `/task`."""
        if worker.status != statuses.W_TESTING:
            raise BadRequest(f"worker {worker.id} is {worker.status or 'not signed on'},"
                             " not in testing")
        if TEST_TASK_TYPE not in worker.supported_types:
            raise BadRequest(f"worker {worker.id} does not support {TEST_TASK_TYPE}")
        task_id = new_local_task_id()
        await self.store.store_server_tasks([{
            "_id": task_id, "job": ZERO_ID, "manager": ZERO_ID, "project": ZERO_ID,
            "user": ZERO_ID, "name": f"test task for {worker.nickname}",
            "status": statuses.QUEUED, "priority": 100, "job_priority": 1000,
            "job_type": LOCAL_JOB_TYPE, "task_type": TEST_TASK_TYPE, "parents": [],
            "commands": [{"name": "echo", "settings": {
                "message": f"Test task for worker {worker.identifier}"}}],
        }], self.updates.now())
        log.info("test task {task} queued for worker {worker}", task=task_id,
                 worker=worker.identifier)
        return task_id
