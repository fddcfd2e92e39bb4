"""The shared store: MongoDB (or a MongoDB-wire server such as FerretDB) through txmongo.

Selected by `database_url: mongodb://host[:port]/dbname`. Several Managers may share one
database; everything that must happen once is decided by an atomic database operation.

Collections (named as the original Manager's where one existed):

- `flamenco_tasks`: the Server's task document at top level, the locally current `status`,
  `activity` and `worker`, the bookkeeping `worker_id`, `last_worker_ping`, `last_updated`
  (Unix seconds, as the SQLite store keeps them), and helper fields prefixed `_fm_` that never
  leave the store: `_fm_type` (task_type, else job_type), `_fm_job_priority`, `_fm_priority`
  (integers), `_fm_unfinished_parents` (parents known here and not `completed`) and
  `_fm_claims` (how often the task was handed out; the claim generation).
- `flamenco_workers`, `settings` (`{_id: key, value}`).
- `task_update_queue`: the upstream form of each update plus `_fm_seq`, its arrival time
  (`received_on_manager`, Unix seconds); with the update's ObjectId `_id` (increasing within
  a process) it orders the queue. Across Managers this relies on their clocks agreeing to
  well within the time a worker takes between two updates (it waits for each answer).
- `flamenco_leases`: one document per lease, plus one marker per take-over.
- `flamenco_task_claims`: one marker per hand-out, `_id` = `<task>:<generation>:<attempt>`.

Atomicity. Handing out a task is decided by inserting its claim marker: the unique `_id`
lets exactly one inserter win, on MongoDB and on FerretDB alike. (FerretDB 1.x implements
`findAndModify` and `update` as read, filter in Go, write back the whole document, with no
lock in between; twenty concurrent `findAndModify` calls hand the same document to several
callers there. An insert with a duplicate `_id` is refused by its SQLite unique index.) The
winner then moves the task to `active` with a conditional find-and-modify on
`{_id, _fm_claims: generation, status in schedulable}`. A marker whose owner died before that
step is taken over after `CLAIM_STALE` by inserting the next attempt's marker. Leases work the
same way: renewal by the holder while the lease runs, take-over of an expired lease by
inserting the marker `<name>#<term>`.

Conditional updates (`_cas`) are one `find_one_and_update` on MongoDB. FerretDB only pushes a
filter down to SQLite when it is exactly `{_id: value}`; any other filter scans the collection
in Go. On FerretDB the condition is therefore checked on a by-`_id` read and the write is a
by-`_id` find-and-modify (which is no less atomic than FerretDB's own). Queries that need a
secondary index (the next task, the queue order) scan the collection on FerretDB; on MongoDB
they are index seeks (see `INDEXES`).

Durability: the update queue and the claim markers are written with `w=1, j=true`, so a
queued update has reached the journal when `queue_update` fires. `queue_update` inserts the
update first and applies its change to the task second; if the process dies in between, the
update is still pushed upstream and the task's local copy is refreshed by the next download.

Every database call has a deadline (`timeout`, default 5 s); a call that fails, times out or
finds no connection fires `StoreUnavailable` at once. txmongo reconnects by itself (retry
delay capped at `max_retry_delay`), and the next call after that succeeds again.
"""

from __future__ import annotations

import functools
import heapq
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pymongo.collection import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.write_concern import WriteConcern
from twisted.internet import defer, error as net_error
from twisted.logger import Logger
from txmongo import connection as txmongo_connection
from txmongo.connection import ConnectionPool
from txmongo.errors import TimeExceeded
from txmongo.filter import sort
from zope.interface import implementer

from flamenco import statuses
from flamenco.documents import LOCAL_TASK_FIELDS, Task, TaskUpdate, Worker
from flamenco.store.availability import Availability
from flamenco.store.interface import IStore, StoreUnavailable, task_changes_for_update
from flamenco.timefmt import from_epoch, to_epoch

log = Logger()

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

HELPER_PREFIX = "_fm_"
_LOCAL_DOC_KEYS = ("status", "activity", "worker")
_WORKER_FIELDS = (
    "nickname", "address", "platform", "supported_types", "generation", "status",
    "status_requested", "lazy_status_request", "current_task", "last_activity", "software",
    "approved",
)
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

