"""The embedded store: `IStore` on one SQLite file (`sqlite_connection` has the connection,
durability and group commit; the statements are in parts that share it)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from flamenco.documents import Worker
from flamenco.store.farm_sqlite import SQLiteFarm
from flamenco.store.interface import IStore, StoreUnusable
from flamenco.store.mapping import check_worker_changes
from flamenco.store.sqlite_connection import SYNC_MODES, SQLiteConnection, sqlite_call
from flamenco.store.sqlite_queue import SQLiteUpdateQueue
from flamenco.store.sqlite_rows import WORKER_COLUMNS, worker_from_row, worker_row
from flamenco.store.sqlite_tasks import SQLiteTasks
from flamenco.store.sqlite_views import SQLiteFarmViews

__all__ = ["SYNC_MODES", "SQLiteStore"]


@implementer(IStore)
class SQLiteStore(SQLiteTasks, SQLiteUpdateQueue, SQLiteFarmViews):
    def __init__(self, path: str, sync: str = "full", clock: IReactorTime | None = None):
        super().__init__(SQLiteConnection(path, sync, clock))
        self.path = path
        self.description = self.connection.description
        self.availability = self.connection.availability
        self.farm = SQLiteFarm(self.connection)

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> defer.Deferred:
        """A file that cannot be opened or is not a database will not become one: StoreUnusable."""
        try:
            self.connection.open()
        except sqlite3.Error as error:
            return defer.fail(StoreUnusable(str(error)))
        self.availability.opened()
        return defer.succeed(None)

    @sqlite_call
    def close(self) -> None:
        self.connection.close()

    # -- settings --------------------------------------------------------------------------------
    @sqlite_call
    def get_setting(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    @sqlite_call
    def set_setting(self, key: str, value: str | None) -> None:
        with self._transaction() as cursor:
            if value is None:
                cursor.execute("DELETE FROM settings WHERE key = ?", (key,))
            else:
                cursor.execute(
                    "INSERT INTO settings (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # -- leases ----------------------------------------------------------------------------------
    @sqlite_call
    def try_lease(self, name: str, holder: str, now: datetime, duration: timedelta) -> bool:
        with self._transaction() as cursor:
            row = cursor.execute(
                "SELECT holder, expires FROM leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] != holder and row[1] > now.timestamp():
                return False
            cursor.execute(
                "INSERT INTO leases (name, holder, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires = excluded.expires",
                (name, holder, (now + duration).timestamp()),
            )
            return True

    # -- workers ---------------------------------------------------------------------------------
    @sqlite_call
    def add_worker(self, worker: Worker) -> None:
        row = worker_row(worker)
        with self._transaction() as cursor:
            cursor.execute(
                f"INSERT INTO workers ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )

    @sqlite_call
    def get_worker(self, worker_id: str) -> Worker | None:
        rows = self._query(f"SELECT {WORKER_COLUMNS} FROM workers WHERE id = ?", (worker_id,))
        return worker_from_row(rows[0]) if rows else None

    @sqlite_call
    def update_worker(self, worker_id: str, **changes) -> bool:
        if not changes:
            return bool(self._query("SELECT 1 FROM workers WHERE id = ?", (worker_id,)))
        check_worker_changes(changes)
        row = worker_row(changes)
        assignments = ", ".join(f"{field} = ?" for field in row)
        with self._transaction() as cursor:
            cursor.execute(
                f"UPDATE workers SET {assignments} WHERE id = ?", [*row.values(), worker_id]
            )
            return cursor.rowcount > 0

    @sqlite_call
    def count_workers(self) -> int:
        return self._query("SELECT count(*) FROM workers")[0][0]

    @sqlite_call
    def list_workers(self) -> list[Worker]:
        rows = self._query(f"SELECT {WORKER_COLUMNS} FROM workers ORDER BY id")
        return [worker_from_row(row) for row in rows]
