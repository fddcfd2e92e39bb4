"""The Manager's service tree: the store opens (retrying until the start-up deadline) and closes."""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from flamenco.config import Config
from flamenco.manager import StoreService, build_manager
from flamenco.store.sqlite import SQLiteStore


class StoreServiceTests(TestCase):
    async def test_an_unusable_sqlite_path_fails_start_up_at_once(self):
        path = os.path.join(os.path.abspath(self.mktemp()), "missing-folder", "m.sqlite")
        clock = Clock()
        failures = []
        service = StoreService(SQLiteStore(path), clock, startup_timeout=30,
                               on_startup_failure=failures.append)
        service.startService()
        self.assertEqual(failures, [f"database_url: cannot open sqlite:{path}: "
                                    "unable to open database file"])
        self.assertEqual(clock.getDelayedCalls(), [], "no retry of what cannot work")
        await service.stopService()

    async def test_unreachable_mongodb_is_retried_until_the_startup_deadline(self):
        from twisted.internet import defer, reactor

        from flamenco.store.mongo import MongoStore
        from tests.manager_process import free_port

        url = f"mongodb://127.0.0.1:{free_port()}/fm"  # nothing listens there
        gave_up = defer.Deferred()
        service = StoreService(MongoStore(url, timeout=0.3), reactor, startup_timeout=1.5,
                               on_startup_failure=gave_up.callback)
        service.retry_seconds = 0.2
        started = reactor.seconds()
        service.startService()
        self.addCleanup(service.stopService)
        line = await gave_up.addTimeout(10, reactor)
        self.assertGreaterEqual(reactor.seconds() - started, 1.5)
        self.assertTrue(line.startswith(
            f"database_url: {url} did not open within database_startup_timeout_seconds (1.5 s)"),
            line)

    async def test_manager_services_start_and_stop_cleanly(self):
        clock = Clock()
        store = SQLiteStore(os.path.abspath(self.mktemp() + ".sqlite"))
        manager = build_manager(Config(), store, clock, bcrypt_rounds=4, lease_holder="host:8083")
        manager.services.startService()
        self.assertEqual(await store.count_workers(), 0)
        self.assertEqual(manager.lease_holder, "host:8083")
        await manager.services.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