#: A schedule type's candidates are reloaded from the database at least this often (seconds).
CANDIDATE_CACHE_TTL = 5.0
#: How many of the best waiting tasks of one type a reload fetches (an index seek on MongoDB).
CANDIDATES_PER_RELOAD = 64
#: A claim marker older than this whose task is still waiting is assumed orphaned.
CLAIM_STALE = timedelta(seconds=60)
#: Candidates fetched per claim round; several are tried when other claimers win the first.
CLAIM_CANDIDATES = 8
_CLAIM_ROUNDS = 5
_CAS_RETRIES = 8

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
                unavailable = StoreUnavailable(f"MongoDB: {type(failure).__name__}: {failure}")
                self.availability.failed(unavailable)
                raise unavailable from None
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


@implementer(IStore)
class MongoStore:
    """`IStore` on txmongo. `clock` runs the per-call deadlines (the reactor by default)."""

    def __init__(self, url: str, clock=None, *, timeout: float = 5.0, pool_size: int = 4,
                 max_retry_delay: float = 2.0):
        if clock is None:
            from twisted.internet import reactor as clock
        self.url, self.database_name = parse_url(url)
        parts = urlsplit(url)
        self.description = f"mongodb://{parts.hostname}:{parts.port or 27017}/{self.database_name}"
        self.availability = Availability(self.description)
        self.timeout = timeout
        self._clock = clock
        self._pool_size = pool_size
        self._max_retry_delay = max_retry_delay
        self._pool: ConnectionPool | None = None
        self._ferretdb = False
        self._candidates = _Candidates()
        self._reload_lock = defer.DeferredLock()

    # -- plumbing --------------------------------------------------------------------------------
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
        found = []
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

    # -- lifecycle -------------------------------------------------------------------------------
    @functools.partial(_store_call, needs_pool=False)
    async def open(self) -> None:
        # The pool wants the URL without the database path for the connection itself.
        self._pool = ConnectionPool(
            self.url, pool_size=self._pool_size, retry_delay=0.5,
            max_delay=self._max_retry_delay, ping_interval=5, ping_timeout=5,
        )
        try:
            waiting = [factory.notifyReady() for factory in self._pool.getprotocols()]
            first = defer.DeferredList(waiting, fireOnOneCallback=True, consumeErrors=True)
            first.addTimeout(self.timeout, self._clock)
            await first
            info = await self._db(self._pool[self.database_name].command("buildInfo"))
            self._ferretdb = "ferretdbVersion" in info
            for collection, index_name, keys in INDEXES:
                await self._db(self._coll(collection).create_index(sort(keys), name=index_name))
        except BaseException:
            pool, self._pool = self._pool, None
            await pool.disconnect()
            raise
        self.availability.opened()
        log.info("opened {description} ({server} {version})", description=self.description,
                 server="FerretDB" if self._ferretdb else "MongoDB",
                 version=info.get("ferretdbVersion") or info.get("version"))

    def close(self):
        self.availability.closed()
        pool, self._pool = self._pool, None
        if pool is None:
            return defer.succeed(None)
        return pool.disconnect()

    # -- settings --------------------------------------------------------------------------------
    @_store_call
    async def get_setting(self, key: str) -> str | None:
        doc = await self._find_one(SETTINGS, {"_id": key})
        return None if doc is None else doc.get("value")

    @_store_call
    async def set_setting(self, key: str, value: str | None) -> None:
        if value is None:
            await self._db(self._coll(SETTINGS).delete_one({"_id": key}))
        else:
            await self._db(self._coll(SETTINGS).replace_one(
                {"_id": key}, {"_id": key, "value": value}, upsert=True))

    # -- leases ----------------------------------------------------------------------------------
    @_store_call
    async def try_lease(self, name: str, holder: str, now: datetime, duration: timedelta) -> bool:
        leases = self._coll(LEASES, durable=True)
        expires = to_epoch(now + duration)
        current = await self._find_one(LEASES, {"_id": name})
        if current is None:
            try:
                await self._db(leases.insert_one(
                    {"_id": name, "holder": holder, "expires": expires, "term": 0}))
            except DuplicateKeyError:
                return False  # someone created it a moment ago
            return True
        running = current["expires"] > to_epoch(now)
        if running and current["holder"] != holder:
            return False
        term = current.get("term", 0)
        if not running:
            # Take-over (also by the former holder): one marker per term decides who got it.
            term += 1
            try:
                await self._db(leases.insert_one(
                    {"_id": f"{name}#{term}", "marker": True, "holder": holder,
                     "at": to_epoch(now)}))
            except DuplicateKeyError:
                return False
        updated = await self._cas(
            LEASES, name, {"term": current.get("term", 0)},
            {"$set": {"holder": holder, "expires": expires, "term": term}},
        )
        return updated is not None

    # -- workers ---------------------------------------------------------------------------------
    @_store_call
    async def add_worker(self, worker: Worker) -> None:
        doc = _worker_doc({field: getattr(worker, field) for field in _WORKER_FIELDS})
        doc["_id"] = worker.id
        doc["secret_hash"] = bytes(worker.secret_hash)
        await self._db(self._coll(WORKERS).insert_one(doc))

    @_store_call
    async def get_worker(self, worker_id: str) -> Worker | None:
        doc = await self._find_one(WORKERS, {"_id": worker_id})
        return None if doc is None else _worker_from_doc(doc)

    @_store_call
    async def update_worker(self, worker_id: str, **changes) -> bool:
        unknown = set(changes) - set(_WORKER_FIELDS) - {"secret_hash"}
        if unknown:
            raise TypeError(f"unknown worker fields: {sorted(unknown)}")
        if not changes:
            return await self._find_one(WORKERS, {"_id": worker_id}, ["_id"]) is not None
        doc = _worker_doc(changes)
        if "secret_hash" in doc:
            doc["secret_hash"] = bytes(doc["secret_hash"])
        result = await self._db(self._coll(WORKERS).update_one({"_id": worker_id}, {"$set": doc}))
        return result.matched_count > 0

    @_store_call
    async def count_workers(self) -> int:
        return await self._db(self._coll(WORKERS).count_documents({}))

    @_store_call
    async def list_workers(self) -> list[Worker]:
        docs = await self._find(WORKERS, {}, sort_by=[("_id", 1)])
        return [_worker_from_doc(doc) for doc in docs]

    # -- tasks -----------------------------------------------------------------------------------
    @_store_call
    async def store_server_tasks(self, docs: list[dict], now: datetime) -> None:
        by_id = {doc["_id"]: doc for doc in docs}
        if not by_id:
            return
        existing = {
            record["_id"]: record for record in await self._find_by_ids(TASKS, list(by_id))
        }
        unacknowledged = set(await self._db(self._coll(QUEUE).distinct(
            "task_id", {"task_id": {"$in": list(existing)}}))) if existing else set()
        inserts, replaces = [], []
        for task_id, doc in by_id.items():
            old = existing.get(task_id)
            record = _task_record(doc, old, now, task_id in unacknowledged)
            (inserts if old is None else replaces).append((old, record))

        touched = set()  # tasks whose completed-ness appeared or changed: recount children
        await self._add_edges(by_id.values(), existing)
        if inserts:
            records = [record for _, record in inserts]
            try:
                await self._db(self._coll(TASKS).insert_many(records, ordered=False))
            except (BulkWriteError, DuplicateKeyError):
                # Another Manager inserted some of them meanwhile: redo those one by one.
                for record in records:
                    await self._upsert_one(by_id[record["_id"]], now)
            touched.update(record["_id"] for record in records)
        for old, record in replaces:
            stored = await self._replace_task(old, record, by_id[record["_id"]], now)
            if stored is not None and (
                (stored["status"] == statuses.COMPLETED) != (old["status"] == statuses.COMPLETED)
            ):
                touched.add(record["_id"])
        children = await self._children_of(touched)
        await self._recount(list(by_id), children)
        self._candidates.note(await self._find_by_ids(TASKS, list(by_id), _CANDIDATE_FIELDS))

    async def _has_queued_updates(self, task_id: str) -> bool:
        return await self._find_one(QUEUE, {"task_id": task_id}, ["_id"]) is not None

    async def _upsert_one(self, doc: dict, now: datetime) -> None:
        old = await self._find_one(TASKS, {"_id": doc["_id"]})
        record = _task_record(doc, old, now, await self._has_queued_updates(doc["_id"]))
        if old is None:
            try:
                await self._db(self._coll(TASKS).insert_one(record))
                return
            except DuplicateKeyError:
                old = await self._find_one(TASKS, {"_id": doc["_id"]})
        await self._replace_task(old, record, doc, now)

    async def _replace_task(self, old: dict, record: dict, doc: dict, now: datetime):
        """Replace a stored task unless it changed since `old` was read (then recompute)."""
        for _ in range(_CAS_RETRIES):
            condition = {"status": old["status"], "_fm_claims": old.get("_fm_claims", 0)}
            replacement = {key: value for key, value in record.items() if key != "_id"}
            unset = {key: "" for key in old if key not in record}
            update = {"$set": replacement}
            if unset:
                update["$unset"] = unset
            stored = await self._cas(TASKS, old["_id"], condition, update)
            if stored is not None:
                return stored
            old = await self._find_one(TASKS, {"_id": doc["_id"]})
            if old is None:
                return None  # erased meanwhile
            record = _task_record(doc, old, now, await self._has_queued_updates(doc["_id"]))
        raise StoreUnavailable(f"task {doc['_id']} keeps changing; giving up this download")

    async def _add_edges(self, docs, existing: dict) -> None:
        """Remember parent → children in `flamenco_task_children`, so that the children of a
        task are one by-`_id` read (a parent may arrive after its children)."""
        children_of: dict[str, list[str]] = {}
        for doc in docs:
            old_parents = set((existing.get(doc["_id"]) or {}).get("parents") or [])
            for parent in dict.fromkeys(doc.get("parents") or []):
                if parent not in old_parents:
                    children_of.setdefault(parent, []).append(doc["_id"])
        for parent, children in children_of.items():
            await self._db(self._coll(EDGES).update_one(
                {"_id": parent}, {"$addToSet": {"children": {"$each": children}}}, upsert=True))

    async def _children_of(self, task_ids) -> list[str]:
        edges = await self._find_by_ids(EDGES, task_ids)
        return [child for edge in edges for child in edge.get("children") or []]

    async def _recount(self, *groups) -> None:
        """Recompute `_fm_unfinished_parents` of the given tasks from their parents' status.

        Counting from scratch (rather than +1/-1) makes every recount repair earlier drift,
        e.g. after two Managers raced on a parent and a child."""
        task_ids = list(dict.fromkeys(task_id for group in groups for task_id in group))
        if not task_ids:
            return
        records = await self._find_by_ids(TASKS, task_ids, ["parents", "_fm_unfinished_parents"])
        parent_ids = {parent for record in records for parent in record.get("parents") or []}
        status_of = {}
        if parent_ids:
            found = await self._find_by_ids(TASKS, parent_ids, ["status"])
            status_of = {record["_id"]: record["status"] for record in found}
        for record in records:
            unfinished = sum(
                1 for parent in set(record.get("parents") or [])
                if parent in status_of and status_of[parent] != statuses.COMPLETED
            )
            if unfinished != record.get("_fm_unfinished_parents"):
                stored = await self._db(self._coll(TASKS).find_one_and_update(
                    {"_id": record["_id"]}, {"$set": {"_fm_unfinished_parents": unfinished}},
                    return_document=ReturnDocument.AFTER))  # (FerretDB: no projection here)
                if stored is not None:
                    self._candidates.note([stored])

    async def _status_changed(self, stored: dict, old: str, new: str) -> None:
        self._candidates.note([stored])
        if (old == statuses.COMPLETED) != (new == statuses.COMPLETED):
            await self._recount(await self._children_of([stored["_id"]]))

    @_store_call
    async def get_task(self, task_id: str) -> Task | None:
        record = await self._find_one(TASKS, {"_id": task_id})
        return None if record is None else _task_from_record(record)

    @_store_call
    async def claim_task(self, worker: Worker, now: datetime,
                         resume_since: datetime | None = None) -> Task | None:
        bind = {
            "status": statuses.ACTIVE, "worker_id": worker.id,
            "last_worker_ping": to_epoch(now), "worker": worker.identifier,
            "worker_reported": 0,
        }
        # 1. The task this worker was last bound to, if it is still active for it, the worker
        #    has not reported on it since (then it lost the answer of its /task) and it was
        #    handed out since `resume_since`.
        pointer = await self._find_one(CLAIMS, {"_id": f"worker:{worker.id}"})
        resumable = None if pointer is None else await self._find_one(
            TASKS, {"_id": pointer["task"]}, ["last_worker_ping"])
        if resumable is not None and (resume_since is None or (
                resumable.get("last_worker_ping") or 0) >= to_epoch(resume_since)):
            record = await self._cas(
                TASKS, pointer["task"],
                {"status": statuses.ACTIVE, "worker_id": worker.id,
                 "worker_reported": {"$in": [None, 0]}},
                {"$set": bind})
            if record is not None:
                return _task_from_record(record)
        # 2. The best waiting task, from the candidate cache (reloaded when it has none for
        #    these types, or is older than CANDIDATE_CACHE_TTL); each candidate is verified
        #    and bound by `_take`.
        types = list(dict.fromkeys(worker.supported_types))
        if not types:
            return None
        while True:
            await self._reload_candidates(types)
            candidate = self._candidates.pop(types)
            if candidate is None:
                return None  # every type's candidates were just loaded, and none is left
            record = await self._take(candidate, bind, worker, now)
            if record is not None:
                return _task_from_record(record)

    async def _reload_candidates(self, types) -> None:
        """Load the best waiting tasks (the `schedule` index, in hand-out order) of those of
        `types` whose candidates are out of date or used up. One reload at a time: claims
        arriving meanwhile find the candidates fresh instead of querying again."""
        async with self._reload_lock:
            now = self._clock.seconds()
            for schedule_type in self._candidates.needing_reload(types, now, CANDIDATE_CACHE_TTL):
                records = await self._find(
                    TASKS,
                    {"_fm_type": schedule_type, "status": {"$in": list(statuses.SCHEDULABLE)},
                     "_fm_unfinished_parents": 0},
                    _CANDIDATE_FIELDS, sort_by=_SCHEDULE_SORT, limit=CANDIDATES_PER_RELOAD)
                self._candidates.reload(schedule_type, records, now,
                                        complete=len(records) < CANDIDATES_PER_RELOAD)

    async def _point_worker(self, worker_id: str, task_id: str) -> None:
        await self._db(self._coll(CLAIMS).replace_one(
            {"_id": f"worker:{worker_id}"}, {"task": task_id}, upsert=True))

    async def _take(self, candidate: dict, bind: dict, worker: Worker, now: datetime):
        """Win claim generation `_fm_claims` of the candidate, then bind the task."""
        task_id, generation = candidate["_id"], candidate.get("_fm_claims", 0)
        claims = self._coll(CLAIMS, durable=True)
        for attempt in range(_CLAIM_ROUNDS):
            marker = f"{task_id}:{generation}:{attempt}"
            try:
                await self._db(claims.insert_one(
                    {"_id": marker, "task": task_id, "worker_id": worker.id,
                     "at": to_epoch(now)}))
                break
            except DuplicateKeyError:
                other = await self._find_one(CLAIMS, {"_id": marker})
                if other is not None and other["at"] > to_epoch(now - CLAIM_STALE):
                    return None  # another claimer has it right now
        else:
            return None
        # Point the worker at the task before binding it: if this process dies after the
        # binding, the worker's next request (to any Manager) resumes the task.
        await self._point_worker(worker.id, task_id)
        record = await self._cas(
            TASKS, task_id,
            {"_fm_claims": generation, "status": {"$in": list(statuses.SCHEDULABLE)},
             "_fm_unfinished_parents": 0},
            {"$set": dict(bind, _fm_claims=generation + 1)},
        )
        if record is None:
            # Not (or no longer) runnable: give the generation back for a later claim.
            await self._db(claims.delete_one({"_id": marker}))
        return record

    @_store_call
    async def set_task_status(self, task_id: str, status: str, only_from=None) -> bool:
        for _ in range(_CAS_RETRIES):
            record = await self._find_one(TASKS, {"_id": task_id}, ["status"])
            if record is None or (only_from is not None and record["status"] not in only_from):
                return False
            stored = await self._cas(TASKS, task_id, {"status": record["status"]},
                                     {"$set": {"status": status}})
            if stored is not None:
                await self._status_changed(stored, record["status"], status)
                return True
        raise StoreUnavailable(f"task {task_id} keeps changing")

    @_store_call
    async def ping_task(self, task_id: str, worker_id: str, now: datetime) -> None:
        await self._db(self._coll(TASKS).update_one(
            {"_id": task_id},
            {"$set": {"last_worker_ping": to_epoch(now), "worker_id": worker_id,
                      "worker_reported": 1}}))

    @_store_call
    async def tasks_of_worker(self, worker_id: str, status: str) -> list[Task]:
        records = await self._find(TASKS, {"worker_id": worker_id, "status": status},
                                   sort_by=[("_id", 1)])
        return [_task_from_record(record) for record in records]

    @_store_call
    async def stale_active_tasks(self, cutoff: datetime) -> list[Task]:
        records = await self._find(
            TASKS,
            {"status": statuses.ACTIVE,
             "$or": [{"last_worker_ping": None},
                     {"last_worker_ping": {"$lt": to_epoch(cutoff)}}]},
            sort_by=[("_id", 1)])
        return [_task_from_record(record) for record in records]

    @_store_call
    async def count_tasks(self) -> int:
        return await self._db(self._coll(TASKS).count_documents({}))

    @_store_call
    async def erase_tasks(self) -> int:
        result = await self._db(self._coll(TASKS).delete_many({}))
        await self._db(self._coll(CLAIMS).delete_many({}))
        await self._db(self._coll(EDGES).delete_many({}))
        self._candidates = _Candidates()
        return result.deleted_count

    # -- the outgoing update queue ---------------------------------------------------------------
    @_store_call
    async def queue_update(
        self, update: TaskUpdate, worker_id: str | None = None, ping: datetime | None = None,
        from_worker: bool = False,
    ) -> None:
        doc = update.to_upstream()
        doc["_fm_seq"] = update.received_on_manager.timestamp()
        await self._db(self._coll(QUEUE, durable=True).insert_one(doc))
        # Queued durably; now the local task. (If the process dies here, the update still goes
        # upstream and the next download refreshes the task.)
        if not update.task_status:
            # No status to decide on: one write, whatever the task's current status.
            changes = task_changes_for_update(update, "", worker_id, ping, from_worker)
            await self._db(self._coll(TASKS).update_one(
                {"_id": update.task_id}, {"$set": changes}))
            return
        for _ in range(_CAS_RETRIES):
            record = await self._find_one(TASKS, {"_id": update.task_id}, ["status"])
            if record is None:
                return
            changes = task_changes_for_update(update, record["status"], worker_id, ping,
                                              from_worker)
            new_status = changes.get("status", record["status"])
            stored = await self._cas(TASKS, update.task_id, {"status": record["status"]},
                                     {"$set": changes})
            if stored is not None:
                await self._status_changed(stored, record["status"], new_status)
                if (new_status == statuses.ACTIVE != record["status"]
                        and stored.get("worker_id")):
                    await self._point_worker(stored["worker_id"], update.task_id)
                return
        raise StoreUnavailable(f"task {update.task_id} keeps changing")

    @_store_call
    async def queued_updates(self, limit: int) -> list[TaskUpdate]:
        docs = await self._find(QUEUE, {}, sort_by=[("_fm_seq", 1), ("_id", 1)],
                                limit=limit)
        return [TaskUpdate.from_upstream(_without_helpers(doc)) for doc in docs]

    @_store_call
    async def count_queued_updates(self) -> int:
        return await self._db(self._coll(QUEUE).count_documents({}))

    @_store_call
    async def ack_updates(self, update_ids: list[str]) -> int:
        removed = 0
        ids = list(update_ids)
        for start in range(0, len(ids), 500):
            result = await self._db(self._coll(QUEUE, durable=True).delete_many(
                {"_id": {"$in": ids[start:start + 500]}}))
            removed += result.deleted_count
        return removed

    @_store_call
    async def purge_queue(self) -> int:
        result = await self._db(self._coll(QUEUE, durable=True).delete_many({}))
        return result.deleted_count


