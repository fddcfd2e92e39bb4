"""The jobs part of the embedded store: table `jobs` (schema 020), a `SQLitePart` on the
`SQLiteStore`'s connection, so its writes join the store's group commit."""

from __future__ import annotations

import json

from zope.interface import implementer

from flamenco.store.jobs import UPDATABLE, IJobStore, Job
from flamenco.store.mapping import stored_time
from flamenco.store.sqlite_connection import SQLitePart, sqlite_call
from flamenco.store.sqlite_rows import TASK_COLUMNS, task_from_row

_JOB_COLUMNS = ("id", "name", "type", "priority", "status", "settings", "submitter_platform",
                "created", "updated")
_BY_JOB = "json_extract(doc, '$.job')"


def _job_from_row(row: tuple) -> Job:
    fields = dict(zip(_JOB_COLUMNS, row, strict=True))
    fields["settings"] = json.loads(fields["settings"])
    fields["created"] = stored_time(fields["created"])
    fields["updated"] = stored_time(fields["updated"])
    return Job(**fields)


def _column_value(name: str, value):
    return value.timestamp() if name in ("created", "updated") else value


@implementer(IJobStore)
class SQLiteJobStore(SQLitePart):
    @sqlite_call
    def add_job(self, job: Job) -> None:
        values = {name: _column_value(name, getattr(job, name)) for name in _JOB_COLUMNS}
        values["settings"] = json.dumps(job.settings, separators=(",", ":"))
        with self._transaction() as cursor:
            cursor.execute(
                f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)})"
                f" VALUES ({', '.join(':' + name for name in _JOB_COLUMNS)})", values)

    @sqlite_call
    def get_job(self, job_id: str) -> Job | None:
        rows = self._query(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE id = ?",
                                 (job_id,))
        return _job_from_row(rows[0]) if rows else None

    @sqlite_call
    def list_jobs(self, status: str | None = None) -> list[Job]:
        columns = ", ".join(_JOB_COLUMNS)
        if status is None:
            rows = self._query(f"SELECT {columns} FROM jobs ORDER BY id")
        else:
            rows = self._query(
                f"SELECT {columns} FROM jobs WHERE status = ? ORDER BY id", (status,))
        return [_job_from_row(row) for row in rows]

    @sqlite_call
    def update_job(self, job_id: str, changes: dict, only_from=None) -> bool:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise TypeError(f"job fields that cannot be updated: {sorted(unknown)}")
        values = {name: _column_value(name, value) for name, value in changes.items()}
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        condition = ""
        if only_from is not None:
            allowed = {f"from{index}": status for index, status in enumerate(only_from)}
            condition = f" AND status IN ({', '.join(':' + key for key in allowed)})"
            values.update(allowed)
        with self._transaction() as cursor:
            cursor.execute(f"UPDATE jobs SET {assignments} WHERE id = :job_id{condition}",
                           dict(values, job_id=job_id))
            return cursor.rowcount > 0

    @sqlite_call
    def job_tasks(self, job_id: str) -> list:
        rows = self._query(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE {_BY_JOB} = ? ORDER BY id", (job_id,))
        return [task_from_row(row) for row in rows]

    @sqlite_call
    def delete_job(self, job_id: str) -> bool:
        with self._transaction() as cursor:
            cursor.execute(f"DELETE FROM tasks WHERE {_BY_JOB} = ?", (job_id,))
            cursor.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            return cursor.rowcount > 0

    @sqlite_call
    def task_counts(self) -> dict[str, dict[str, int]]:
        rows = self._query(
            f"SELECT {_BY_JOB}, status, count(*) FROM tasks"
            f" WHERE {_BY_JOB} IN (SELECT id FROM jobs) GROUP BY 1, 2")
        counts: dict[str, dict[str, int]] = {}
        for job_id, status, count in rows:
            counts.setdefault(job_id, {})[status] = count
        return counts
