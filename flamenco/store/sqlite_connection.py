"""The embedded store's connection: one SQLite file in WAL mode, used from the reactor thread.

Statements are short index look-ups, so they run inline on the reactor thread (measured in
`bench/assign.py`). Durability (`database_sync`): with `full`, the default, every commit is
synced to disk (`synchronous=FULL`), so a 204 survives a power cut as it does on MongoDB with
`j: true`. The cost of a sync is shared by group commit: the writes of all requests handled in
one reactor iteration run in one transaction, committed at the start of the next iteration, and
each write's Deferred fires only after that commit. `normal` (`synchronous=NORMAL`) survives a
crash or `kill -9` but not a power cut in the instant after a commit; it commits each write at
once. Reads see the batch's writes before they are committed (one connection).

The store is made of parts (`SQLitePart`): the task, queue and view statements mixed into
`SQLiteStore`, and the farm and jobs parts it composes. All of them run on one
`SQLiteConnection`, so every write of any part joins the same group commit.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from importlib import resources
from typing import Any, Callable, Iterator, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

from flamenco.store.availability import Availability
from flamenco.store.interface import StoreUnavailable

#: `database_sync` values: the PRAGMA synchronous level, and whether writes are group-committed.
SYNC_MODES = {"full": ("FULL", True), "normal": ("NORMAL", False)}

_Method = TypeVar("_Method", bound=Callable[..., Any])


def schema_scripts() -> list[tuple[int, str]]:
    """The versioned schema files, as (version, SQL) in order."""
    folder = resources.files("flamenco.store") / "schema"
    scripts = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            scripts.append((int(entry.name.split("-", 1)[0]), entry.read_text("utf-8")))
    return sorted(scripts)


def split_sql(script: str) -> list[str]:
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


class SQLiteConnection:
    """The database file, its schema, and group commit."""

    def __init__(self, path: str, sync: str = "full", clock: IReactorTime | None = None):
        if clock is None:
            from twisted.internet import reactor as default_clock

            clock = default_clock
        self.path = path
        self.description = f"sqlite:{path}"
        self._synchronous, self._group_commit = SYNC_MODES[sync]
        self._clock: IReactorTime = clock
        self.availability = Availability(self.description)
        self.db: sqlite3.Connection | None = None
        self._batching = False  # group commit in force (after open)
        #: A transaction holds the writes of this reactor iteration; committed on the next.
        self.batch_open = False
        #: The current store call wrote (set by `transaction`, cleared by `sqlite_call`).
        self.wrote = False
        self.waiters: list[tuple[defer.Deferred, object]] = []

    def open(self) -> None:
        """Connect and bring the schema up to date; raises `sqlite3.Error`."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute(f"PRAGMA synchronous = {self._synchronous}")
            db.execute("PRAGMA foreign_keys = ON")
            db.execute("PRAGMA busy_timeout = 2000")
            self.db = db
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for version, script in schema_scripts():
                if version > current:
                    with self.transaction() as cursor:
                        for statement in split_sql(script):
                            cursor.execute(statement)
                        cursor.execute(f"PRAGMA user_version = {version:d}")
        except BaseException:
            self.db = None
            db.close()
            raise
        self._batching = self._group_commit

    def close(self) -> None:
        self.commit_batch()
        self._batching = False
        self.availability.closed()
        if self.db is not None:
            self.db.close()
            self.db = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One atomic write: a transaction of its own, or a savepoint in the open batch."""
        if self.db is None:
            raise sqlite3.OperationalError("the database is not open")
        self.wrote = True
        cursor = self.db.cursor()
        if not self._batching:
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
            return
        if not self.batch_open:
            cursor.execute("BEGIN IMMEDIATE")
            self.batch_open = True
            self._clock.callLater(0, self.commit_batch)
        cursor.execute("SAVEPOINT write")
        try:
            yield cursor
        except BaseException:
            cursor.execute("ROLLBACK TO write")
            cursor.execute("RELEASE write")
            raise
        cursor.execute("RELEASE write")

    def commit_batch(self) -> None:
        """Commit the batch (one sync for all its writes), then answer each of them."""
        if not self.batch_open:
            return
        waiters, self.waiters, self.batch_open = self.waiters, [], False
        try:
            if self.db is None:
                raise sqlite3.OperationalError("the database was closed")
            self.db.execute("COMMIT")
        except sqlite3.Error as error:
            if self.db is not None and self.db.in_transaction:
                self.db.execute("ROLLBACK")
            unavailable = StoreUnavailable(f"SQLite error at commit: {error}")
            self.availability.failed(unavailable)
            for waiter, _ in waiters:
                waiter.errback(unavailable)
            return
        self.availability.succeeded()
        for waiter, result in waiters:
            waiter.callback(result)

    def query(self, sql: str, params: Any = ()) -> list[tuple]:
        if self.db is None:
            raise sqlite3.OperationalError("the database is not open")
        return self.db.execute(sql, params).fetchall()


class SQLitePart:
    """A part of the store: statements run on the store's one connection (`sqlite_call`)."""

    def __init__(self, connection: SQLiteConnection):
        self.connection = connection

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Cursor]:
        return self.connection.transaction()

    def _query(self, sql: str, params: Any = ()) -> list[tuple]:
        return self.connection.query(sql, params)


def sqlite_call(method: _Method) -> _Method:
    """Run a method of a `SQLitePart` now; its result or a StoreUnavailable comes back as a
    Deferred, which for a method that wrote in a group-commit batch fires once the batch is
    committed."""

    @functools.wraps(method)
    def wrapper(self: SQLitePart, *args: Any, **kwargs: Any) -> defer.Deferred:
        connection = self.connection
        connection.wrote = False
        try:
            result = method(self, *args, **kwargs)
        except sqlite3.Error as error:
            unavailable = StoreUnavailable(f"SQLite error: {error}")
            connection.availability.failed(unavailable)
            return defer.fail(unavailable)
        if connection.wrote and connection.batch_open:
            waiter: defer.Deferred = defer.Deferred()
            connection.waiters.append((waiter, result))
            return waiter
        connection.availability.succeeded()
        return defer.succeed(result)

    return wrapper  # type: ignore[return-value]

