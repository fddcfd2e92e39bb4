"""MongoDB plumbing: collection names, indexes, per-call deadlines, the FerretDB workarounds.

Conditional updates (`_cas`) are one `find_one_and_update` on MongoDB. FerretDB only pushes a
filter down to SQLite when it is exactly `{_id: value}`; any other filter scans the collection
in Go. On FerretDB the condition is therefore checked on a by-`_id` read and the write is a
by-`_id` find-and-modify (which is no less atomic than FerretDB's own). Queries that need a
secondary index (the next task, the queue order) scan the collection on FerretDB; on MongoDB
they are index seeks (see `INDEXES`).

Every database call has a deadline (`timeout`, default 5 s); a call that fails, times out or
finds no connection fires `StoreUnavailable` at once. txmongo reconnects by itself (retry
delay capped at `max_retry_delay`), and the next call after that succeeds again.
"""

from __future__ import annotations

import functools
from urllib.parse import urlsplit

from pymongo.collection import ReturnDocument
from pymongo.errors import PyMongoError
from pymongo.write_concern import WriteConcern
from twisted.internet import defer
from twisted.internet import error as net_error
from twisted.internet.interfaces import IReactorTime
from txmongo import connection as txmongo_connection
from txmongo.connection import ConnectionPool
from txmongo.errors import TimeExceeded
from txmongo.filter import sort

from flamenco.store.availability import Availability
from flamenco.store.interface import StoreUnavailable

# txmongo's factories would log "Starting factory", "Stopping factory" and "will retry in"
# for every connection attempt; losing the database is logged once by `Availability`.
txmongo_connection._Connection.noisy = False
txmongo_connection._Pinger.noisy = False

TASKS = "flamenco_tasks"
WORKERS = "flamenco_workers"
QUEUE = "task_update_queue"
SETTINGS = "settings"
LEASES = "flamenco_leases"
CLAIMS = "flamenco_task_claims"
EDGES = "flamenco_task_children"

_SCHEDULE_SORT = [
    ("_fm_job_priority", -1), ("_fm_priority", -1), ("_id", 1),
]

#: (collection, index name, keys) created by `open()`.
INDEXES = (
    # The next runnable task: equality on type, status and parent count, then the hand-out
    # order; a query with `$in` on the first two fields is a merge of a few index ranges.
    (TASKS, "schedule", [
        ("_fm_type", 1), ("status", 1), ("_fm_unfinished_parents", 1),
        *_SCHEDULE_SORT,
    ]),
    (TASKS, "by_worker", [("worker_id", 1), ("status", 1)]),
    (TASKS, "by_status_ping", [("status", 1), ("last_worker_ping", 1)]),
    (QUEUE, "by_seq", [("_fm_seq", 1), ("_id", 1)]),
    (QUEUE, "by_task", [("task_id", 1)]),
)

_UNAVAILABLE = (
    PyMongoError, TimeExceeded, defer.TimeoutError, defer.CancelledError,
    net_error.ConnectError, net_error.ConnectionLost, net_error.ConnectionDone,
)


def _store_call(method, needs_pool=True):
    """An async store method, returned as a Deferred; database trouble → StoreUnavailable."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        async def run():
            if needs_pool and self._pool is None:
                raise StoreUnavailable("the MongoDB store is not open")
            try:
                result = await method(self, *args, **kwargs)
            except StoreUnavailable as unavailable:
                self.availability.failed(unavailable)
                raise
            except _UNAVAILABLE as failure:
                lost = StoreUnavailable(f"MongoDB: {type(failure).__name__}: {failure}")
                self.availability.failed(lost)
                raise lost from None
            self.availability.succeeded()
            return result

        return defer.ensureDeferred(run())

    return wrapper


def parse_url(url: str) -> tuple[str, str]:
    """`mongodb://host[:port]/dbname[?options]` → (URL for txmongo, database name)."""
    parts = urlsplit(url)
    if parts.scheme != "mongodb":
        raise ValueError(f"database_url {url!r}: expected mongodb://host[:port]/dbname")
    name = parts.path.lstrip("/")
    if not name or "/" in name:
        raise ValueError(f"database_url {url!r} names no database (mongodb://host/dbname)")
    return url, name


class MongoConnection:
    """The connection pool and the database calls every part of `MongoStore` is built on."""

    availability: Availability
    database_name: str
    timeout: float
    _clock: IReactorTime
    _pool: ConnectionPool | None
    _ferretdb: bool

    def _coll(self, name: str, durable: bool = False):
        if self._pool is None:
            raise StoreUnavailable("the MongoDB store was closed")
        collection = self._pool[self.database_name][name]
        if durable:
            collection = collection.with_options(write_concern=WriteConcern(w=1, j=True))
        return collection

    async def _db(self, deferred):
        """Wait for one txmongo call, at most `timeout` seconds."""
        if not any(factory.instance for factory in self._pool.getprotocols()):
            deferred.cancel()
            deferred.addErrback(lambda _: None)
            raise StoreUnavailable("not connected to MongoDB (reconnecting)")
        deferred.addTimeout(self.timeout, self._clock)
        return await deferred

    async def _find(self, name, filter, projection=None, sort_by=None, limit=0):
        return await self._db(self._coll(name).find(
            filter, projection, limit=limit, sort=sort(sort_by) if sort_by else None
        ))

    async def _find_one(self, name, filter, projection=None):
        return await self._db(self._coll(name).find_one(filter, projection))

    async def _find_by_ids(self, name, ids, projection=None) -> list[dict]:
        """Documents with these `_id`s: one `$in` query on MongoDB; on FerretDB, which scans
        the collection for anything but `{_id: value}`, one look-up per ID."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        if not self._ferretdb:
            return await self._find(name, {"_id": {"$in": ids}}, projection)
        found: list[dict] = []
        for start in range(0, len(ids), 32):
            try:
                batch = await defer.gatherResults(
                    [defer.ensureDeferred(self._find_one(name, {"_id": doc_id}, projection))
                     for doc_id in ids[start:start + 32]], consumeErrors=True)
            except defer.FirstError as error:
                # The look-up's own error (e.g. a lost connection), so that callers see it.
                error.subFailure.raiseException()
            found.extend(doc for doc in batch if doc is not None)
        return found

    async def _cas(self, name: str, doc_id, condition: dict, update: dict) -> dict | None:
        """Apply `update` to document `doc_id` if it matches `condition`; fires with the
        document as updated, or None when it does not exist or does not match."""
        collection = self._coll(name)
        if not self._ferretdb:
            return await self._db(collection.find_one_and_update(
                {"_id": doc_id, **condition}, update, return_document=ReturnDocument.AFTER))
        current = await self._find_one(name, {"_id": doc_id})
        if current is None or not _matches(current, condition):
            return None
        return await self._db(collection.find_one_and_update(
            {"_id": doc_id}, update, return_document=ReturnDocument.AFTER))

def _matches(doc: dict, condition: dict) -> bool:
    """The subset of query semantics `_cas` conditions use: equality and `$in`."""
    for key, wanted in condition.items():
        value = doc.get(key, 0 if key == "_fm_claims" else None)
        if isinstance(wanted, dict):
            if "$in" in wanted and value not in wanted["$in"]:
                return False
        elif value != wanted:
            return False
    return True
