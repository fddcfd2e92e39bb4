"""The operator view's store calls on MongoDB: task list, queue depth, forgetting a Worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from txmongo.filter import sort

from flamenco.documents import Task
from flamenco.store.mongo_connection import TASKS, MongoConnection, _store_call
from flamenco.store.mongo_records import _task_from_record

if TYPE_CHECKING:
    from twisted.internet import defer

    from flamenco.store.farm_mongo import MongoFarm


class MongoFarmViews(MongoConnection):
    """The view methods of `MongoStore`."""

    farm: MongoFarm

    @_store_call
    async def list_tasks(self, status: str | None = None, task_type: str | None = None,
                         job: str | None = None, offset: int = 0,
                         limit: int = 50) -> tuple[list[Task], int]:
        query: dict = {}
        if status:
            query["status"] = status
        if task_type:
            query["_fm_type"] = task_type
        if job:
            query["job"] = job
        total = await self._db(self._coll(TASKS).count_documents(query))
        records = await self._db(self._coll(TASKS).find(
            query, skip=offset, limit=limit, sort=sort([("_id", 1)])))
        return [_task_from_record(record) for record in records], total

    @_store_call
    async def task_counts(self) -> list[tuple[str, str, int]]:
        groups = await self._db(self._coll(TASKS).aggregate([
            {"$group": {"_id": {"status": "$status", "type": "$_fm_type"},
                        "count": {"$sum": 1}}},
        ]))
        counts = [(group["_id"].get("status") or "", group["_id"].get("type") or "",
                   int(group["count"])) for group in groups]
        return sorted(counts)

    def delete_worker(self, worker_id: str) -> defer.Deferred:
        # With its blocklist entries, quarantine and sleep schedule: the farm part knows them.
        return self.farm.remove_worker(worker_id)
