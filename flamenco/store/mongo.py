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


The connection and the FerretDB workarounds are in `mongo_connection`, the claim protocol in
`mongo_claims`, the parent counts in `mongo_graph`, the document forms in `mongo_records` (the
rules they spell, shared with the SQLite store, in `mapping`).

Leases are decided like claims: renewal by the holder while the lease runs, take-over of an
expired lease by inserting the marker `<name>#<term>`.

Durability: the update queue and the claim markers are written with `w=1, j=true`, so a
queued update has reached the journal when `queue_update` fires. `queue_update` inserts the
update first and applies its change to the task second; if the process dies in between, the
update is still pushed upstream and the task's local copy is refreshed by the next download.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from pymongo.errors import BulkWriteError, DuplicateKeyError
from twisted.internet import defer
from twisted.logger import Logger
from txmongo.connection import ConnectionPool
from txmongo.filter import sort
from zope.interface import implementer

from flamenco import statuses
from flamenco.documents import Task, TaskUpdate, Worker
from flamenco.store.availability import Availability
from flamenco.store.farm import LogMark
from flamenco.store.interface import IStore, StoreUnavailable, task_changes_for_update
from flamenco.store.mongo_claims import _CANDIDATE_FIELDS, CLAIM_STALE, MongoClaims, _Candidates
from flamenco.store.mongo_connection import (
    CLAIMS, EDGES, INDEXES, LEASES, QUEUE, SETTINGS, TASKS, WORKERS, _store_call, parse_url,
)
from flamenco.store.mongo_graph import MongoParentGraph
from flamenco.store.mapping import check_worker_changes, worker_fields
from flamenco.store.mongo_records import (
    _task_from_record, _task_record, _without_helpers, _worker_doc, _worker_from_doc,
)
from flamenco.store.mongo_views import MongoFarmViews
from flamenco.timefmt import to_epoch

__all__ = [
    "CLAIM_STALE", "CLAIMS", "EDGES", "INDEXES", "LEASES", "QUEUE", "SETTINGS", "TASKS",
    "WORKERS", "MongoStore", "_store_call", "parse_url",
]

log = Logger()

_CAS_RETRIES = 8


@implementer(IStore)
class MongoStore(MongoClaims, MongoParentGraph, MongoFarmViews):
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
        from flamenco.store.farm_mongo import MongoFarm  # (it imports this module)

        self.farm = MongoFarm(self)

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
            await self.farm.open()
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
        doc = _worker_doc(worker_fields(worker))
        await self._db(self._coll(WORKERS).insert_one(doc))

    @_store_call
    async def get_worker(self, worker_id: str) -> Worker | None:
        doc = await self._find_one(WORKERS, {"_id": worker_id})
        return None if doc is None else _worker_from_doc(doc)

    @_store_call
    async def update_worker(self, worker_id: str, **changes) -> bool:
        check_worker_changes(changes)
        if not changes:
            return await self._find_one(WORKERS, {"_id": worker_id}, ["_id"]) is not None
        doc = _worker_doc(changes)
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
        inserts: list[tuple[dict | None, dict]] = []
        replaces: list[tuple[dict, dict]] = []
        for task_id, doc in by_id.items():
            old = existing.get(task_id)
            record = _task_record(doc, old, now, task_id in unacknowledged)
            if old is None:
                inserts.append((old, record))
            else:
                replaces.append((old, record))

        # The tasks whose completed-ness appeared or changed: their children are recounted.
        touched: set[str] = set()
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

    @_store_call
    async def get_task(self, task_id: str) -> Task | None:
        record = await self._find_one(TASKS, {"_id": task_id})
        return None if record is None else _task_from_record(record)


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
        from_worker: bool = False, log_mark: LogMark | None = None,
    ) -> None:
        doc = update.to_upstream()
        doc["_fm_seq"] = update.received_on_manager.timestamp()
        await self._db(self._coll(QUEUE, durable=True).insert_one(doc))
        if log_mark is not None:
            # No transaction across collections here: the mark follows at once, so that only a
            # crash between the two writes lets the Worker's re-send be queued a second time.
            await self.farm.set_log_mark(update.task_id, log_mark)
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

