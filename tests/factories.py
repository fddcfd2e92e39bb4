"""Builders for test documents."""

from datetime import datetime, timezone

from flamenco.documents import GENERATION_2_0, TaskUpdate, Worker
from flamenco.ids import new_object_id

MANAGER_ID = "5a1f0c3e9f1b2c0d4e5f6a70"
JOB_ID = "5a1f0e229f1b2c0d4e5f6a72"
T0 = datetime(2018, 1, 10, 9, 15, tzinfo=timezone.utc)


def task_doc(task_id=None, *, status="claimed-by-manager", job_type="sleep", task_type=None,
             priority=50, job_priority=50, parents=(), job=JOB_ID, etag="etag-1", name=None,
             commands=None):
    task_id = task_id or new_object_id()
    doc = {
        "_id": task_id,
        "_etag": etag,
        "job": job,
        "manager": MANAGER_ID,
        "project": "5a0b00000000000000000001",
        "user": "5a0b00000000000000000002",
        "name": name or f"task-{task_id[-4:]}",
        "status": status,
        "priority": priority,
        "job_priority": job_priority,
        "job_type": job_type,
        "parents": list(parents),
        "commands": commands if commands is not None else [
            {"name": "echo", "settings": {"message": "hello"}}
        ],
    }
    if task_type is not None:
        doc["task_type"] = task_type
    return doc


def worker(*, types=("sleep",), nickname="render-01", address="10.0.0.21",
           generation=GENERATION_2_0, worker_id=None, platform="linux", **fields):
    return Worker(
        id=worker_id or new_object_id(),
        secret_hash=b"$2b$04$notarealhashnotarealhashnotarealhashnotarealhashnot",
        nickname=nickname,
        address=address,
        platform=platform,
        supported_types=tuple(types),
        generation=generation,
        **fields,
    )


def update(task_id, *, when=T0, **fields):
    return TaskUpdate(id=new_object_id(), task_id=task_id, received_on_manager=when, **fields)
