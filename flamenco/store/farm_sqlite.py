"""`IFarmStore` on the embedded SQLite store (tables of `schema/010-farm.sql`)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from zope.interface import implementer

from flamenco import statuses
from flamenco.store.farm import (
    BlocklistEntry, IFarmStore, LogMark, OldTask, Quarantine, SleepSchedule,
)
from flamenco.store.mapping import stored_time
from flamenco.store.sqlite_connection import SQLitePart, sqlite_call
from flamenco.store.sqlite_rows import sql_text
from flamenco.timefmt import from_epoch, to_epoch


def _schedule(row) -> SleepSchedule:
    worker_id, active, days, start, end, next_check = row
    return SleepSchedule(worker_id, bool(active), tuple(days.split()), start, end,
                         from_epoch(next_check))


def _quarantine(row) -> Quarantine:
    worker_id, reason, since, released = row
    return Quarantine(worker_id, reason, stored_time(since),
                      from_epoch(released))


def store_log_mark(cursor: sqlite3.Cursor, task_id: str, mark: LogMark) -> None:
    """Write a task's log mark in the transaction of `cursor`."""
    cursor.execute(
        "INSERT INTO task_logs (task_id, job_id, length, digest) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (task_id) DO UPDATE SET job_id = excluded.job_id,"
        " length = excluded.length, digest = excluded.digest",
        (task_id, mark.job_id, mark.length, mark.digest))


