"""The SQLite spelling of the shared mapping (`mapping`): rows to domain objects and back,
and the status predicates of the queries, generated from `flamenco.statuses`.

A partial index is used only by a query whose WHERE clause repeats the index's own condition
term for term, so `SCHEDULABLE_SQL` must read exactly as the condition of the
`tasks_schedulable` index in `schema/001-initial.sql` (which cannot import Python);
`tests/test_store_sqlite.py` checks that the two agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flamenco import statuses
from flamenco.documents import Task, Worker
from flamenco.store.mapping import (
    WORKER_FIELDS, task_from_stored, worker_fields, worker_from_values, worker_values,
)


def sql_text(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(values: Iterable[str]) -> str:
    return "(" + ", ".join(sql_text(value) for value in values) + ")"


#: A task `/task` may hand out (the condition of the `tasks_schedulable` index).
SCHEDULABLE_SQL = f"status IN {sql_in(statuses.SCHEDULABLE)} AND unfinished_parents = 0"
#: A task being worked on (the condition of the `tasks_active_by_ping` index).
ACTIVE_SQL = f"status = {sql_text(statuses.ACTIVE)}"
COMPLETED = sql_text(statuses.COMPLETED)

TASK_COLUMNS = ("id, doc, status, activity, worker, worker_id, last_worker_ping, last_updated,"
                " worker_reported")
WORKER_COLUMNS = ", ".join(WORKER_FIELDS)


def task_from_row(row: tuple) -> Task:
    """A row of `TASK_COLUMNS` as a Task."""
    task_id, doc, status, activity, worker, worker_id, ping, updated, reported = row
    return task_from_stored(json.loads(doc), status, activity, worker, worker_id=worker_id,
                            last_worker_ping=ping, last_updated=updated,
                            worker_reported=reported)


def worker_row(fields: Worker | Mapping[str, Any]) -> dict[str, Any]:
    """A Worker (or some of its attributes) as column values."""
    values = worker_values(worker_fields(fields) if isinstance(fields, Worker) else fields)
    if "supported_types" in values:
        values["supported_types"] = json.dumps(values["supported_types"])
    return values


def worker_from_row(row: tuple) -> Worker:
    """A row of `WORKER_COLUMNS` as a Worker."""
    values = dict(zip(WORKER_FIELDS, row, strict=True))
    values["supported_types"] = json.loads(values["supported_types"])
    return worker_from_values(values)
