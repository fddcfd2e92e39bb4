"""The Worker timeout, ack-timeout, Worker and task clean-up, all on a `task.Clock`."""

import os

from twisted.trial.unittest import TestCase

from flamenco import statuses
from tests.factories import task_doc
from tests.inprocess import TaskFarm


class Farm(TaskFarm):
    def __init__(self, testcase, **config):
        config.setdefault("task_logs_path", testcase.mktemp())
        # Commits at once (no group commit on the real reactor): the timers run on a Clock.
        super().__init__(testcase, database_sync="normal", **config)
        self.testcase = testcase

    async def take(self, auth):
        response = await self.ask(auth)
        return response.json["_id"] if response.code == 200 else response.code

    def advance(self, seconds):
        self.m.clock.advance(seconds)


class WorkerTimeoutTests(TestCase):
    async def test_silent_worker_times_out_and_its_task_goes_to_another(self):
        doc = task_doc()
        farm = await Farm(self, active_worker_timeout_interval_seconds=60,
                          active_task_timeout_interval_seconds=60).start(doc)
        silent = await farm.m.register(generation="2.x", nickname="silent")
        old_style = await farm.m.register(generation="2.0", nickname="old")
        self.assertEqual(await farm.take(silent), doc["_id"])
        self.assertEqual(await farm.take(old_style), 204)  # awake now, nothing to do
        farm.advance(30)
        self.assertEqual(await farm.take(old_style), 204)
        farm.advance(31)
        failed = await farm.m.manager.timeouts.sweep()
        self.assertEqual(failed, [], "re-queued by the Worker timeout, not failed")
        worker = await farm.store.get_worker(silent[0])
        self.assertEqual((worker.status, worker.status_requested, worker.lazy_status_request),
                         (statuses.W_TIMEOUT, statuses.W_AWAKE, False))
        self.assertEqual((await farm.store.get_worker(old_style[0])).status, statuses.W_AWAKE)
        task = await farm.store.get_task(doc["_id"])
        self.assertEqual(task.status, statuses.CLAIMED)
        requeue = [u for u in await farm.store.queued_updates(100) if u.worker == "-"]
        self.assertEqual(len(requeue), 1)
        self.assertTrue(requeue[0].activity.endswith("worker 127.0.0.1 (silent) timed out"))
        self.assertEqual(await farm.take(old_style), doc["_id"])
        # The silent worker comes back: it is asked to be awake first (2.x), then gets nothing.
        self.assertEqual(await farm.take(silent), 423)

    async def test_a_2_0_worker_is_not_asked_anything_after_a_timeout(self):
        farm = await Farm(self, active_worker_timeout_interval_seconds=10).start()
        worker = await farm.m.register(generation="2.0")
        self.assertEqual(await farm.take(worker), 204)
        farm.advance(11)
        await farm.m.manager.timeouts.sweep()
        record = await farm.store.get_worker(worker[0])
        self.assertEqual((record.status, record.status_requested), (statuses.W_TIMEOUT, ""))
        self.assertEqual(await farm.take(worker), 204)
        self.assertEqual((await farm.store.get_worker(worker[0])).status, statuses.W_AWAKE)

    async def test_zero_turns_the_worker_timeout_off(self):
        farm = await Farm(self, active_worker_timeout_interval_seconds=0).start()
        worker = await farm.m.register(generation="2.x")
        await farm.take(worker)
        farm.advance(3600)
        await farm.m.manager.timeouts.sweep()
        self.assertEqual((await farm.store.get_worker(worker[0])).status, statuses.W_AWAKE)

    async def test_ack_timeout_makes_a_timed_out_worker_offline(self):
        farm = await Farm(self, active_worker_timeout_interval_seconds=10).start()
        worker = await farm.m.register(generation="2.x")
        await farm.take(worker)
        action = f"/worker-action/{worker[0]}?action=ack-timeout"
        self.assertEqual((await farm.m.request("POST", action)).code, 204)
        self.assertEqual((await farm.store.get_worker(worker[0])).status, statuses.W_AWAKE)
        farm.advance(11)
        await farm.m.manager.timeouts.sweep()
        self.assertEqual((await farm.m.request("POST", action)).code, 204)
        self.assertEqual((await farm.store.get_worker(worker[0])).status, statuses.W_OFFLINE)


