"""The Manager's service tree: the store opens (retrying while it cannot) and closes."""

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from flamenco.config import Config
from flamenco.manager import StoreService, build_manager
from flamenco.store.sqlite import SQLiteStore
from tests.util import async_test


class StoreServiceTests(TestCase):
    @async_test
    async def test_retries_until_the_store_opens(self):
        folder = os.path.abspath(self.mktemp())
        store = SQLiteStore(os.path.join(folder, "manager.sqlite"))
        clock = Clock()
        service = StoreService(store, clock)
        service.startService()
        self.flushLoggedErrors()
        self.assertIsNotNone(self.failureResultOf(store.count_tasks()))
        os.makedirs(folder)  # the folder appears: the next attempt succeeds
        clock.advance(StoreService.retry_seconds)
        self.assertEqual(await store.count_tasks(), 0)
        await service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    @async_test
    async def test_manager_services_start_and_stop_cleanly(self):
        clock = Clock()
        store = SQLiteStore(os.path.abspath(self.mktemp() + ".sqlite"))
        manager = build_manager(Config(), store, clock, bcrypt_rounds=4, lease_holder="host:8083")
        manager.services.startService()
        self.assertEqual(await store.count_workers(), 0)
        self.assertEqual(manager.lease_holder, "host:8083")
        await manager.services.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
