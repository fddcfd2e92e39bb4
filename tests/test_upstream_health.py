"""Upstream health from the real pusher and downloader against the simulated Server."""

from datetime import timedelta

from twisted.application.service import MultiService
from twisted.internet import task
from twisted.trial import unittest

from flamenco.config import parse_config
from flamenco.events import EventBus
from flamenco.metrics import ManagerMetrics
from flamenco.testing import serve_for_test, sqlite_store_for_test
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET
from flamenco.timefmt import utc_now
from flamenco.updates import UpdateQueue
from flamenco.upstream.health import UpstreamHealth
from flamenco.upstream.link import build_upstream
from flamenco.upstream.pusher import LEASE_NAME
from tests.test_health_metrics import sample


class UpstreamHealthTests(unittest.TestCase):
    async def make(self, push_lease_elsewhere=False):
        self.server = serve_for_test(self)
        config, _ = parse_config({
            "flamenco": self.server.url, "manager_id": DEFAULT_MANAGER_ID,
            "manager_secret": DEFAULT_MANAGER_SECRET, "upstream_gzip": True,
        })
        self.store = await sqlite_store_for_test(self)
        self.clock = task.Clock()
        self.clock.advance(1515575700)
        self.updates = UpdateQueue(self.store, self.clock)
        if push_lease_elsewhere:
            await self.store.try_lease(LEASE_NAME, "other-manager", utc_now(self.clock),
                                       timedelta(hours=1))
        self.link, services = build_upstream(config, self.store, self.updates, self.clock, "m")
        self.bus = EventBus()
        self.events = []
        self.bus.subscribe(self.events.append)
        self.health = UpstreamHealth(self.store, self.clock, self.bus, self.link,
                                     stale_after=90)
        self.metrics = ManagerMetrics(self.store, self.bus, self.link)
        parent = MultiService()
        for service in services:
            service.setServiceParent(parent)
        parent.startService()
        self.addCleanup(parent.stopService)
        await self.idle()

    async def idle(self):
        await self.link.downloader.when_idle()
        await self.link.pusher.when_idle()

    async def tick(self, seconds):
        for _ in range(seconds):
            self.clock.advance(1)
            await self.idle()

    async def test_green_red_while_the_server_is_down_and_green_again(self):
        await self.make()
        report = await self.health.report()
        self.assertEqual(report["state"], "green")
        self.assertIsNotNone(report["last_push"])
        self.assertIsNotNone(report["last_download"])
        self.assertTrue(report["gzip"])
        self.assertEqual((report["queued_updates"], report["oldest_queued_age_seconds"]), (0, None))

        self.server.down_status = 503
        await self.updates.queue("5a1f0e229f1b2c0d4e5f6a73", activity="x", log="line")
        await self.tick(1)
        self.assertEqual((await self.health.report())["state"], "amber")
        await self.tick(2)
        report = await self.health.report()
        self.assertEqual(report["state"], "red")
        self.assertGreaterEqual(report["push_failures"], 2)
        self.assertEqual(report["queued_updates"], 1)
        self.assertEqual(report["oldest_queued_age_seconds"], 3)
        self.assertEqual(self.events[-1].type, "upstream")
        self.assertEqual(self.events[-1].data["state"], "red")

        self.server.down_status = None
        await self.tick(10)
        report = await self.health.report()
        self.assertEqual((report["state"], report["push_failures"], report["queued_updates"]),
                         ("green", 0, 0))
        self.assertEqual(self.events[-1].data["state"], "green")
        text = (await self.metrics.render()).decode()
        failures = sample(text, "flamenco_upstream_failures_total", operation="push")
        self.assertEqual(failures, 2)
        self.assertGreaterEqual(sample(text, "flamenco_upstream_push_seconds_count"), 4)
        self.assertEqual(sample(text, "flamenco_upstream_queue_updates"), 0)

    async def test_a_long_waiting_update_is_amber(self):
        await self.make(push_lease_elsewhere=True)  # the update waits here
        await self.updates.queue("5a1f0e229f1b2c0d4e5f6a73", activity="x")
        await self.tick(90)
        self.assertEqual((await self.health.report())["state"], "green")
        await self.tick(1)
        report = await self.health.report()
        self.assertEqual((report["state"], report["oldest_queued_age_seconds"]), ("amber", 91))
