"""Handing out tasks on MongoDB: the claim-marker protocol and the candidate cache.

Handing out a task is decided by inserting its claim marker: the unique `_id`
lets exactly one inserter win, on MongoDB and on FerretDB alike. (FerretDB 1.x implements
`findAndModify` and `update` as read, filter in Go, write back the whole document, with no
lock in between; twenty concurrent `findAndModify` calls hand the same document to several
callers there. An insert with a duplicate `_id` is refused by its SQLite unique index.) The
winner then moves the task to `active` with a conditional find-and-modify on
`{_id, _fm_claims: generation, status in schedulable}`. A marker whose owner died before that
step is taken over after `CLAIM_STALE` by inserting the next attempt's marker.
"""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pymongo.errors import DuplicateKeyError
from twisted.internet import defer

from flamenco import statuses
from flamenco.documents import Task, Worker
from flamenco.store.mongo_connection import (
    _SCHEDULE_SORT, CLAIMS, TASKS, MongoConnection, _store_call,
)
from flamenco.store.mapping import hand_out_key
from flamenco.store.mongo_records import _task_from_record
from flamenco.timefmt import to_epoch

if TYPE_CHECKING:
    from flamenco.store.farm_mongo import MongoFarm

#: A schedule type's candidates are reloaded from the database at least this often (seconds).
CANDIDATE_CACHE_TTL = 5.0
#: How many of the best waiting tasks of one type a reload fetches (an index seek on MongoDB).
CANDIDATES_PER_RELOAD = 64
#: A claim marker older than this whose task is still waiting is assumed orphaned.
CLAIM_STALE = timedelta(seconds=60)
#: Per schedule type at most twice this many candidates are kept in memory (about 150 bytes
#: each); beyond that the best this many stay.
CANDIDATES_KEPT = 4 * CANDIDATES_PER_RELOAD
#: Candidates fetched per claim round; several are tried when other claimers win the first.
CLAIM_CANDIDATES = 8
_CLAIM_ROUNDS = 5
_CANDIDATE_FIELDS = ["status", "_fm_type", "_fm_job_priority", "_fm_priority",
                     "_fm_unfinished_parents", "_fm_claims"]


class MongoClaims(MongoConnection):
    """`claim_task` of `MongoStore`: resuming a Worker's task, else the best candidate."""

    farm: MongoFarm
    _candidates: _Candidates
    _reload_lock: defer.DeferredLock

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
                resumable.get("last_worker_ping") or 0) >= resume_since.timestamp()):
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
        excluded = await self.farm.exclusions(worker.id, now)
        if excluded is not None:  # tasks it failed or is blocklisted for (§5.2)
            record = await self.farm.claim_excluding(worker, excluded, bind, now)
            return None if record is None else _task_from_record(record)
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
                schedule_type = record["_fm_type"]
                heap = self._heaps.setdefault(schedule_type, [])
                heapq.heappush(heap, (
                    *hand_out_key(record["_fm_job_priority"], record["_fm_priority"],
                                  record["_id"]),
                    record.get("_fm_claims", 0),
                ))
                if len(heap) > 2 * CANDIDATES_KEPT:
                    # A big download: keep the best, the rest is reloaded when these run out.
                    self._heaps[schedule_type] = heapq.nsmallest(CANDIDATES_KEPT, heap)
                    self._complete[schedule_type] = False

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
