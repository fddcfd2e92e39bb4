"""The operator view's store calls on SQLite: task list, queue depth, forgetting a Worker."""

from __future__ import annotations

from flamenco.documents import Task


class SQLiteFarmViews:
    """Mixed into `SQLiteStore`; uses its `_query` and the row decoding of `sqlite.py`."""

    def list_tasks(self, status: str | None = None, task_type: str | None = None,
                   job: str | None = None, offset: int = 0, limit: int = 50):
        from flamenco.store.sqlite import _deferred

        return _deferred(SQLiteFarmViews._list_tasks)(self, status, task_type, job, offset, limit)

    def task_counts(self):
        from flamenco.store.sqlite import _deferred

        return _deferred(SQLiteFarmViews._task_counts)(self)

    def delete_worker(self, worker_id: str):
        # With its blocklist entries, quarantine and sleep schedule: the farm part knows them.
        return self.farm.remove_worker(worker_id)

    def _task_filter(self, status, task_type, job) -> tuple[str, list]:
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

    def _list_tasks(self, status: str | None, task_type: str | None, job: str | None,
                    offset: int, limit: int) -> tuple[list[Task], int]:
        from flamenco.store.sqlite import _TASK_COLUMNS, _task_from_row

        where, params = self._task_filter(status, task_type, job)
        total = self._query(f"SELECT count(*) FROM tasks{where}", params)[0][0]
        rows = self._query(f"SELECT {_TASK_COLUMNS} FROM tasks{where} ORDER BY id LIMIT ? OFFSET ?",
                           [*params, limit, offset])
        return [_task_from_row(row) for row in rows], total

    def _task_counts(self) -> list[tuple[str, str, int]]:
        rows = self._query("SELECT status, schedule_type, count(*) FROM tasks"
                           " GROUP BY status, schedule_type ORDER BY status, schedule_type")
        return [(status, task_type, count) for status, task_type, count in rows]
