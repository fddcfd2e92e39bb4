"""The operator view's store calls on SQLite: task list, queue depth, forgetting a Worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flamenco.documents import Task
from flamenco.store.sqlite_connection import SQLitePart, sqlite_call
from flamenco.store.sqlite_rows import TASK_COLUMNS, task_from_row

if TYPE_CHECKING:
    from twisted.internet import defer

    from flamenco.store.farm_sqlite import SQLiteFarm


class SQLiteFarmViews(SQLitePart):
    """The view methods of `SQLiteStore`."""

    farm: SQLiteFarm

    @sqlite_call
    def list_tasks(self, status: str | None = None, task_type: str | None = None,
                   job: str | None = None, offset: int = 0,
                   limit: int = 50) -> tuple[list[Task], int]:
        where, params = self._task_filter(status, task_type, job)
        total = self._query(f"SELECT count(*) FROM tasks{where}", params)[0][0]
        rows = self._query(f"SELECT {TASK_COLUMNS} FROM tasks{where} ORDER BY id LIMIT ? OFFSET ?",
                           [*params, limit, offset])
        return [task_from_row(row) for row in rows], total

    @sqlite_call
    def task_counts(self) -> list[tuple[str, str, int]]:
        rows = self._query("SELECT status, schedule_type, count(*) FROM tasks"
                           " GROUP BY status, schedule_type ORDER BY status, schedule_type")
        return [(status, task_type, count) for status, task_type, count in rows]

    def delete_worker(self, worker_id: str) -> defer.Deferred:
        # With its blocklist entries, quarantine and sleep schedule: the farm part knows them.
        return self.farm.remove_worker(worker_id)

    @staticmethod
    def _task_filter(status: str | None, task_type: str | None,
                     job: str | None) -> tuple[str, list]:
        clauses, params = [], []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if task_type:
            clauses.append("schedule_type = ?")
            params.append(task_type)
        if job:
            clauses.append("json_extract(doc, '$.job') = ?")
            params.append(job)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params
