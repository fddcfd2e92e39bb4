"""Task and Worker documents of the MongoDB store: the shared mapping (`mapping`) in the
form of MongoDB documents, with the `_fm_` helper fields that never leave the store."""

from __future__ import annotations

from datetime import datetime

from flamenco.documents import LOCAL_TASK_FIELDS, Task, Worker
from flamenco.store.mapping import (
    LOCAL_DOC_KEYS, LocalTask, merge_server_task, task_from_stored, worker_from_values,
    worker_values,
)
from flamenco.timefmt import to_epoch

HELPER_PREFIX = "_fm_"


def _without_helpers(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if not key.startswith(HELPER_PREFIX)}


def _task_record(doc: dict, old: dict | None, now: datetime, unacknowledged: bool) -> dict:
    """The stored form of Server task `doc`, keeping the local state of `old`
    (`unacknowledged`: the task has updates queued)."""
    local = None if old is None else LocalTask(
        old["status"], old.get("activity") or "", old.get("worker") or "", old.get("_etag"))
    merged = merge_server_task(doc, local, unacknowledged=unacknowledged)
    record = _without_helpers(merged.server_doc)
    if old is not None:
        for key in LOCAL_TASK_FIELDS:
            if key in old:
                record[key] = old[key]
    record.update(
        status=merged.status,
        activity=merged.activity,
        worker=merged.worker,
        last_updated=to_epoch(now),
        _fm_type=merged.schedule_type,
        _fm_job_priority=merged.job_priority,
        _fm_priority=merged.priority,
        _fm_unfinished_parents=(old or {}).get("_fm_unfinished_parents", 0),
        _fm_claims=(old or {}).get("_fm_claims", 0),
    )
    return record


def _task_from_record(record: dict) -> Task:
    server_doc = {
        key: value for key, value in _without_helpers(record).items()
        if key not in LOCAL_TASK_FIELDS and key not in LOCAL_DOC_KEYS
    }
    return task_from_stored(
        server_doc, record["status"], record.get("activity"), record.get("worker"),
        worker_id=record.get("worker_id"), last_worker_ping=record.get("last_worker_ping"),
        last_updated=record.get("last_updated"), worker_reported=record.get("worker_reported"))


def _worker_doc(fields: dict) -> dict:
    """Worker attributes as document fields; the ID is the document's `_id`."""
    doc = worker_values(fields)
    if "id" in doc:
        doc["_id"] = doc.pop("id")
    return doc


def _worker_from_doc(doc: dict) -> Worker:
    return worker_from_values(dict(doc, id=doc["_id"]))
