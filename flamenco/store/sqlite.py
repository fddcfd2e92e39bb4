"""The embedded store: one SQLite file in WAL mode, used from the reactor thread.

Statements are short index look-ups, so they run inline on the reactor thread (measured in
`bench/assign.py`). Durability (`database_sync`): with `full`, the default, every commit is
synced to disk (`synchronous=FULL`), so a 204 survives a power cut as it does on MongoDB with
`j: true`. The cost of a sync is shared by group commit: the writes of all requests handled in
one reactor iteration run in one transaction, committed at the start of the next iteration, and
each write's Deferred fires only after that commit. `normal` (`synchronous=NORMAL`) survives a
crash or `kill -9` but not a power cut in the instant after a commit; it commits each write at
once. Reads see the batch's writes before they are committed (one connection).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from datetime import datetime, timedelta
from importlib import resources
from typing import Iterator

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from flamenco import statuses
from flamenco.documents import Task, TaskUpdate, Worker
from flamenco.store.availability import Availability
from flamenco.store.interface import (
    IStore, StoreUnavailable, StoreUnusable, task_changes_for_update,
)
from flamenco.timefmt import from_epoch, to_epoch

_SCHEDULABLE_SQL = "status IN ('queued', 'claimed-by-manager', 'soft-failed') AND unfinished_parents = 0"
_TASK_COLUMNS = ("id, doc, status, activity, worker, worker_id, last_worker_ping, last_updated,"
                 " worker_reported")
_WORKER_FIELDS = (
    "id", "secret_hash", "nickname", "address", "platform", "supported_types", "generation",
    "status", "status_requested", "lazy_status_request", "current_task", "last_activity",
    "software", "approved",
)
_LOCAL_DOC_KEYS = ("status", "activity", "worker")


def _deferred(method):
    """Run a store method now; its result or a StoreUnavailable comes back as a Deferred, which
    for a method that wrote in a group-commit batch fires once the batch is committed."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        self._wrote = False
        try:
            result = method(self, *args, **kwargs)
        except sqlite3.Error as error:
            unavailable = StoreUnavailable(f"SQLite error: {error}")
            self.availability.failed(unavailable)
            return defer.fail(unavailable)
        if self._wrote and self._batch_open:
            waiter: defer.Deferred = defer.Deferred()
            self._waiters.append((waiter, result))
            return waiter
        self.availability.succeeded()
        return defer.succeed(result)

    return wrapper


def schema_scripts() -> list[tuple[int, str]]:
    """The versioned schema files, as (version, SQL) in order."""
    folder = resources.files("flamenco.store") / "schema"
    scripts = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            scripts.append((int(entry.name.split("-", 1)[0]), entry.read_text("utf-8")))
    return sorted(scripts)


#: `database_sync` values: the PRAGMA synchronous level, and whether writes are group-committed.
SYNC_MODES = {"full": ("FULL", True), "normal": ("NORMAL", False)}