class WorkerCleanupTests(TestCase):
    async def test_old_offline_workers_are_removed_after_the_first_delay(self):
        doc = task_doc()
        farm = await Farm(self, worker_cleanup_max_age=3600,
                          worker_cleanup_status=("offline", "awake"),
                          active_worker_timeout_interval_seconds=0,
                          active_task_timeout_interval_seconds=86400).start(doc)
        gone = await farm.m.register(generation="2.x", nickname="gone")
        busy = await farm.m.register(generation="2.x", nickname="busy")
        fresh = await farm.m.register(generation="2.x", nickname="fresh")
        timed_out = await farm.m.register(generation="2.x", nickname="timed-out")
        self.assertEqual(await farm.take(gone), doc["_id"])  # seen now, at T0
        await farm.m.request("POST", "/sign-off", auth=gone)
        self.assertEqual(await farm.take(busy), doc["_id"])
        await farm.store.update_worker(timed_out[0], status=statuses.W_TIMEOUT)
        farm.m.manager.services.startService()
        self.addCleanup(farm.m.manager.services.stopService)
        farm.advance(3000)  # the first run is 5 minutes after start, then every 30 s
        self.assertEqual(await farm.take(fresh), 204)
        await farm.m.request("POST", "/sign-off", auth=fresh)
        self.assertEqual(await farm.store.count_workers(), 4)
        farm.advance(700)
        left = {w.nickname for w in await farm.store.list_workers()}
        self.assertEqual(left, {"fresh", "timed-out"})
        self.assertEqual((await farm.store.get_task(doc["_id"])).status, statuses.CLAIMED)
        requeue = [u for u in await farm.store.queued_updates(100) if u.worker == "-"]
        self.assertTrue(requeue[-1].activity.endswith("worker is being auto-removed"))
        self.assertEqual((await farm.m.request("POST", "/task", auth=gone)).code, 401)

    async def test_no_cleanup_service_when_off(self):
        farm = await Farm(self).start()
        self.assertIsNone(farm.m.manager.worker_cleanup)


class TaskCleanupTests(TestCase):
    async def test_old_tasks_and_their_logs_go_and_nothing_else(self):
        old, active, queued, recent = task_doc(), task_doc(), task_doc(), task_doc()
        farm = await Farm(self, task_cleanup_max_age=14 * 86400).start(old, active, queued)
        manager = farm.m.manager
        worker = await farm.m.register(generation="2.x")
        # `old` ran and completed; its log is on disk.
        self.assertEqual(await farm.take(worker), old["_id"])
        await farm.m.request("POST", f"/tasks/{old['_id']}/update", auth=worker,
                             json_body={"task_status": "completed", "log": "done\n"})
        self.assertEqual(await farm.take(worker), active["_id"])
        old_log = manager.task_logs.path(old["job"], old["_id"])
        self.assertTrue(os.path.exists(old_log))
        neighbour = os.path.join(os.path.dirname(old_log), "unrelated.txt")
        with open(neighbour, "w") as stream:
            stream.write("not a task log")
        manager.services.startService()
        self.addCleanup(manager.services.stopService)
        await manager.updates.store.ack_updates(
            [u.id for u in await farm.store.queued_updates(1000)])
        await farm.m.request("POST", f"/tasks/{queued['_id']}/update", auth=worker,
                             json_body={"log": "still queued"})
        farm.advance(300)
        await farm.store.store_server_tasks([recent], manager.updates.now())
        farm.advance(70)  # the first run, 6 minutes after start: everything is young
        self.assertIsNotNone(await farm.store.get_task(old["_id"]))
        farm.advance(15 * 86400)  # a run every 10 minutes
        self.assertIsNone(await farm.store.get_task(old["_id"]))
        self.assertFalse(os.path.exists(old_log))
        self.assertTrue(os.path.exists(neighbour))
        self.assertIsNone(await farm.store.farm.log_mark(old["_id"]))
        # Active, with queued updates, or touched recently: kept.
        await farm.store.store_server_tasks([recent], manager.updates.now())
        self.assertEqual(await manager.task_cleanup.run_now(), [])
        self.assertEqual({await farm.store.get_task(t["_id"]) is not None
                          for t in (active, queued, recent)}, {True})
