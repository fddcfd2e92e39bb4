"""Stand-alone, nothing waits for a push: updates of local jobs' tasks are acknowledged once
applied, others stay queued for a Server; a crash between the two is repaired at start."""

from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.standalone.local_updates import LocalUpdates
from tests.factories import T0, task_doc, update
from tests.inprocess import InProcessManager

SLEEP = {"name": "smoke", "type": "sleep", "settings": {"n_tasks": 2, "seconds": 1}}


class LocalUpdateTests(TestCase):
    async def start(self):
        self.m = await InProcessManager(self).start()
        self.rounds = next(s for s in self.m.manager.services if isinstance(s, LocalUpdates))
        self.jobs = self.m.manager.jobs

    async def test_updates_of_local_jobs_are_acknowledged_at_once(self):
        await self.start()
        job = await self.jobs.submit(SLEEP)
        await self.m.manager.updates.queue(job.tasks[0].id, task_status=statuses.ACTIVE,
                                           activity="running")
        self.assertEqual(await self.m.store.count_queued_updates(), 0)
        self.assertEqual((await self.m.store.get_task(job.tasks[0].id)).status, "active")
        self.assertEqual(self.m.manager.updates.dirty, {job.job.id})

    async def test_updates_of_other_tasks_stay_queued_for_a_server(self):
        await self.start()
        await self.m.store.store_server_tasks([task_doc("5a1f0e229f1b2c0d4e5f6a73")], T0)
        await self.m.manager.updates.queue("5a1f0e229f1b2c0d4e5f6a73", activity="x")
        await self.rounds.inspect()
        self.assertEqual(await self.m.store.count_queued_updates(), 1)

    async def test_start_repairs_what_a_crash_left(self):
        await self.start()
        job = await self.jobs.submit(SLEEP)
        # As if the Manager died after the update was on disk, before its acknowledgement
        # and before the job was reconciled.
        for task in job.tasks:
            await self.m.store.queue_update(update(task.id, task_status=statuses.COMPLETED))
        await self.rounds.inspect()
        self.assertEqual(await self.m.store.count_queued_updates(), 0)
        self.assertEqual((await self.jobs.job(job.job.id)).status, "completed")

    async def test_a_failed_job_cancels_the_rest(self):
        await self.start()
        job = await self.jobs.submit(dict(SLEEP, settings={"n_tasks": 3}))
        await self.m.manager.updates.queue(job.tasks[0].id, task_status=statuses.FAILED)
        await self.rounds.inspect()
        found = await self.jobs.job_with_tasks(job.job.id)
        self.assertEqual(found.job.status, "failed")
        self.assertEqual([t.status for t in found.tasks], ["failed", "canceled", "canceled"])

    async def test_a_failed_round_leaves_its_jobs_for_the_next(self):
        await self.start()
        await self.rounds.inspect()  # the start-up round
        job = await self.jobs.submit(SLEEP)
        for task in job.tasks:
            await self.m.manager.updates.queue(task.id, task_status=statuses.COMPLETED)
        await self.m.store.close()
        await self.rounds.inspect()  # fails: the store is closed (logged at debug level)
        await self.m.store.open()
        self.assertEqual((await self.jobs.job(job.job.id)).status, "queued")
        await self.rounds.inspect()
        self.assertEqual((await self.jobs.job(job.job.id)).status, "completed")
