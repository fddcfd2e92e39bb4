"""`IFarmStore` on the MongoDB store.

Collections: `flamenco_task_failures` (`_id` = `<task>:<worker>`), `flamenco_blocklist`
(`_id` = `<worker>:<job>:<type>`), `flamenco_task_logs`, `flamenco_quarantine` and
`flamenco_sleep_schedules` (`_id` = task / Worker). Times are Unix seconds. A Worker with
failures or blocklist entries is given tasks by a query of its own instead of the store's
shared candidate cache.
"""

from __future__ import annotations

from datetime import datetime

from txmongo.filter import sort
from zope.interface import implementer

from flamenco import statuses
from flamenco.store.farm import (
    BlocklistEntry, IFarmStore, LogMark, OldTask, Quarantine, SleepSchedule,
)
from flamenco.store.mapping import stored_time
from flamenco.store.mongo_claims import _CANDIDATE_FIELDS, CLAIM_CANDIDATES
from flamenco.store.mongo_connection import (
    _SCHEDULE_SORT, CLAIMS, QUEUE, TASKS, WORKERS, _store_call,
)
from flamenco.timefmt import from_epoch, to_epoch

FAILURES = "flamenco_task_failures"
BLOCKLIST = "flamenco_blocklist"
TASK_LOGS = "flamenco_task_logs"
QUARANTINE = "flamenco_quarantine"
SCHEDULES = "flamenco_sleep_schedules"

#: (collection, index name, keys) created by `open()`, beside the store's own.
FARM_INDEXES = (
    (FAILURES, "by_task", [("task_id", 1), ("failed_at", 1)]),
    (FAILURES, "by_worker", [("worker_id", 1), ("job_id", 1), ("task_type", 1)]),
    (BLOCKLIST, "by_worker", [("worker_id", 1), ("expires", 1)]),
    (BLOCKLIST, "by_job", [("job_id", 1), ("task_type", 1)]),
    (QUEUE, "by_task", [("task_id", 1)]),
)
_CLAIM_ROUNDS = 5


def _schedule(doc: dict) -> SleepSchedule:
    return SleepSchedule(doc["_id"], bool(doc.get("active")), tuple(doc.get("days") or ()),
                         doc.get("time_start", ""), doc.get("time_end", ""),
                         from_epoch(doc.get("next_check")))


def _quarantine(doc: dict) -> Quarantine:
    return Quarantine(doc["_id"], doc.get("reason", ""), stored_time(doc["since"]),
                      from_epoch(doc.get("released")))


def _entry(doc: dict) -> BlocklistEntry:
    return BlocklistEntry(doc["worker_id"], doc["job_id"], doc["task_type"], doc.get("reason", ""),
                          stored_time(doc["created"]), stored_time(doc["expires"]))


