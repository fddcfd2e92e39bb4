"""A stand-alone job's life on both stores, through the real services (no HTTP): scheduling,
Worker updates, pause and resume, failure, re-queue and cancellation."""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from flamenco.config import Config
from flamenco.documents import WorkerTaskUpdate
from flamenco.manager import build_manager
from flamenco.standalone.local_updates import LocalUpdates
from flamenco.store.sqlite import SQLiteStore
from tests.factories import T0, worker
from tests.mongo_fixture import fresh_store

JOB = {"name": "smoke", "type": "sleep", "settings": {"n_tasks": 3, "seconds": 0}}


class StandaloneLifeContract:
    async def make_store(self):
        raise NotImplementedError

    async def start(self):
        store = await self.make_store()
        clock = Clock()
        clock.advance(T0.timestamp())
        self.manager = build_manager(Config(), store, clock, bcrypt_rounds=4)
        self.rounds = next(s for s in self.manager.services if isinstance(s, LocalUpdates))
        self.jobs = self.manager.jobs
        self.worker = worker(types=("sleep",))
        await store.add_worker(self.worker)

    async def report(self, task_id: str, status: str) -> None:
        await self.manager.task_updates.accept_update(
            self.worker, task_id, WorkerTaskUpdate(task_status=status))

    async def statuses(self, job_id: str) -> tuple[str, list[str]]:
        await self.rounds.inspect()
        found = await self.jobs.job_with_tasks(job_id)
        return found.job.status, [task.status for task in found.tasks]

    async def test_a_job_runs_pauses_fails_is_requeued_and_completes(self):
        await self.start()
        job = (await self.jobs.submit(JOB)).job
        first = await self.manager.scheduler.assign(self.worker)
        self.assertEqual(await self.statuses(job.id), ("active", ["active", "queued", "queued"]))
        await self.jobs.pause(job.id)
        await self.report(first["_id"], "completed")
        self.assertEqual(await self.statuses(job.id),
                         ("paused", ["completed", "paused", "paused"]))
        self.assertIsNone(await self.manager.scheduler.assign(self.worker))
        await self.jobs.resume(job.id)
        second = await self.manager.scheduler.assign(self.worker)
        await self.report(second["_id"], "failed")
        self.assertEqual(await self.statuses(job.id),
                         ("failed", ["completed", "failed", "canceled"]))
        self.assertEqual((await self.jobs.requeue(job.id))[1], 2)
        for _ in range(2):
            task = await self.manager.scheduler.assign(self.worker)
            await self.report(task["_id"], "completed")
        self.assertEqual(await self.statuses(job.id), ("completed", ["completed"] * 3))
        self.assertEqual(await self.manager.store.count_queued_updates(), 0)

    async def test_cancel_while_a_task_runs(self):
        await self.start()
        job = (await self.jobs.submit(JOB)).job
        running = await self.manager.scheduler.assign(self.worker)
        await self.jobs.cancel(job.id)
        self.assertEqual(await self.statuses(job.id),
                         ("cancel-requested", ["cancel-requested", "canceled", "canceled"]))
        may, reason = await self.manager.task_updates.may_keep_running(self.worker,
                                                                       running["_id"])
        self.assertFalse(may)
        await self.report(running["_id"], "canceled")
        self.assertEqual(await self.statuses(job.id), ("canceled", ["canceled"] * 3))


class SQLiteStandaloneTests(StandaloneLifeContract, TestCase):
    async def make_store(self):
        store = SQLiteStore(os.path.join(self.mktemp() + ".sqlite"))
        await store.open()
        self.addCleanup(store.close)
        return store


class MongoStandaloneTests(StandaloneLifeContract, TestCase):
    async def make_store(self):
        return await fresh_store(self)