@implementer(IFarmStore)
class SQLiteFarm(SQLitePart):
    def claim_exclusion(self, cursor, worker_id: str, now: datetime) -> tuple[str, list]:
        """SQL to AND into the next-task query, with its parameters: not a task this Worker
        failed, nor one of a (job, type) it is blocklisted for. Empty for the usual Worker
        with neither, which keeps the query a plain index seek."""
        if cursor.execute(
                "SELECT 1 FROM task_failures WHERE worker_id = ? UNION ALL"
                " SELECT 1 FROM blocklist WHERE worker_id = ? AND expires > ? LIMIT 1",
                (worker_id, worker_id, now.timestamp())).fetchone() is None:
            return "", []
        return (
            " AND NOT EXISTS (SELECT 1 FROM task_failures f"
            "  WHERE f.task_id = tasks.id AND f.worker_id = ?)"
            " AND NOT EXISTS (SELECT 1 FROM blocklist b WHERE b.worker_id = ?"
            "  AND b.job_id = json_extract(tasks.doc, '$.job')"
            "  AND b.task_type = tasks.schedule_type AND b.expires > ?)",
            [worker_id, worker_id, now.timestamp()],
        )

    # -- failures --------------------------------------------------------------------------------
    @sqlite_call
    def record_failure(self, task_id, worker_id, identifier, job_id, task_type, now):
        with self._transaction() as cursor:
            cursor.execute(
                "INSERT OR IGNORE INTO task_failures"
                " (task_id, worker_id, identifier, job_id, task_type, failed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (task_id, worker_id, identifier, job_id, task_type, now.timestamp()))
        return self._failers(task_id)

    @sqlite_call
    def failers(self, task_id):
        return self._failers(task_id)

    @sqlite_call
    def clear_failures(self, task_id):
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM task_failures WHERE task_id = ?", (task_id,))

    def _failers(self, task_id) -> list[dict]:
        rows = self._query("SELECT worker_id, identifier FROM task_failures WHERE task_id = ?"
                           " ORDER BY failed_at, worker_id", (task_id,))
        return [{"id": worker_id, "identifier": identifier} for worker_id, identifier in rows]

    @sqlite_call
    def failed_tasks(self, worker_id, job_id, task_type):
        rows = self._query("SELECT task_id FROM task_failures WHERE worker_id = ? AND job_id = ?"
                           " AND task_type = ? ORDER BY task_id", (worker_id, job_id, task_type))
        return [row[0] for row in rows]

    @sqlite_call
    def jobs_failed_since(self, worker_id, since):
        return self._query("SELECT count(DISTINCT job_id) FROM task_failures"
                           " WHERE worker_id = ? AND failed_at > ?",
                           (worker_id, since.timestamp()))[0][0]

    # -- the blocklist ---------------------------------------------------------------------------
    @sqlite_call
    def add_blocklist_entry(self, entry: BlocklistEntry):
        with self._transaction() as cursor:
            cursor.execute(
                "INSERT OR REPLACE INTO blocklist"
                " (worker_id, job_id, task_type, reason, created, expires)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (entry.worker_id, entry.job_id, entry.task_type, entry.reason,
                 entry.created.timestamp(), entry.expires.timestamp()))

    @sqlite_call
    def blocklist(self, now):
        rows = self._query("SELECT worker_id, job_id, task_type, reason, created, expires"
                           " FROM blocklist WHERE expires > ? ORDER BY worker_id, job_id,"
                           " task_type", (now.timestamp(),))
        return [BlocklistEntry(w, j, t, r, from_epoch(c), from_epoch(e))
                for w, j, t, r, c, e in rows]

    @sqlite_call
    def blocklisted_workers(self, job_id, task_type, now):
        rows = self._query("SELECT worker_id FROM blocklist WHERE job_id = ? AND task_type = ?"
                           " AND expires > ?", (job_id, task_type, now.timestamp()))
        return {row[0] for row in rows}

    @sqlite_call
    def remove_blocklist_entry(self, worker_id, job_id, task_type):
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM blocklist WHERE worker_id = ? AND job_id = ?"
                           " AND task_type = ?", (worker_id, job_id, task_type))
            return cursor.rowcount > 0

    @sqlite_call
    def expire_blocklist(self, now):
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM blocklist WHERE expires <= ?", (now.timestamp(),))
            return cursor.rowcount

    # -- Workers ---------------------------------------------------------------------------------
    @sqlite_call
    def remove_worker(self, worker_id):
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM blocklist WHERE worker_id = ?", (worker_id,))
            cursor.execute("DELETE FROM quarantine WHERE worker_id = ?", (worker_id,))
            cursor.execute("DELETE FROM sleep_schedules WHERE worker_id = ?", (worker_id,))
            cursor.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
            return cursor.rowcount > 0

    # -- quarantine ------------------------------------------------------------------------------
    @sqlite_call
    def quarantine_of(self, worker_id):
        rows = self._query("SELECT worker_id, reason, since, released FROM quarantine"
                           " WHERE worker_id = ?", (worker_id,))
        return _quarantine(rows[0]) if rows else None

    @sqlite_call
    def set_quarantine(self, quarantine: Quarantine):
        with self._transaction() as cursor:
            cursor.execute(
                "INSERT OR REPLACE INTO quarantine (worker_id, reason, since, released)"
                " VALUES (?, ?, ?, ?)",
                (quarantine.worker_id, quarantine.reason, quarantine.since.timestamp(),
                 to_epoch(quarantine.released)))

    @sqlite_call
    def quarantined(self):
        rows = self._query("SELECT worker_id, reason, since, released FROM quarantine"
                           " WHERE released IS NULL ORDER BY worker_id")
        return [_quarantine(row) for row in rows]

    # -- sleep schedules ---------------------------------------------------------------------------
    _SCHEDULE_COLUMNS = "worker_id, active, days, time_start, time_end, next_check"

    @sqlite_call
    def sleep_schedule(self, worker_id):
        rows = self._query(f"SELECT {self._SCHEDULE_COLUMNS} FROM sleep_schedules"
                           " WHERE worker_id = ?", (worker_id,))
        return _schedule(rows[0]) if rows else None

    @sqlite_call
    def set_sleep_schedule(self, schedule: SleepSchedule):
        with self._transaction() as cursor:
            cursor.execute(
                f"INSERT OR REPLACE INTO sleep_schedules ({self._SCHEDULE_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (schedule.worker_id, int(schedule.active), " ".join(schedule.days_of_week),
                 schedule.time_start, schedule.time_end, to_epoch(schedule.next_check)))

    @sqlite_call
    def remove_sleep_schedule(self, worker_id):
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM sleep_schedules WHERE worker_id = ?", (worker_id,))
            return cursor.rowcount > 0

    @sqlite_call
    def sleep_schedules_due(self, now):
        rows = self._query(f"SELECT {self._SCHEDULE_COLUMNS} FROM sleep_schedules"
                           " WHERE active AND (next_check IS NULL OR next_check <= ?)"
                           " ORDER BY worker_id", (now.timestamp(),))
        return [_schedule(row) for row in rows]

    # -- task logs -------------------------------------------------------------------------------
    @sqlite_call
    def log_mark(self, task_id):
        rows = self._query("SELECT job_id, length, digest FROM task_logs WHERE task_id = ?",
                           (task_id,))
        return LogMark(*rows[0]) if rows else None

    @sqlite_call
    def set_log_mark(self, task_id, mark: LogMark):
        with self._transaction() as cursor:
            store_log_mark(cursor, task_id, mark)

    # -- housekeeping ----------------------------------------------------------------------------
    @sqlite_call
    def remove_old_tasks(self, cutoff, limit):
        with self._transaction() as cursor:
            rows = cursor.execute(
                "SELECT id, coalesce(json_extract(doc, '$.job'), '') FROM tasks"
                f" WHERE status != {sql_text(statuses.ACTIVE)}"
                " AND max(coalesce(last_worker_ping, 0), coalesce(last_updated, 0)) < ?"
                " AND NOT EXISTS (SELECT 1 FROM task_updates u WHERE u.task_id = tasks.id)"
                " ORDER BY id LIMIT ?", (cutoff.timestamp(), limit)).fetchall()
            ids = [row[0] for row in rows]
            marks = ", ".join("?" for _ in ids)
            for table, column in (("tasks", "id"), ("task_failures", "task_id"),
                                  ("task_logs", "task_id")):
                if ids:
                    cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({marks})", ids)
        return [OldTask(task_id, job_id) for task_id, job_id in rows]