@implementer(IFarmStore)
class MongoFarm:
    def __init__(self, store):
        self.store = store

    @property
    def _pool(self):
        """(`_store_call` refuses calls while the store is not open.)"""
        return self.store._pool

    @property
    def availability(self):
        """(`_store_call` reports every call's outcome to the store's.)"""
        return self.store.availability

    async def open(self) -> None:
        for collection, index_name, keys in FARM_INDEXES:
            await self.store._db(self.store._coll(collection).create_index(sort(keys),
                                                                           name=index_name))

    # -- claims ----------------------------------------------------------------------------------
    async def exclusions(self, worker_id: str, now: datetime) -> dict | None:
        """A query fragment leaving out what the Worker may not get (§5.2), or None when it
        has no failures and no blocklist entries (the usual case: the candidate cache)."""
        failed = await self.store._find(FAILURES, {"worker_id": worker_id}, ["task_id"])
        blocked = await self.store._find(
            BLOCKLIST, {"worker_id": worker_id, "expires": {"$gt": to_epoch(now)}},
            ["job_id", "task_type"])
        if not failed and not blocked:
            return None
        fragment: dict = {}
        if failed:
            fragment["_id"] = {"$nin": [doc["task_id"] for doc in failed]}
        if blocked:
            fragment["$nor"] = [{"job": doc["job_id"], "_fm_type": doc["task_type"]}
                                for doc in blocked]
        return fragment

    async def claim_excluding(self, worker, fragment: dict, bind: dict, now: datetime):
        """The best waiting task outside `fragment`, bound by the store's `_take`, or None.
        Queries the database directly instead of the store's shared candidate cache."""
        query = {"_fm_type": {"$in": list(dict.fromkeys(worker.supported_types))},
                 "status": {"$in": list(statuses.SCHEDULABLE)}, "_fm_unfinished_parents": 0,
                 **fragment}
        for _ in range(_CLAIM_ROUNDS):
            candidates = await self.store._find(TASKS, query, _CANDIDATE_FIELDS,
                                                sort_by=_SCHEDULE_SORT, limit=CLAIM_CANDIDATES)
            if not candidates:
                return None
            for candidate in candidates:
                record = await self.store._take(candidate, bind, worker, now)
                if record is not None:
                    return record
        return None

    # -- failures --------------------------------------------------------------------------------
    @_store_call
    async def record_failure(self, task_id, worker_id, identifier, job_id, task_type, now):
        await self.store._db(self.store._coll(FAILURES).update_one(
            {"_id": f"{task_id}:{worker_id}"},
            {"$setOnInsert": {"task_id": task_id, "worker_id": worker_id,
                              "identifier": identifier, "job_id": job_id,
                              "task_type": task_type, "failed_at": to_epoch(now)}},
            upsert=True))
        return await self._failers(task_id)

    @_store_call
    async def failers(self, task_id):
        return await self._failers(task_id)

    @_store_call
    async def clear_failures(self, task_id):
        await self.store._db(self.store._coll(FAILURES).delete_many({"task_id": task_id}))

    async def _failers(self, task_id) -> list[dict]:
        docs = await self.store._find(FAILURES, {"task_id": task_id},
                                      sort_by=[("failed_at", 1), ("worker_id", 1)])
        return [{"id": doc["worker_id"], "identifier": doc.get("identifier", "")} for doc in docs]

    @_store_call
    async def failed_tasks(self, worker_id, job_id, task_type):
        docs = await self.store._find(
            FAILURES, {"worker_id": worker_id, "job_id": job_id, "task_type": task_type},
            ["task_id"])
        return sorted(doc["task_id"] for doc in docs)

    @_store_call
    async def jobs_failed_since(self, worker_id, since):
        docs = await self.store._find(
            FAILURES, {"worker_id": worker_id, "failed_at": {"$gt": to_epoch(since)}},
            ["job_id"])
        return len({doc["job_id"] for doc in docs})

    # -- the blocklist ---------------------------------------------------------------------------
    @_store_call
    async def add_blocklist_entry(self, entry: BlocklistEntry):
        key = f"{entry.worker_id}:{entry.job_id}:{entry.task_type}"
        await self.store._db(self.store._coll(BLOCKLIST).replace_one({"_id": key}, {
            "_id": key, "worker_id": entry.worker_id, "job_id": entry.job_id,
            "task_type": entry.task_type, "reason": entry.reason,
            "created": to_epoch(entry.created), "expires": to_epoch(entry.expires),
        }, upsert=True))

    @_store_call
    async def blocklist(self, now):
        docs = await self.store._find(BLOCKLIST, {"expires": {"$gt": to_epoch(now)}},
                                      sort_by=[("worker_id", 1), ("job_id", 1),
                                               ("task_type", 1)])
        return [_entry(doc) for doc in docs]

    @_store_call
    async def blocklisted_workers(self, job_id, task_type, now):
        docs = await self.store._find(
            BLOCKLIST, {"job_id": job_id, "task_type": task_type,
                        "expires": {"$gt": to_epoch(now)}}, ["worker_id"])
        return {doc["worker_id"] for doc in docs}

    @_store_call
    async def remove_blocklist_entry(self, worker_id, job_id, task_type):
        result = await self.store._db(self.store._coll(BLOCKLIST).delete_one(
            {"_id": f"{worker_id}:{job_id}:{task_type}"}))
        return result.deleted_count > 0

    @_store_call
    async def expire_blocklist(self, now):
        result = await self.store._db(self.store._coll(BLOCKLIST).delete_many(
            {"expires": {"$lte": to_epoch(now)}}))
        return result.deleted_count

    # -- Workers ---------------------------------------------------------------------------------
    @_store_call
    async def remove_worker(self, worker_id):
        await self.store._db(self.store._coll(BLOCKLIST).delete_many({"worker_id": worker_id}))
        await self.store._db(self.store._coll(QUARANTINE).delete_one({"_id": worker_id}))
        await self.store._db(self.store._coll(SCHEDULES).delete_one({"_id": worker_id}))
        await self.store._db(self.store._coll(CLAIMS).delete_one({"_id": f"worker:{worker_id}"}))
        result = await self.store._db(self.store._coll(WORKERS).delete_one({"_id": worker_id}))
        return result.deleted_count > 0

    # -- quarantine ------------------------------------------------------------------------------
    @_store_call
    async def quarantine_of(self, worker_id):
        doc = await self.store._find_one(QUARANTINE, {"_id": worker_id})
        return None if doc is None else _quarantine(doc)

    @_store_call
    async def set_quarantine(self, quarantine: Quarantine):
        await self.store._db(self.store._coll(QUARANTINE).replace_one(
            {"_id": quarantine.worker_id},
            {"_id": quarantine.worker_id, "reason": quarantine.reason,
             "since": to_epoch(quarantine.since), "released": to_epoch(quarantine.released)},
            upsert=True))

    @_store_call
    async def quarantined(self):
        docs = await self.store._find(QUARANTINE, {"released": None}, sort_by=[("_id", 1)])
        return [_quarantine(doc) for doc in docs]

    # -- sleep schedules ---------------------------------------------------------------------------
    @_store_call
    async def sleep_schedule(self, worker_id):
        doc = await self.store._find_one(SCHEDULES, {"_id": worker_id})
        return None if doc is None else _schedule(doc)

    @_store_call
    async def set_sleep_schedule(self, schedule: SleepSchedule):
        await self.store._db(self.store._coll(SCHEDULES).replace_one({"_id": schedule.worker_id}, {
            "_id": schedule.worker_id, "active": schedule.active,
            "days": list(schedule.days_of_week), "time_start": schedule.time_start,
            "time_end": schedule.time_end, "next_check": to_epoch(schedule.next_check),
        }, upsert=True))

    @_store_call
    async def remove_sleep_schedule(self, worker_id):
        result = await self.store._db(self.store._coll(SCHEDULES).delete_one({"_id": worker_id}))
        return result.deleted_count > 0

    @_store_call
    async def sleep_schedules_due(self, now):
        docs = await self.store._find(
            SCHEDULES, {"active": True, "$or": [{"next_check": None},
                                                {"next_check": {"$lte": to_epoch(now)}}]},
            sort_by=[("_id", 1)])
        return [_schedule(doc) for doc in docs]

    # -- task logs -------------------------------------------------------------------------------
    @_store_call
    async def log_mark(self, task_id):
        doc = await self.store._find_one(TASK_LOGS, {"_id": task_id})
        if doc is None:
            return None
        return LogMark(doc["job_id"], doc["length"], doc.get("digest", ""))

    @_store_call
    async def set_log_mark(self, task_id, mark: LogMark):
        await self.store._db(self.store._coll(TASK_LOGS, durable=True).replace_one(
            {"_id": task_id},
            {"_id": task_id, "job_id": mark.job_id, "length": mark.length,
             "digest": mark.digest}, upsert=True))

    # -- housekeeping ----------------------------------------------------------------------------
    @_store_call
    async def remove_old_tasks(self, cutoff, limit):
        epoch = to_epoch(cutoff)
        records = await self.store._find(
            TASKS,
            {"status": {"$ne": statuses.ACTIVE}, "last_updated": {"$lt": epoch},
             "$or": [{"last_worker_ping": None}, {"last_worker_ping": {"$lt": epoch}}]},
            ["job"], sort_by=[("_id", 1)], limit=limit)
        removed = []
        for record in records:
            if await self.store._find_one(QUEUE, {"task_id": record["_id"]}, ["_id"]) is not None:
                continue
            result = await self.store._db(self.store._coll(TASKS).delete_one(
                {"_id": record["_id"], "status": {"$ne": statuses.ACTIVE}}))
            if result.deleted_count:
                removed.append(OldTask(record["_id"], record.get("job") or ""))
        ids = [task.task_id for task in removed]
        if ids:
            for collection, field in ((FAILURES, "task_id"), (TASK_LOGS, "_id"),
                                      (CLAIMS, "task")):
                await self.store._db(self.store._coll(collection).delete_many(
                    {field: {"$in": ids}}))
            # Their children no longer wait for them (an unknown parent counts as completed).
            await self.store._recount(await self.store._children_of(ids))
        return removed

