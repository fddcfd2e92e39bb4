"""The domain mapping both stores share: the rules for what they keep of a task and a Worker.

The stores differ only in how values are kept (SQLite columns and JSON text; MongoDB
documents with `_fm_` helper fields). Which keys of a Server task change locally, how a
downloaded copy merges into the local one, the schedule type and hand-out order, and the
storable form of a Worker are decided here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from flamenco import statuses
from flamenco.documents import LOCAL_TASK_FIELDS, Task, Worker
from flamenco.timefmt import from_epoch, to_epoch

#: Keys of the Server's task document that change locally (kept beside the Server's copy).
LOCAL_DOC_KEYS = ("status", "activity", "worker")

#: Every attribute of a Worker, in declaration order (the SQLite columns are named so).
WORKER_FIELDS = tuple(field.name for field in attrs.fields(Worker))
#: What `update_worker` may change: everything but the ID.
WORKER_UPDATABLE = frozenset(WORKER_FIELDS) - {"id"}


# -- tasks ---------------------------------------------------------------------------------------

@attrs.frozen
class LocalTask:
    """What a store holds of a task before a download replaces its Server copy."""

    status: str
    activity: str = ""
    worker: str = ""
    #: The `_etag` of the Server copy stored with it.
    etag: str | None = None


@attrs.frozen
class MergedTask:
    """A downloaded Server task merged into the local copy: what the store writes."""

    #: The Server's document without the locally kept keys and the local bookkeeping.
    server_doc: dict
    status: str
    activity: str
    worker: str
    schedule_type: str
    job_priority: int
    priority: int


def merge_server_task(doc: dict, local: LocalTask | None, *, unacknowledged: bool) -> MergedTask:
    """Server task `doc` over the stored `local` state (None: a new task). `unacknowledged`:
    updates of the task are queued. The local status, activity and worker are kept as
    `statuses.local_status_prevails` decides; an empty activity or worker keeps the local one."""
    server = Task(doc=doc)
    status, activity, worker = server.status, server.doc.get("activity") or "", server.worker
    if local is not None:
        if statuses.local_status_prevails(local.status, status, unacknowledged=unacknowledged,
                                          same_etag=doc.get("_etag") == local.etag):
            status, activity, worker = local.status, local.activity, local.worker
        activity = activity or local.activity
        worker = worker or local.worker
    return MergedTask(
        server_doc={key: value for key, value in doc.items()
                    if key not in LOCAL_DOC_KEYS and key not in LOCAL_TASK_FIELDS},
        status=status, activity=activity, worker=worker,
        schedule_type=server.schedule_type,
        job_priority=server.job_priority, priority=server.priority,
    )


def task_parents(doc: Mapping[str, Any]) -> list[str]:
    """The task's parent IDs, each once, in the Server's order."""
    return list(dict.fromkeys(doc.get("parents") or []))


def hand_out_key(job_priority: int, priority: int, task_id: str) -> tuple[int, int, str]:
    """The hand-out order (§5.3): job priority, then priority, highest first; then `_id`."""
    return (-job_priority, -priority, task_id)


def task_from_stored(server_doc: dict, status: str, activity: str | None, worker: str | None,
                     *, worker_id: str | None, last_worker_ping: float | None,
                     last_updated: float | None, worker_reported: Any) -> Task:
    """A Task from what a store keeps: the Server's copy, the local keys (an empty activity or
    worker is left out of the document) and the bookkeeping (times in Unix seconds)."""
    doc = dict(server_doc, status=status)
    if activity:
        doc["activity"] = activity
    if worker:
        doc["worker"] = worker
    return Task(
        doc=doc,
        worker_id=worker_id,
        last_worker_ping=from_epoch(last_worker_ping),
        last_updated=from_epoch(last_updated),
        worker_reported=bool(worker_reported),
    )


def stored_time(seconds: float) -> datetime:
    """A time both stores keep as Unix seconds, where it is never missing."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


# -- Workers -------------------------------------------------------------------------------------

def worker_fields(worker: Worker) -> dict[str, Any]:
    return {name: getattr(worker, name) for name in WORKER_FIELDS}


def check_worker_changes(changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - WORKER_UPDATABLE
    if unknown:
        raise TypeError(f"unknown worker fields: {sorted(unknown)}")


def worker_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Worker attributes (all or some) as plain storable values: the supported types a list,
    the last activity in Unix seconds, the flags booleans, the secret hash bytes."""
    values = dict(fields)
    if "supported_types" in values:
        values["supported_types"] = list(values["supported_types"])
    if "last_activity" in values:
        values["last_activity"] = to_epoch(values["last_activity"])
    for flag in ("lazy_status_request", "approved"):
        if flag in values:
            values[flag] = bool(values[flag])
    if "secret_hash" in values:
        values["secret_hash"] = bytes(values["secret_hash"])
    return values


def worker_from_values(values: Mapping[str, Any]) -> Worker:
    """Inverse of `worker_values`; a missing field takes the Worker's default, except
    `approved`: a Worker stored before approval existed was approved."""
    fields = {name: values[name] for name in WORKER_FIELDS if name in values}
    fields["supported_types"] = tuple(fields.get("supported_types") or ())
    fields["last_activity"] = from_epoch(fields.get("last_activity"))
    fields["lazy_status_request"] = bool(fields.get("lazy_status_request"))
    fields["approved"] = bool(fields.get("approved", True))
    fields["secret_hash"] = bytes(fields["secret_hash"])
    return Worker(**fields)
