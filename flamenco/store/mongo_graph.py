"""The parent graph on MongoDB: parent → children edges and the unfinished-parent counts."""

from __future__ import annotations

from pymongo.collection import ReturnDocument

from flamenco import statuses
from flamenco.store.mapping import task_parents
from flamenco.store.mongo_claims import _Candidates
from flamenco.store.mongo_connection import EDGES, TASKS, MongoConnection


class MongoParentGraph(MongoConnection):
    """Keeps `_fm_unfinished_parents` of every task true; `_candidates` hears of each change."""

    _candidates: _Candidates

    async def _add_edges(self, docs, existing: dict) -> None:
        """Remember parent → children in `flamenco_task_children`, so that the children of a
        task are one by-`_id` read (a parent may arrive after its children)."""
        children_of: dict[str, list[str]] = {}
        for doc in docs:
            old_parents = set((existing.get(doc["_id"]) or {}).get("parents") or [])
            for parent in task_parents(doc):
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