_CANDIDATE_FIELDS = ["status", "_fm_type", "_fm_job_priority", "_fm_priority",
                     "_fm_unfinished_parents", "_fm_claims"]


class _Candidates:
    """This process's view of the best waiting tasks: per schedule type a heap in hand-out
    order, filled by bounded reloads (`CANDIDATES_PER_RELOAD` per type) and by the tasks this
    process stores or changes.

    Only a hint: `_take` checks the task in the database before binding it, so an entry made
    stale by another Manager is skipped; tasks made runnable elsewhere appear at the type's
    next reload. Picking is then O(log n) on any server, where FerretDB would scan the
    collection for every claim."""

    def __init__(self):
        self._heaps: dict[str, list] = {}
        self._loaded_at: dict[str, float] = {}
        self._complete: dict[str, bool] = {}  # the last load had every waiting task of the type

    def needing_reload(self, types, now: float, ttl: float) -> list[str]:
        """The types never loaded, loaded more than `ttl` seconds ago, or whose candidates ran
        out while the database may hold more."""
        return [
            t for t in types
            if now - self._loaded_at.get(t, float("-inf")) > ttl
            or (not self._heaps.get(t) and not self._complete.get(t))
        ]

    def reload(self, schedule_type: str, records, now: float, complete: bool) -> None:
        self._heaps[schedule_type] = []
        self._loaded_at[schedule_type] = now
        self._complete[schedule_type] = complete
        self.note(records)

    def note(self, records) -> None:
        for record in records:
            if (record.get("status") in statuses.SCHEDULABLE
                    and record.get("_fm_unfinished_parents") == 0):
                heapq.heappush(self._heaps.setdefault(record["_fm_type"], []), (
                    -record["_fm_job_priority"], -record["_fm_priority"], record["_id"],
                    record.get("_fm_claims", 0),
                ))

    def pop(self, types) -> dict | None:
        best = None
        for schedule_type in types:
            heap = self._heaps.get(schedule_type)
            if heap and (best is None or heap[0] < self._heaps[best][0]):
                best = schedule_type
        if best is None:
            return None
        _, _, task_id, generation = heapq.heappop(self._heaps[best])
        return {"_id": task_id, "_fm_claims": generation}


