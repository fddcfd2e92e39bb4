"""The task downloader (PROTOCOL §6.3, §5.8): timers on a Clock, HTTP real over loopback."""

from datetime import timedelta

from twisted.internet import task
from twisted.trial import unittest

from flamenco.testing import client_for_test, serve_for_test, sqlite_store_for_test
from flamenco.testing.server import demo_job_tasks
from flamenco.timefmt import utc_now
from flamenco.upstream import DEPSGRAPH_TIMESTAMP
from flamenco.upstream.downloader import LEASE_NAME, TaskDownloader


class DownloaderTests(unittest.TestCase):
    async def make(self, *, throttle=10.0, interval=300.0, start=True):
        self.server = serve_for_test(self)
        self.clock = task.Clock()
        self.clock.advance(1515575700)
        self.store = await sqlite_store_for_test(self)
        client = client_for_test(self, self.server, clock=self.clock, timeout=5)
        self.downloader = TaskDownloader(client, self.store, self.clock, interval=interval,
                                         throttle=throttle, lease_holder="manager-a",
                                         lease_seconds=30)
        if start:
            self.downloader.startService()
            self.addCleanup(self.downloader.stopService)
            await self.downloader.when_idle()

    def depsgraph_requests(self):
        return [details for route, details in self.server.requests if route == "depsgraph"]

    async def kick_and_wait(self, types):
        self.downloader.kick(types)
        self.clock.advance(0)
        await self.downloader.when_idle()

    async def test_download_at_start_and_periodically_with_modified_since(self):
        await self.make()
        self.assertEqual(self.depsgraph_requests(), [{"since": "", "hint": []}])
        _, ids = self.server.create_job(demo_job_tasks())
        self.clock.advance(300)
        await self.downloader.when_idle()
        for task_id in ids:
            local = await self.store.get_task(task_id)
            self.assertEqual(local.status, "claimed-by-manager")
        stamp = await self.store.get_setting(DEPSGRAPH_TIMESTAMP)
        self.assertEqual(stamp, self.server.tasks[ids[-1]].updated.isoformat())
        self.clock.advance(300)
        await self.downloader.when_idle()
        self.assertEqual(self.depsgraph_requests()[-1]["since"], stamp)
        self.assertEqual(len(self.depsgraph_requests()), 3)

    async def test_server_changes_reach_the_local_copy(self):
        await self.make()
        _, ids = self.server.create_job(demo_job_tasks())
        await self.downloader.download_now()
        self.server.set_task(ids[3], priority=7, status="queued")
        await self.downloader.download_now()
        local = await self.store.get_task(ids[3])
        self.assertEqual(local.priority, 7)
        self.assertEqual(local.etag, self.server.tasks[ids[3]].etag)

    async def test_failures_change_nothing_and_the_next_round_recovers(self):
        await self.make()
        _, ids = self.server.create_job(demo_job_tasks())
        self.server.down_status = 503
        await self.downloader.download_now()
        self.assertIsNone(await self.store.get_setting(DEPSGRAPH_TIMESTAMP))
        self.assertIsNone(await self.store.get_task(ids[0]))
        self.server.down_status = None
        await self.downloader.download_now()
        self.assertIsNotNone(await self.store.get_task(ids[0]))

    async def test_204_keeps_the_timestamp(self):
        await self.make()
        job, _ = self.server.create_job(demo_job_tasks())
        await self.downloader.download_now()
        stamp = await self.store.get_setting(DEPSGRAPH_TIMESTAMP)
        self.server.jobs[job].status = "completed"
        await self.downloader.download_now()
        self.assertEqual(self.server.requests[-1][0], "depsgraph")
        self.assertEqual(await self.store.get_setting(DEPSGRAPH_TIMESTAMP), stamp)

    async def test_invalid_tasks_are_skipped(self):
        await self.make()
        _, ids = self.server.create_job([{"name": "good"}, {"name": "bad"}])
        self.server.tasks[ids[1]].doc["commands"] = "not a list"
        await self.downloader.download_now()
        self.assertIsNotNone(await self.store.get_task(ids[0]))
        self.assertIsNone(await self.store.get_task(ids[1]))

    async def test_kick_is_throttled_per_type(self):
        await self.make(throttle=10)
        await self.kick_and_wait(["sleep"])
        self.assertEqual(self.depsgraph_requests()[-1]["hint"], ["sleep"])
        await self.kick_and_wait(["sleep"])
        self.assertEqual(len(self.depsgraph_requests()), 2, "throttled")
        await self.kick_and_wait(["exr-merge", "sleep"])
        self.assertEqual(self.depsgraph_requests()[-1]["hint"], ["exr-merge", "sleep"])
        self.clock.advance(10.5)
        await self.kick_and_wait(["sleep"])
        self.assertEqual(len(self.depsgraph_requests()), 4)

    async def test_negative_throttle_never_kicks_and_zero_always(self):
        await self.make(throttle=-1)
        await self.kick_and_wait(["sleep"])
        self.assertEqual(len(self.depsgraph_requests()), 1)
        self.downloader.throttle = 0
        await self.kick_and_wait(["sleep"])
        await self.kick_and_wait(["sleep"])
        self.assertEqual(len(self.depsgraph_requests()), 3)

    async def test_kicks_do_not_run_inside_the_caller_and_are_coalesced(self):
        await self.make(throttle=0)
        self.downloader.kick(["a"])
        self.downloader.kick(["b"])
        self.assertEqual(len(self.depsgraph_requests()), 1, "nothing happens before the reactor turns")
        self.clock.advance(0)
        self.downloader.kick(["c"])  # while the hinted download runs
        await self.downloader.when_idle()
        self.assertEqual([r["hint"] for r in self.depsgraph_requests()[1:]], [["a", "b"], ["c"]])

    async def test_idle_workers_of_a_starving_type_get_their_tasks(self):
        await self.make()
        self.server.max_tasks_per_download = 2
        _, renders = self.server.create_job(
            [{"name": f"r{i}", "task_type": "blender-render"} for i in range(5)])
        _, (merge,) = self.server.create_job([{"name": "m", "task_type": "exr-merge"}])
        await self.downloader.download_now()
        self.assertIsNone(await self.store.get_task(merge))
        stamp = await self.store.get_setting(DEPSGRAPH_TIMESTAMP)
        await self.kick_and_wait(["exr-merge"])
        self.assertIsNotNone(await self.store.get_task(merge))
        self.assertEqual(await self.store.get_setting(DEPSGRAPH_TIMESTAMP), stamp,
                         "a partial (hinted) answer does not move the timestamp")
        for _ in range(3):
            await self.downloader.download_now()
        for task_id in renders:
            self.assertIsNotNone(await self.store.get_task(task_id), "nothing skipped")

    async def test_a_server_ignoring_the_hint_is_handled_as_usual(self):
        await self.make()
        _, ids = self.server.create_job(demo_job_tasks())
        self.server.honour_type_hint = False  # like the real Server
        await self.kick_and_wait(["sleep"])
        self.assertIsNotNone(await self.store.get_task(ids[0]))
        self.assertEqual(await self.store.get_setting(DEPSGRAPH_TIMESTAMP),
                         self.server.tasks[ids[-1]].updated.isoformat())

    async def test_only_the_lease_holder_downloads(self):
        await self.make(start=False)
        await self.store.try_lease(LEASE_NAME, "manager-b", utc_now(self.clock),
                                   timedelta(seconds=30))
        self.assertEqual(await self.downloader.download(), 0)
        self.assertEqual(self.depsgraph_requests(), [])
        self.clock.advance(31)
        self.server.create_job([{}])
        self.assertEqual(await self.downloader.download(), 1)
