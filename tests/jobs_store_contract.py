"""The jobs-store contract (`flamenco.store.jobs.IJobStore`), run unchanged against both
backends. A backend's test module subclasses `JobStoreContract` and `TestCase` and defines
`async def make_store(self)` returning an opened, empty `IStore`."""

from datetime import timedelta

from zope.interface.verify import verifyObject

from flamenco import statuses
from flamenco.ids import new_object_id
from flamenco.store.jobs import IJobStore, Job, job_store_for
from tests.factories import T0, task_doc, update


def job(*, status="queued", name="shot", **fields) -> Job:
    values = dict(id=new_object_id(), name=name, type="sleep", priority=50, status=status,
                  settings={"n_tasks": 2, "seconds": 1.5, "paths": ["S:\\a"]},
                  submitter_platform="windows", created=T0, updated=T0)
    values.update(fields)
    return Job(**values)


class JobStoreContract:
    async def make_store(self):
        raise NotImplementedError

    async def stores(self):
        store = await self.make_store()
        self.addCleanup(store.close)
        return store, job_store_for(store)

    async def test_provides_interface(self):
        _, jobs = await self.stores()
        self.assertTrue(verifyObject(IJobStore, jobs))

    async def test_job_round_trip(self):
        _, jobs = await self.stores()
        submitted = job()
        await jobs.add_job(submitted)
        self.assertEqual(await jobs.get_job(submitted.id), submitted)
        self.assertIsNone(await jobs.get_job(new_object_id()))

    async def test_list_is_oldest_first_and_filters_on_status(self):
        _, jobs = await self.stores()
        first, second, third = job(), job(status="active"), job()
        for each in (first, second, third):
            await jobs.add_job(each)
        self.assertEqual([j.id for j in await jobs.list_jobs()], [first.id, second.id, third.id])
        self.assertEqual([j.id for j in await jobs.list_jobs("queued")], [first.id, third.id])
        self.assertEqual(await jobs.list_jobs("canceled"), [])

    async def test_update_only_from_given_statuses(self):
        _, jobs = await self.stores()
        submitted = job()
        await jobs.add_job(submitted)
        later = T0 + timedelta(seconds=5)
        self.assertFalse(await jobs.update_job(submitted.id, {"status": "paused"},
                                               only_from=("active",)))
        self.assertTrue(await jobs.update_job(submitted.id, {"status": "active", "priority": 70,
                                                             "updated": later},
                                              only_from=("queued", "paused")))
        stored = await jobs.get_job(submitted.id)
        self.assertEqual((stored.status, stored.priority, stored.updated), ("active", 70, later))
        self.assertFalse(await jobs.update_job(new_object_id(), {"status": "active"}))

    async def test_update_refuses_other_fields(self):
        _, jobs = await self.stores()
        submitted = job()
        await jobs.add_job(submitted)
        with self.assertRaises(TypeError):
            await jobs.update_job(submitted.id, {"name": "renamed"})

    async def test_job_tasks_are_the_tasks_naming_the_job_with_local_status(self):
        store, jobs = await self.stores()
        mine, other = job(), job()
        await jobs.add_job(mine)
        await jobs.add_job(other)
        first, second = new_object_id(), new_object_id()
        await store.store_server_tasks([
            task_doc(first, job=mine.id, status="queued"),
            task_doc(second, job=mine.id, status="queued", parents=[first]),
            task_doc(job=other.id, status="queued"),
        ], T0)
        await store.queue_update(update(first, task_status=statuses.ACTIVE, activity="going"))
        tasks = await jobs.job_tasks(mine.id)
        self.assertEqual([t.id for t in tasks], [first, second])
        self.assertEqual([t.status for t in tasks], ["active", "queued"])
        self.assertEqual(tasks[0].doc["activity"], "going")

    async def test_delete_removes_the_job_and_its_tasks_only(self):
        store, jobs = await self.stores()
        mine, other = job(status="completed"), job()
        await jobs.add_job(mine)
        await jobs.add_job(other)
        kept = new_object_id()
        await store.store_server_tasks([task_doc(job=mine.id), task_doc(job=mine.id),
                                        task_doc(kept, job=other.id)], T0)
        self.assertTrue(await jobs.delete_job(mine.id))
        self.assertIsNone(await jobs.get_job(mine.id))
        self.assertEqual(await jobs.job_tasks(mine.id), [])
        self.assertEqual(await store.count_tasks(), 1)
        self.assertIsNotNone(await store.get_task(kept))
        self.assertFalse(await jobs.delete_job(mine.id))

    async def test_task_counts_per_job_and_status_of_jobs_only(self):
        store, jobs = await self.stores()
        mine, other, empty = job(), job(), job()
        for each in (mine, other, empty):
            await jobs.add_job(each)
        first = new_object_id()
        await store.store_server_tasks([
            task_doc(first, job=mine.id, status="queued"), task_doc(job=mine.id, status="queued"),
            task_doc(job=other.id, status="queued"), task_doc(status="queued"),  # a relay task
        ], T0)
        await store.queue_update(update(first, task_status=statuses.COMPLETED))
        self.assertEqual(await jobs.task_counts(), {mine.id: {"completed": 1, "queued": 1},
                                                    other.id: {"queued": 1}})
