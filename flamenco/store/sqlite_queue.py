"""The outgoing update queue of the embedded store (table `task_updates`, in arrival order)."""

from __future__ import annotations

import json
from datetime import datetime

from flamenco.documents import TaskUpdate
from flamenco.store.farm import LogMark
from flamenco.store.farm_sqlite import store_log_mark
from flamenco.store.interface import task_changes_for_update
from flamenco.store.sqlite_connection import SQLitePart, sqlite_call


class SQLiteUpdateQueue(SQLitePart):
    """The queue methods of `SQLiteStore`."""

    @sqlite_call
    def queue_update(
        self, update: TaskUpdate, worker_id: str | None = None, ping: datetime | None = None,
        from_worker: bool = False, log_mark: LogMark | None = None,
    ) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                "INSERT INTO task_updates (id, task_id, doc) VALUES (?, ?, ?)",
                (update.id, update.task_id,
                 json.dumps(update.to_upstream(), separators=(",", ":"))),
            )
            if log_mark is not None:
                store_log_mark(cursor, update.task_id, log_mark)
            row = cursor.execute(
                "SELECT status FROM tasks WHERE id = ?", (update.task_id,)
            ).fetchone()
            if row is None:
                return
            changes = task_changes_for_update(update, row[0], worker_id, ping, from_worker)
            assignments = ", ".join(f"{column} = :{column}" for column in changes)
            cursor.execute(
                f"UPDATE tasks SET {assignments} WHERE id = :task_id",
                dict(changes, task_id=update.task_id),
            )

    @sqlite_call
    def queued_updates(self, limit: int) -> list[TaskUpdate]:
        rows = self._query("SELECT doc FROM task_updates ORDER BY seq LIMIT ?", (limit,))
        return [TaskUpdate.from_upstream(json.loads(row[0])) for row in rows]

    @sqlite_call
    def count_queued_updates(self) -> int:
        return self._query("SELECT count(*) FROM task_updates")[0][0]

    @sqlite_call
    def ack_updates(self, update_ids: list[str]) -> int:
        removed = 0
        with self._transaction() as cursor:
            for start in range(0, len(update_ids), 500):
                chunk = list(update_ids[start:start + 500])
                cursor.execute(
                    f"DELETE FROM task_updates WHERE id IN ({', '.join('?' for _ in chunk)})",
                    chunk,
                )
                removed += cursor.rowcount
        return removed

    @sqlite_call
    def purge_queue(self) -> int:
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM task_updates")
            return cursor.rowcount
