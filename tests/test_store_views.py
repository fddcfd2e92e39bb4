"""The operator-view look-ups (`list_tasks`, `task_counts`), the same tests on both stores."""

from twisted.trial.unittest import TestCase

from flamenco.ids import new_object_id
from flamenco.store.sqlite import SQLiteStore
from tests.factories import T0, task_doc, worker
from tests.mongo_fixture import fresh_store


class FarmViewsContract:
    async def make_store(self):
        raise NotImplementedError

    async def loaded(self):
        store = await self.make_store()
        self.job = new_object_id()
        self.docs = sorted(
            [task_doc(job_type="sleep") for _ in range(4)]
            + [task_doc(job_type="sleep", task_type="blender-render", status="queued",
                        job=self.job),
               task_doc(job_type="ffmpeg", status="completed", job=self.job)],
            key=lambda doc: doc["_id"])
        await store.store_server_tasks(self.docs, T0)
        return store

    async def test_list_tasks_filters_by_status_schedule_type_and_job(self):
        store = await self.loaded()
        tasks, total = await store.list_tasks()
        self.assertEqual(([t.id for t in tasks], total), ([d["_id"] for d in self.docs], 6))
        tasks, total = await store.list_tasks(task_type="sleep")
        self.assertEqual(total, 4, "task_type wins over job_type")
        tasks, total = await store.list_tasks(task_type="blender-render")
        self.assertEqual([t.status for t in tasks], ["queued"])
        tasks, total = await store.list_tasks(job=self.job, status="completed")
        self.assertEqual(([t.job_type for t in tasks], total), (["ffmpeg"], 1))
        self.assertEqual(await store.list_tasks(status="failed"), ([], 0))

    async def test_list_tasks_pages_in_id_order(self):
        store = await self.loaded()
        first, total = await store.list_tasks(offset=0, limit=4)
        rest, _ = await store.list_tasks(offset=4, limit=4)
        self.assertEqual(total, 6)
        self.assertEqual([t.id for t in first + rest], [d["_id"] for d in self.docs])
        self.assertEqual(len(rest), 2)

    async def test_task_counts_by_status_and_schedule_type(self):
        store = await self.loaded()
        self.assertEqual(await store.task_counts(), [
            ("claimed-by-manager", "sleep", 4),
            ("completed", "ffmpeg", 1),
            ("queued", "blender-render", 1),
        ])


    async def test_delete_worker(self):
        store = await self.make_store()
        kept, gone = worker(nickname="kept"), worker(nickname="gone")
        await store.add_worker(kept)
        await store.add_worker(gone)
        self.assertTrue(await store.delete_worker(gone.id))
        self.assertFalse(await store.delete_worker(gone.id))
        self.assertIsNone(await store.get_worker(gone.id))
        self.assertEqual([w.id for w in await store.list_workers()], [kept.id])


class SQLiteFarmViewsTests(FarmViewsContract, TestCase):
    async def make_store(self):
        store = SQLiteStore(self.mktemp() + ".sqlite")
        await store.open()
        self.addCleanup(store.close)
        return store


class MongoFarmViewsTests(FarmViewsContract, TestCase):
    async def make_store(self):
        return await fresh_store(self)
