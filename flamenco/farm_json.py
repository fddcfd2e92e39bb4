"""The operator view's JSON form of Workers, tasks and jobs (API, events and dashboard alike)."""

from __future__ import annotations

from datetime import datetime

from flamenco.documents import Task, Worker
from flamenco.store.jobs import Job
from flamenco.timefmt import rfc3339

#: Worker attributes the operator may see (never the secret hash).
PUBLIC_WORKER_FIELDS = (
    "nickname", "address", "platform", "supported_types", "generation", "status",
    "status_requested", "lazy_status_request", "current_task", "last_activity", "software",
    "approved",
)


def _plain(value):
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def worker_summary(worker: Worker) -> dict:
    doc = {"id": worker.id, "identifier": worker.identifier}
    for field in PUBLIC_WORKER_FIELDS:
        doc[field] = _plain(getattr(worker, field))
    return doc


def worker_changes(changes: dict) -> dict:
    """The public part of a Worker update (`store.update_worker` keyword arguments)."""
    return {key: _plain(value) for key, value in changes.items() if key in PUBLIC_WORKER_FIELDS}


def task_summary(task: Task) -> dict:
    doc = task.doc
    return {
        "id": task.id,
        "name": task.name,
        "job": task.job,
        "job_type": task.job_type,
        "task_type": task.schedule_type,
        "status": task.status,
        "activity": doc.get("activity", ""),
        "worker": task.worker,
        "worker_id": task.worker_id,
        "priority": task.priority,
        "job_priority": task.job_priority,
        "parents": task.parents,
        "last_worker_ping": _plain(task.last_worker_ping),
        "last_updated": _plain(task.last_updated),
    }


def job_summary(job: Job) -> dict:
    return {"id": job.id, "name": job.name, "type": job.type, "priority": job.priority,
            "status": job.status, "settings": job.settings,
            "submitter_platform": job.submitter_platform,
            "created": rfc3339(job.created), "updated": rfc3339(job.updated)}


def job_changes(changes: dict) -> dict:
    """A job update (`IJobStore.update_job` changes) in JSON form."""
    return {key: _plain(value) for key, value in changes.items()}
