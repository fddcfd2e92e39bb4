"""The operator view's store calls on MongoDB: task list, queue depth, forgetting a Worker."""

from __future__ import annotations

from flamenco.documents import Task


class MongoFarmViews:
    """Mixed into `MongoStore`; uses its `_db`/`_coll` plumbing and record decoding."""

    def list_tasks(self, status: str | None = None, task_type: str | None = None,
                   job: str | None = None, offset: int = 0, limit: int = 50):
        from flamenco.store.mongo_connection import _store_call

        return _store_call(MongoFarmViews._list_tasks)(self, status, task_type, job, offset, limit)

    def task_counts(self):
        from flamenco.store.mongo_connection import _store_call

        return _store_call(MongoFarmViews._task_counts)(self)

    def delete_worker(self, worker_id: str):
        # With its blocklist entries, quarantine and sleep schedule: the farm part knows them.
        return self.farm.remove_worker(worker_id)

    async def _list_tasks(self, status: str | None, task_type: str | None, job: str | None,
                          offset: int, limit: int) -> tuple[list[Task], int]:
        from txmongo.filter import sort

        from flamenco.store.mongo_connection import TASKS
        from flamenco.store.mongo_records import _task_from_record

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

    async def _task_counts(self) -> list[tuple[str, str, int]]:
        from flamenco.store.mongo_connection import TASKS

        groups = await self._db(self._coll(TASKS).aggregate([
            {"$group": {"_id": {"status": "$status", "type": "$_fm_type"},
                        "count": {"$sum": 1}}},
        ]))
        counts = [(group["_id"].get("status") or "", group["_id"].get("type") or "",
                   int(group["count"])) for group in groups]
        return sorted(counts)