@implementer(IStore)
class SQLiteStore:
    def __init__(self, path: str, sync: str = "full", clock: IReactorTime | None = None):
        if clock is None:
            from twisted.internet import reactor as clock
        self.path = path
        self.description = f"sqlite:{path}"
        self._synchronous, self._group_commit = SYNC_MODES[sync]
        self._clock = clock
        self.availability = Availability(self.description)
        self._db: sqlite3.Connection | None = None
        self._batching = False  # group commit in force (after open)
        self._batch_open = False
        self._wrote = False
        self._waiters: list[tuple[defer.Deferred, object]] = []

    # -- lifecycle -------------------------------------------------------------------------------
    def open(self) -> defer.Deferred:
        """A file that cannot be opened or is not a database will not become one: StoreUnusable."""
        try:
            self._open()
        except sqlite3.Error as error:
            return defer.fail(StoreUnusable(str(error)))
        self.availability.opened()
        return defer.succeed(None)

    def _open(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 2000")
            self._db = db
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for version, script in schema_scripts():
                if version > current:
                    with self._transaction() as cursor:
                        for statement in _split_sql(script):
                            cursor.execute(statement)
                        cursor.execute(f"PRAGMA user_version = {version:d}")
        except BaseException:
            self._db = None
            db.close()
            raise
        self._batching = self._group_commit

    @_deferred
    def close(self) -> None:
        self._commit_batch()
        self._batching = False
        self.availability.closed()
        if self._db is not None:
            self._db.close()
            self._db = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        """One atomic write: a transaction of its own, or a savepoint in the open batch."""
        if self._db is None:
            raise sqlite3.OperationalError("the database is not open")
        self._wrote = True
        cursor = self._db.cursor()
        if not self._batching:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return
        if not self._batch_open:
            cursor.execute("BEGIN IMMEDIATE")
            self._batch_open = True
            self._clock.callLater(0, self._commit_batch)
        cursor.execute("SAVEPOINT write")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK TO write")
            cursor.execute("RELEASE write")
            raise
        cursor.execute("RELEASE write")

    def _commit_batch(self) -> None:
        """Commit the batch (one sync for all its writes), then answer each of them."""
        if not self._batch_open:
            return
        waiters, self._waiters, self._batch_open = self._waiters, [], False
        try:
            if self._db is None:
                raise sqlite3.OperationalError("the database was closed")
            self._db.execute("COMMIT")
        except sqlite3.Error as error:
            if self._db is not None and self._db.in_transaction:
                self._db.execute("ROLLBACK")
            unavailable = StoreUnavailable(f"SQLite error at commit: {error}")
            self.availability.failed(unavailable)
            for waiter, _ in waiters:
                waiter.errback(unavailable)
            return
        self.availability.succeeded()
        for waiter, result in waiters:
            waiter.callback(result)

    def _query(self, sql: str, params=()) -> list[tuple]:
        if self._db is None:
            raise sqlite3.OperationalError("the database is not open")
        return self._db.execute(sql, params).fetchall()

    # -- settings --------------------------------------------------------------------------------
    @_deferred
    def get_setting(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    @_deferred
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
    @_deferred
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
    @_deferred
    def add_worker(self, worker: Worker) -> None:
        row = _worker_row(worker)
        with self._transaction() as cursor:
            cursor.execute(
                f"INSERT INTO workers ({', '.join(_WORKER_FIELDS)})"
                f" VALUES ({', '.join('?' for _ in _WORKER_FIELDS)})",
                [row[field] for field in _WORKER_FIELDS],
            )

    @_deferred
    def get_worker(self, worker_id: str) -> Worker | None:
        rows = self._query(
            f"SELECT {', '.join(_WORKER_FIELDS)} FROM workers WHERE id = ?", (worker_id,)
        )
        return _worker_from_row(rows[0]) if rows else None

    @_deferred
    def update_worker(self, worker_id: str, **changes) -> bool:
        if not changes:
            return bool(self._query("SELECT 1 FROM workers WHERE id = ?", (worker_id,)))
        row = _worker_row(changes)
        unknown = set(row) - set(_WORKER_FIELDS[1:])
        if unknown:
            raise TypeError(f"unknown worker fields: {sorted(unknown)}")
        assignments = ", ".join(f"{field} = ?" for field in row)
        with self._transaction() as cursor:
            cursor.execute(
                f"UPDATE workers SET {assignments} WHERE id = ?", [*row.values(), worker_id]
            )
            return cursor.rowcount > 0

    @_deferred
    def count_workers(self) -> int:
        return self._query("SELECT count(*) FROM workers")[0][0]

    @_deferred
    def list_workers(self) -> list[Worker]:
        rows = self._query(f"SELECT {', '.join(_WORKER_FIELDS)} FROM workers ORDER BY id")
        return [_worker_from_row(row) for row in rows]

    # -- tasks -----------------------------------------------------------------------------------
    @_deferred
    def store_server_tasks(self, docs: list[dict], now: datetime) -> None:
        with self._transaction() as cursor:
            for doc in docs:
                self._upsert_server_task(cursor, doc, now)

    def _upsert_server_task(self, cursor: sqlite3.Cursor, doc: dict, now: datetime) -> None:
        task_id = doc["_id"]
        server_doc = {key: value for key, value in doc.items() if key not in _LOCAL_DOC_KEYS}
        status = doc["status"]
        activity = doc.get("activity") or ""
        worker = doc.get("worker") or ""
        parents = list(dict.fromkeys(doc.get("parents") or []))
        existing = cursor.execute(
            "SELECT status, activity, worker, doc FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        values = dict(
            doc=json.dumps(server_doc, separators=(",", ":")),
            schedule_type=doc.get("task_type") or doc.get("job_type") or "",
            job_priority=int(doc.get("job_priority") or 0),
            priority=int(doc.get("priority") or 0),
            last_updated=now.timestamp(),
        )
        if existing is None:
            cursor.executemany(
                "INSERT OR IGNORE INTO task_parents (child, parent) VALUES (?, ?)",
                [(task_id, parent) for parent in parents],
            )
            cursor.execute(
                "INSERT INTO tasks (id, status, activity, worker, doc, schedule_type,"
                " job_priority, priority, last_updated)"
                " VALUES (:id, :status, :activity, :worker, :doc, :schedule_type,"
                " :job_priority, :priority, :last_updated)",
                dict(values, id=task_id, status=status, activity=activity, worker=worker),
            )
            return
        local_status, local_activity, local_worker, old_doc = existing
        unacknowledged = cursor.execute(
            "SELECT 1 FROM task_updates WHERE task_id = ? LIMIT 1", (task_id,)
        ).fetchone() is not None
        same_etag = doc.get("_etag") == json.loads(old_doc).get("_etag")
        if statuses.local_status_prevails(local_status, status, unacknowledged=unacknowledged,
                                          same_etag=same_etag):
            status, activity, worker = local_status, local_activity, local_worker
        cursor.execute(
            "UPDATE tasks SET status = :status, activity = :activity, worker = :worker,"
            " doc = :doc, schedule_type = :schedule_type, job_priority = :job_priority,"
            " priority = :priority, last_updated = :last_updated WHERE id = :id",
            dict(values, id=task_id, status=status, activity=activity or local_activity,
                 worker=worker or local_worker),
        )
        if parents != (json.loads(old_doc).get("parents") or []):
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
            " WHERE tp.child = :id AND p.status != 'completed') WHERE id = :id",
            {"id": task_id},
        )

    @_deferred
    def get_task(self, task_id: str) -> Task | None:
        rows = self._query(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        return _task_from_row(rows[0]) if rows else None

    @_deferred
    def claim_task(self, worker: Worker, now: datetime,
                   resume_since: datetime | None = None) -> Task | None:
        with self._transaction() as cursor:
            row = cursor.execute(
                "SELECT id FROM tasks WHERE worker_id = ? AND status = 'active'"
                " AND worker_reported = 0 AND last_worker_ping >= ? ORDER BY id LIMIT 1",
                (worker.id, to_epoch(resume_since) if resume_since else 0),
            ).fetchone()
            if row is None:
                row = self._best_schedulable(cursor, worker.supported_types)
            if row is None:
                return None
            cursor.execute(
                "UPDATE tasks SET status = 'active', worker_id = ?, last_worker_ping = ?,"
                " worker = ?, worker_reported = 0 WHERE id = ?",
                (worker.id, now.timestamp(), worker.identifier, row[0]),
            )
            found = cursor.execute(
                f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ?", (row[0],)
            ).fetchone()
        return _task_from_row(found)

    @staticmethod
    def _best_schedulable(cursor: sqlite3.Cursor, types: tuple[str, ...]) -> tuple | None:
        # One index seek per supported type, then the best of those few candidates.
        candidates = []
        for schedule_type in set(types):
            row = cursor.execute(
                "SELECT id, job_priority, priority FROM tasks"
                f" WHERE schedule_type = ? AND {_SCHEDULABLE_SQL}"
                " ORDER BY job_priority DESC, priority DESC, id LIMIT 1",
                (schedule_type,),
            ).fetchone()
            if row is not None:
                candidates.append(row)
        if not candidates:
            return None
        return min(candidates, key=lambda row: (-row[1], -row[2], row[0]))

    @_deferred
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

    @_deferred
    def ping_task(self, task_id: str, worker_id: str, now: datetime) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                "UPDATE tasks SET last_worker_ping = ?, worker_id = ?, worker_reported = 1"
                " WHERE id = ?",
                (now.timestamp(), worker_id, task_id),
            )

    @_deferred
    def tasks_of_worker(self, worker_id: str, status: str) -> list[Task]:
        rows = self._query(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE worker_id = ? AND status = ? ORDER BY id",
            (worker_id, status),
        )
        return [_task_from_row(row) for row in rows]

    @_deferred
    def stale_active_tasks(self, cutoff: datetime) -> list[Task]:
        rows = self._query(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE status = 'active'"
            " AND (last_worker_ping IS NULL OR last_worker_ping < ?) ORDER BY id",
            (cutoff.timestamp(),),
        )
        return [_task_from_row(row) for row in rows]

    @_deferred
    def count_tasks(self) -> int:
        return self._query("SELECT count(*) FROM tasks")[0][0]

    @_deferred
    def erase_tasks(self) -> int:
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM task_parents")
            cursor.execute("DELETE FROM tasks")
            return cursor.rowcount

    # -- the outgoing update queue ---------------------------------------------------------------
    @_deferred
    def queue_update(
        self, update: TaskUpdate, worker_id: str | None = None, ping: datetime | None = None,
        from_worker: bool = False,
    ) -> None:
        with self._transaction() as cursor:
            cursor.execute(
                "INSERT INTO task_updates (id, task_id, doc) VALUES (?, ?, ?)",
                (update.id, update.task_id,
                 json.dumps(update.to_upstream(), separators=(",", ":"))),
            )
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

    @_deferred
    def queued_updates(self, limit: int) -> list[TaskUpdate]:
        rows = self._query("SELECT doc FROM task_updates ORDER BY seq LIMIT ?", (limit,))
        return [TaskUpdate.from_upstream(json.loads(row[0])) for row in rows]

    @_deferred
    def count_queued_updates(self) -> int:
        return self._query("SELECT count(*) FROM task_updates")[0][0]

    @_deferred
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

    @_deferred
    def purge_queue(self) -> int:
        with self._transaction() as cursor:
            cursor.execute("DELETE FROM task_updates")
            return cursor.rowcount


# -- row conversion ------------------------------------------------------------------------------

def _split_sql(script: str) -> list[str]:
    """Split a schema file into statements (trigger bodies contain `;` before their END)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _task_from_row(row: tuple) -> Task:
    task_id, doc, status, activity, worker, worker_id, ping, updated, reported = row
    doc = json.loads(doc)
    doc["status"] = status
    if activity:
        doc["activity"] = activity
    if worker:
        doc["worker"] = worker
    return Task(
        doc=doc,
        worker_id=worker_id,
        last_worker_ping=from_epoch(ping),
        last_updated=from_epoch(updated),
        worker_reported=bool(reported),
    )


def _worker_row(fields) -> dict:
    """Worker (or a dict of its attributes) to column values."""
    if isinstance(fields, Worker):
        fields = {name: getattr(fields, name) for name in _WORKER_FIELDS}
    row = dict(fields)
    if "supported_types" in row:
        row["supported_types"] = json.dumps(list(row["supported_types"]))
    if "last_activity" in row:
        row["last_activity"] = to_epoch(row["last_activity"])
    for flag in ("lazy_status_request", "approved"):
        if flag in row:
            row[flag] = int(bool(row[flag]))
    return row


def _worker_from_row(row: tuple) -> Worker:
    fields = dict(zip(_WORKER_FIELDS, row))
    fields["supported_types"] = tuple(json.loads(fields["supported_types"]))
    fields["last_activity"] = from_epoch(fields["last_activity"])
    fields["lazy_status_request"] = bool(fields["lazy_status_request"])
    fields["approved"] = bool(fields["approved"])
    fields["secret_hash"] = bytes(fields["secret_hash"])
    return Worker(**fields)