# -- document conversion -------------------------------------------------------------------------

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


def _without_helpers(doc: dict) -> dict:
    return {key: value for key, value in doc.items() if not key.startswith(HELPER_PREFIX)}


def _task_record(doc: dict, old: dict | None, now: datetime, unacknowledged: bool) -> dict:
    """The stored form of Server task `doc`, keeping the local state of `old`
    (`unacknowledged`: the task has updates queued)."""
    server_doc = {
        key: value for key, value in doc.items()
        if key not in _LOCAL_DOC_KEYS and key not in LOCAL_TASK_FIELDS
        and not key.startswith(HELPER_PREFIX)
    }
    status = doc["status"]
    activity = doc.get("activity") or ""
    worker = doc.get("worker") or ""
    record = dict(server_doc)
    if old is not None:
        if statuses.local_status_prevails(old["status"], status, unacknowledged=unacknowledged,
                                          same_etag=doc.get("_etag") == old.get("_etag")):
            status, activity, worker = old["status"], old.get("activity"), old.get("worker")
        activity = activity or old.get("activity") or ""
        worker = worker or old.get("worker") or ""
        for key in LOCAL_TASK_FIELDS:
            if key in old:
                record[key] = old[key]
    record.update(
        status=status,
        activity=activity,
        worker=worker,
        last_updated=to_epoch(now),
        _fm_type=doc.get("task_type") or doc.get("job_type") or "",
        _fm_job_priority=int(doc.get("job_priority") or 0),
        _fm_priority=int(doc.get("priority") or 0),
        _fm_unfinished_parents=(old or {}).get("_fm_unfinished_parents", 0),
        _fm_claims=(old or {}).get("_fm_claims", 0),
    )
    return record


