"""The jobs part of the shared store: collection `flamenco_jobs`, on the `MongoStore`'s
connection. Its indexes are created on first use (the `IStore.open` of the backend knows
nothing of jobs)."""

from __future__ import annotations

import functools

from txmongo.filter import sort
from zope.interface import implementer

from flamenco.store.jobs import UPDATABLE, IJobStore, Job
from flamenco.store.mongo import MongoStore
from flamenco.store.mongo_connection import EDGES, TASKS, _store_call
from flamenco.store.mongo_records import _task_from_record
from flamenco.store.mapping import stored_time
from flamenco.timefmt import to_epoch

JOBS = "flamenco_jobs"
#: (collection, index name, keys) created before the first job operation.
JOB_INDEXES = (
    (JOBS, "by_status", [("status", 1), ("_id", 1)]),
    (TASKS, "by_job", [("job", 1), ("_id", 1)]),
)


def _job_from_doc(doc: dict) -> Job:
    return Job(id=doc["_id"], name=doc["name"], type=doc["type"], priority=doc["priority"],
               status=doc["status"], settings=doc["settings"],
               submitter_platform=doc.get("submitter_platform", ""),
               created=stored_time(doc["created"]), updated=stored_time(doc["updated"]))


def _stored_value(name: str, value):
    return to_epoch(value) if name in ("created", "updated") else value


def _jobs_call(method):
    """A store call (Deferred, StoreUnavailable) that first makes sure the indexes exist."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        async def run(store):
            await self._ensure_indexes()
            return await method(self, *args, **kwargs)

        return _store_call(run)(self.store)

    return wrapper


@implementer(IJobStore)
class MongoJobStore:
    def __init__(self, store: MongoStore):
        self.store = store
        self._indexed_pool = None

    async def _ensure_indexes(self) -> None:
        if self._indexed_pool is self.store._pool:
            return
        for collection, name, keys in JOB_INDEXES:
            await self.store._db(self.store._coll(collection).create_index(sort(keys), name=name))
        self._indexed_pool = self.store._pool

    @_jobs_call
    async def add_job(self, job: Job) -> None:
        doc = {name: _stored_value(name, getattr(job, name))
               for name in ("name", "type", "priority", "status", "settings",
                            "submitter_platform", "created", "updated")}
        await self.store._db(self.store._coll(JOBS, durable=True).insert_one(
            {"_id": job.id, **doc}))

    @_jobs_call
    async def get_job(self, job_id: str) -> Job | None:
        doc = await self.store._find_one(JOBS, {"_id": job_id})
        return None if doc is None else _job_from_doc(doc)

    @_jobs_call
    async def list_jobs(self, status: str | None = None) -> list[Job]:
        query = {} if status is None else {"status": status}
        docs = await self.store._find(JOBS, query, sort_by=[("_id", 1)])
        return [_job_from_doc(doc) for doc in docs]

    @_jobs_call
    async def update_job(self, job_id: str, changes: dict, only_from=None) -> bool:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise TypeError(f"job fields that cannot be updated: {sorted(unknown)}")
        condition = {} if only_from is None else {"status": {"$in": list(only_from)}}
        update = {"$set": {name: _stored_value(name, value) for name, value in changes.items()}}
        return await self.store._cas(JOBS, job_id, condition, update) is not None

    @_jobs_call
    async def job_tasks(self, job_id: str) -> list:
        records = await self.store._find(TASKS, {"job": job_id}, sort_by=[("_id", 1)])
        return [_task_from_record(record) for record in records]

    @_jobs_call
    async def delete_job(self, job_id: str) -> bool:
        records = await self.store._find(TASKS, {"job": job_id}, ["_id"])
        task_ids = [record["_id"] for record in records]
        if task_ids:
            await self.store._db(self.store._coll(TASKS).delete_many({"_id": {"$in": task_ids}}))
            await self.store._db(self.store._coll(EDGES).delete_many({"_id": {"$in": task_ids}}))
        result = await self.store._db(self.store._coll(JOBS, durable=True).delete_one(
            {"_id": job_id}))
        return result.deleted_count > 0

    @_jobs_call
    async def task_counts(self) -> dict[str, dict[str, int]]:
        job_ids = [doc["_id"] for doc in await self.store._find(JOBS, {}, ["_id"])]
        groups = await self.store._db(self.store._coll(TASKS).aggregate([
            {"$match": {"job": {"$in": job_ids}}},
            {"$group": {"_id": {"job": "$job", "status": "$status"}, "count": {"$sum": 1}}},
        ]))
        counts: dict[str, dict[str, int]] = {}
        for group in groups:
            counts.setdefault(group["_id"]["job"], {})[group["_id"]["status"]] = int(
                group["count"])
        return counts
