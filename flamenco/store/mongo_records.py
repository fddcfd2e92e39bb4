"""Task and Worker documents of the MongoDB store: to and from the domain objects."""

from __future__ import annotations

from datetime import datetime

from flamenco import statuses
from flamenco.documents import LOCAL_TASK_FIELDS, Task, Worker
from flamenco.timefmt import from_epoch, to_epoch

HELPER_PREFIX = "_fm_"
_LOCAL_DOC_KEYS = ("status", "activity", "worker")
_WORKER_FIELDS = (
    "nickname", "address", "platform", "supported_types", "generation", "status",
    "status_requested", "lazy_status_request", "current_task", "last_activity", "software",
    "approved",
)

def _without_helpers(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if not key.startswith(HELPER_PREFIX)}


def _task_record(doc: dict, old: dict | None, now: datetime, unacknowledged: bool) -> dict:
    """The stored form of Server task `doc`, keeping the local state of `old`
    (`unacknowledged`: the task has updates queued)."""
    server_doc = {
        key: value for key, value in doc.items()
        if key not in _LOCAL_DOC_KEYS and key not in LOCAL_TASK_FIELDS
        and not key.startswith(HELPER_PREFIX)
    }
    status = doc["status"]
    activity = doc.get("activity") or ""
    worker = doc.get("worker") or ""
    record = dict(server_doc)
    if old is not None:
        if statuses.local_status_prevails(old["status"], status, unacknowledged=unacknowledged,
                                          same_etag=doc.get("_etag") == old.get("_etag")):
            status, activity, worker = old["status"], old.get("activity"), old.get("worker")
        activity = activity or old.get("activity") or ""
        worker = worker or old.get("worker") or ""
        for key in LOCAL_TASK_FIELDS:
            if key in old:
                record[key] = old[key]
    record.update(
        status=status,
        activity=activity,
        worker=worker,
        last_updated=to_epoch(now),
        _fm_type=doc.get("task_type") or doc.get("job_type") or "",
        _fm_job_priority=int(doc.get("job_priority") or 0),
        _fm_priority=int(doc.get("priority") or 0),
        _fm_unfinished_parents=(old or {}).get("_fm_unfinished_parents", 0),
        _fm_claims=(old or {}).get("_fm_claims", 0),
    )
    return record


def _task_from_record(record: dict) -> Task:
    doc = {
        key: value for key, value in record.items()
        if key not in LOCAL_TASK_FIELDS and not key.startswith(HELPER_PREFIX)
    }
    for key in ("activity", "worker"):
        if not doc.get(key):
            doc.pop(key, None)
    return Task(
        doc=doc,
        worker_id=record.get("worker_id"),
        last_worker_ping=from_epoch(record.get("last_worker_ping")),
        last_updated=from_epoch(record.get("last_updated")),
        worker_reported=bool(record.get("worker_reported")),
    )


def _worker_doc(fields: dict) -> dict:
    doc = dict(fields)
    if "supported_types" in doc:
        doc["supported_types"] = list(doc["supported_types"])
    if "last_activity" in doc:
        doc["last_activity"] = to_epoch(doc["last_activity"])
    for flag in ("lazy_status_request", "approved"):
        if flag in doc:
            doc[flag] = bool(doc[flag])
    return doc


def _worker_from_doc(doc: dict) -> Worker:
    fields = {field: doc[field] for field in _WORKER_FIELDS if field in doc}
    fields["supported_types"] = tuple(fields.get("supported_types") or ())
    fields["last_activity"] = from_epoch(fields.get("last_activity"))
    fields["lazy_status_request"] = bool(fields.get("lazy_status_request"))
    fields["approved"] = bool(fields.get("approved", True))  # records from before approval
    return Worker(id=doc["_id"], secret_hash=bytes(doc["secret_hash"]), **fields)