def _task_from_record(record: dict) -> Task:
    doc = {
        key: value for key, value in record.items()
        if key not in LOCAL_TASK_FIELDS and not key.startswith(HELPER_PREFIX)
    }
    for key in ("activity", "worker"):
        if not doc.get(key):
            doc.pop(key, None)
    return Task(
        doc=doc,
        worker_id=record.get("worker_id"),
        last_worker_ping=from_epoch(record.get("last_worker_ping")),
        last_updated=from_epoch(record.get("last_updated")),
        worker_reported=bool(record.get("worker_reported")),
    )


def _worker_doc(fields: dict) -> dict:
    doc = dict(fields)
    if "supported_types" in doc:
        doc["supported_types"] = list(doc["supported_types"])
    if "last_activity" in doc:
        doc["last_activity"] = to_epoch(doc["last_activity"])
    for flag in ("lazy_status_request", "approved"):
        if flag in doc:
            doc[flag] = bool(doc[flag])
    return doc


def _worker_from_doc(doc: dict) -> Worker:
    fields = {field: doc[field] for field in _WORKER_FIELDS if field in doc}
    fields["supported_types"] = tuple(fields.get("supported_types") or ())
    fields["last_activity"] = from_epoch(fields.get("last_activity"))
    fields["lazy_status_request"] = bool(fields.get("lazy_status_request"))
    fields["approved"] = bool(fields.get("approved", True))  # records from before approval
    return Worker(id=doc["_id"], secret_hash=bytes(doc["secret_hash"]), **fields)
