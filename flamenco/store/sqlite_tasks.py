"""The tasks of the embedded store: downloads merged in, the next task handed out, the
bookkeeping of the Workers' pings (table `tasks` and its parent graph `task_parents`)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING

from flamenco import statuses
from flamenco.documents import Task, Worker
from flamenco.store.mapping import LocalTask, hand_out_key, merge_server_task, task_parents
from flamenco.store.sqlite_connection import SQLitePart, sqlite_call
from flamenco.store.sqlite_rows import (
    ACTIVE_SQL, COMPLETED, SCHEDULABLE_SQL, TASK_COLUMNS, sql_text, task_from_row,
)
from flamenco.timefmt import to_epoch

if TYPE_CHECKING:
    from flamenco.store.farm_sqlite import SQLiteFarm

#: The best schedulable task of one type (an index seek on `tasks_schedulable`); the farm
#: part's exclusion SQL goes in the `{exclusion}` slot, `?` = the schedule type, then its
#: parameters.
NEXT_TASK_SQL = (
    "SELECT id, job_priority, priority FROM tasks"
    f" WHERE schedule_type = ? AND {SCHEDULABLE_SQL}{{exclusion}}"
    " ORDER BY job_priority DESC, priority DESC, id LIMIT 1"
)
#: The task a Worker was handed and has not reported on (`?` = Worker ID, handed out since).
RESUMABLE_TASK_SQL = (
    f"SELECT id FROM tasks WHERE worker_id = ? AND {ACTIVE_SQL}"
    " AND worker_reported = 0 AND last_worker_ping >= ? ORDER BY id LIMIT 1"
)


class SQLiteTasks(SQLitePart):
    """The task methods of `SQLiteStore`."""

    farm: SQLiteFarm

    @sqlite_call
    def store_server_tasks(self, docs: list[dict], now: datetime) -> None:
        with self._transaction() as cursor:
            for doc in docs:
                self._upsert_server_task(cursor, doc, now)

    def _upsert_server_task(self, cursor: sqlite3.Cursor, doc: dict, now: datetime) -> None:
        task_id = doc["_id"]
        parents = task_parents(doc)
        existing = cursor.execute(
            "SELECT status, activity, worker, doc FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        old_doc: dict | None = None
        local = None
        unacknowledged = False
        if existing is not None:
            old_doc = json.loads(existing[3])
            local = LocalTask(existing[0], existing[1], existing[2], old_doc.get("_etag"))
            unacknowledged = cursor.execute(
                "SELECT 1 FROM task_updates WHERE task_id = ? LIMIT 1", (task_id,)
            ).fetchone() is not None
        merged = merge_server_task(doc, local, unacknowledged=unacknowledged)
        values = dict(
            id=task_id, status=merged.status, activity=merged.activity, worker=merged.worker,
            doc=json.dumps(merged.server_doc, separators=(",", ":")),
            schedule_type=merged.schedule_type, job_priority=merged.job_priority,
            priority=merged.priority, last_updated=now.timestamp(),
        )
        if old_doc is None:
            cursor.executemany(
                "INSERT OR IGNORE INTO task_parents (child, parent) VALUES (?, ?)",
                [(task_id, parent) for parent in parents],
            )
            cursor.execute(
                "INSERT INTO tasks (id, status, activity, worker, doc, schedule_type,"
                " job_priority, priority, last_updated)"
                " VALUES (:id, :status, :activity, :worker, :doc, :schedule_type,"
                " :job_priority, :priority, :last_updated)",
                values,
            )
            return
        cursor.execute(
            "UPDATE tasks SET status = :status, activity = :activity, worker = :worker,"
            " doc = :doc, schedule_type = :schedule_type, job_priority = :job_priority,"
            " priority = :priority, last_updated = :last_updated WHERE id = :id",
            values,
        )
        if parents != (old_doc.get("parents") or []):
            self._replace_parents(cursor, task_id, parents)

    @staticmethod
    def _replace_parents(cursor: sqlite3.Cursor, task_id: str, parents: list[str]) -> None:
        cursor.execute("DELETE FROM task_parents WHERE child = ?", (task_id,))
        cursor.executemany(
            "INSERT OR IGNORE INTO task_parents (child, parent) VALUES (?, ?)",
            [(task_id, parent) for parent in parents],
        )
        cursor.execute(
            "UPDATE tasks SET unfinished_parents = ("
            " SELECT count(*) FROM task_parents tp JOIN tasks p ON p.id = tp.parent"
            f" WHERE tp.child = :id AND p.status != {COMPLETED}) WHERE id = :id",
            {"id": task_id},
        )

    @sqlite_call
    def get_task(self, task_id: str) -> Task | None:
        rows = self._query(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        return task_from_row(rows[0]) if rows else None

    @sqlite_call
    def claim_task(self, worker: Worker, now: datetime,
                   resume_since: datetime | None = None) -> Task | None:
        with self._transaction() as cursor:
            row = cursor.execute(
                RESUMABLE_TASK_SQL, (worker.id, to_epoch(resume_since) if resume_since else 0),
            ).fetchone()
            if row is None:
                row = self._best_schedulable(
                    cursor, worker.supported_types,
                    self.farm.claim_exclusion(cursor, worker.id, now))
            if row is None:
                return None
            cursor.execute(
                f"UPDATE tasks SET status = {sql_text(statuses.ACTIVE)}, worker_id = ?,"
                " last_worker_ping = ?, worker = ?, worker_reported = 0 WHERE id = ?",
                (worker.id, now.timestamp(), worker.identifier, row[0]),
            )
            found = cursor.execute(
                f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (row[0],)
            ).fetchone()
        return task_from_row(found)

    @staticmethod
    def _best_schedulable(cursor: sqlite3.Cursor, types: tuple[str, ...],
                          exclusion: tuple[str, list] = ("", [])) -> tuple | None:
        # One index seek per supported type, then the best of those few candidates.
        # `exclusion` (SQL, parameters) leaves out what this worker may not get (§5.2).
        candidates = []
        for schedule_type in set(types):
            row = cursor.execute(
                NEXT_TASK_SQL.format(exclusion=exclusion[0]), (schedule_type, *exclusion[1]),
            ).fetchone()
            if row is not None:
                candidates.append(row)
        if not candidates:
            return None
        return min(candidates, key=lambda row: hand_out_key(row[1], row[2], row[0]))

    @sqlite_call
    def set_task_status(self, task_id: str, status: str, only_from=None) -> bool:
        with self._transaction() as cursor:
            if only_from is None:
                cursor.execute("UPDATE tasks SET status = ? WHERE id = ?", (status, task_id))
            else:
                allowed = list(only_from)
                cursor.execute(
                    "UPDATE tasks SET status = ? WHERE id = ?"
                    f" AND status IN ({', '.join('?' for _ in allowed)})",
                    [status, task_id, *allowed],
                )
            return cursor.rowcount > 0

    @sqlite_call
    def ping_task(self, task_id: str, worker_id: str, now: datetime) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                "UPDATE tasks SET last_worker_ping = ?, worker_id = ?, worker_reported = 1"
                " WHERE id = ?",
                (now.timestamp(), worker_id, task_id),
            )

    @sqlite_call
    def tasks_of_worker(self, worker_id: str, status: str) -> list[Task]:
        rows = self._query(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE worker_id = ? AND status = ? ORDER BY id",
            (worker_id, status),
        )
        return [task_from_row(row) for row in rows]

    @sqlite_call
    def stale_active_tasks(self, cutoff: datetime) -> list[Task]:
        rows = self._query(
            f"SELECT {TASK_COLUMNS} FROM tasks WHERE {ACTIVE_SQL}"
            " AND (last_worker_ping IS NULL OR last_worker_ping < ?) ORDER BY id",
            (cutoff.timestamp(),),
        )
        return [task_from_row(row) for row in rows]

    @sqlite_call
    def count_tasks(self) -> int:
        return self._query("SELECT count(*) FROM tasks")[0][0]

    @sqlite_call
    def erase_tasks(self) -> int:
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM task_parents")
            cursor.execute("DELETE FROM tasks")
            return cursor.rowcount
