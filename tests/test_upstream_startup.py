"""Startup and task-types notifications (PROTOCOL §6.1, §6.2, §2.12), retried on a Clock."""

from twisted.internet import task
from twisted.trial import unittest

from flamenco.testing import client_for_test, serve_for_test, sqlite_store_for_test
from flamenco.upstream.startup import StartupNotifier
from tests.factories import worker

VARIABLES = {"blender": {"linux": "/opt/blender/blender"}}


class StartupNotificationTests(unittest.TestCase):
    async def make(self):
        self.server = serve_for_test(self)
        self.clock = task.Clock()
        self.store = await sqlite_store_for_test(self)
        await self.store.add_worker(worker(types=("sleep", "blender-render")))
        await self.store.add_worker(worker(types=("exr-merge",)))
        client = client_for_test(self, self.server, clock=self.clock, timeout=5)
        self.notifier = StartupNotifier(client, self.store, self.clock,
                                        manager_url="http://10.0.0.5:8083/", variables=VARIABLES)
        self.notifier.startService()
        self.addCleanup(self.notifier.stopService)

    def sent(self, kind="startup"):
        return [body for what, body in self.server.notifications if what == kind]

    async def advance(self, seconds, retry):
        self.clock.advance(seconds)
        await retry.current

    async def test_sent_shortly_after_start_with_the_v1_body(self):
        await self.make()
        self.assertEqual(self.sent(), [])
        await self.advance(0.5, self.notifier.startup)
        self.assertEqual(self.sent(), [{
            "manager_url": "http://10.0.0.5:8083/",
            "variables": VARIABLES,
            "nr_of_workers": 2,
            "path_replacement": {},
            "worker_task_types": ["blender-render", "exr-merge", "sleep"],
        }])
        await self.advance(300, self.notifier.startup)
        self.assertEqual(len(self.sent()), 1, "never again once accepted")

    async def test_retried_every_30_s_until_accepted_with_the_current_count(self):
        await self.make()
        self.server.down_status = 500
        await self.advance(0.5, self.notifier.startup)
        await self.advance(30, self.notifier.startup)
        self.assertEqual(self.notifier.startup.attempts, 2)
        await self.store.add_worker(worker())
        self.server.down_status = None
        await self.advance(29, self.notifier.startup)
        self.assertEqual(self.sent(), [])
        await self.advance(1, self.notifier.startup)
        self.assertEqual([body["nr_of_workers"] for body in self.sent()], [3])
        self.assertTrue(self.notifier.startup.done)

    async def test_task_types_notification_and_its_single_retry_loop(self):
        await self.make()
        self.server.down_status = 503
        self.notifier.types_changed()
        await self.advance(0, self.notifier.types)
        self.notifier.types_changed()  # absorbed by the pending retry
        self.notifier.types_changed()
        self.server.down_status = None
        await self.advance(10, self.notifier.types)
        self.assertEqual(self.notifier.types.attempts, 2)
        self.assertEqual(len(self.sent("update")), 1)


class StoreNotOpenYetTests(unittest.TestCase):
    async def test_retried_while_the_store_is_not_open(self):
        import os

        from flamenco.store.sqlite import SQLiteStore

        server = serve_for_test(self)
        clock = task.Clock()
        store = SQLiteStore(os.path.abspath(self.mktemp() + ".sqlite"))  # not opened yet
        client = client_for_test(self, server, clock=clock, timeout=5)
        notifier = StartupNotifier(client, store, clock, manager_url="http://10.0.0.5:8083/",
                                   variables={})
        notifier.startService()
        self.addCleanup(notifier.stopService)
        clock.advance(0.5)
        await notifier.startup.current
        self.assertEqual(server.notifications, [])
        await store.open()
        self.addCleanup(store.close)
        clock.advance(30)
        await notifier.startup.current
        self.assertEqual([what for what, _ in server.notifications], ["startup"])
