"""The task timeout checker, driven by `task.Clock`."""

from datetime import timedelta

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from flamenco.store.sqlite import SQLiteStore
from flamenco.timeouts import TaskTimeoutChecker
from flamenco.updates import UpdateQueue
from tests.factories import T0, task_doc, worker


class TimeoutCheckerTests(TestCase):
    async def checker(self, *, holder="manager-a", store=None):
        if store is None:
            # Commits at once (no group commit on the reactor), as the Clock-driven steps expect.
            store = SQLiteStore(self.mktemp() + ".sqlite", sync="normal")
            await store.open()
            self.addCleanup(store.close)
        clock = Clock()
        clock.advance(T0.timestamp())
        checker = TaskTimeoutChecker(store, UpdateQueue(store, clock), clock, timeout=60,
                                     interval=5, grace=300, lease_holder=holder)
        return checker, store, clock

    async def test_silent_task_fails_after_grace_and_timeout(self):
        checker, store, clock = await self.checker()
        silent, alive = task_doc(name="render-1"), task_doc(name="render-2")
        await store.store_server_tasks([silent, alive], T0)
        w1, w2 = worker(nickname="render-01"), worker(nickname="render-02", address="10.0.0.22")
        await store.claim_task(w1, T0)
        await store.claim_task(w2, T0)
        await store.ping_task(silent["_id"], w1.id, T0)  # it started, then went silent
        checker.startService()
        self.addCleanup(checker.stopService)

        clock.advance(299)  # within the start-up grace period nothing is checked
        await store.ping_task(alive["_id"], w2.id, checker.updates.now())
        self.assertEqual(await store.count_queued_updates(), 0)
        clock.advance(1)
        self.assertEqual(await store.count_queued_updates(), 1)

        failed = (await store.queued_updates(10))[0]
        self.assertEqual((failed.task_id, failed.task_status, failed.activity),
                         (silent["_id"], "failed", "Task timed out on worker 10.0.0.21 (render-01)"))
        self.assertRegex(
            failed.log,
            r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0000 Task render-1 \(" + silent["_id"]
            + r"\) timed out, was active but untouched since 2018-01-10T09:15:00Z\."
            r" Was handled by worker 10\.0\.0\.21 \(render-01\)$",
        )
        self.assertEqual((await store.get_task(silent["_id"])).status, "failed")
        self.assertEqual((await store.get_task(alive["_id"])).status, "active")

    async def test_task_its_worker_never_reported_on_is_requeued_not_failed(self):
        checker, store, clock = await self.checker()
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        w = worker(nickname="render-01")
        await store.claim_task(w, T0)
        checker.startService()
        self.addCleanup(checker.stopService)
        clock.advance(300)
        (requeue,) = await store.queued_updates(10)
        self.assertEqual(
            (requeue.task_status, requeue.worker, requeue.activity),
            ("claimed-by-manager", "-", "Re-queued task after unassigning from worker"
             " 10.0.0.21 (render-01): it never reported on the task"))
        self.assertEqual((await store.claim_task(worker(), T0)).id, doc["_id"])

    async def test_nothing_is_checked_before_the_grace_period(self):
        checker, store, clock = await self.checker()
        await store.store_server_tasks([task_doc()], T0)
        await store.claim_task(worker(), T0)
        checker.startService()
        self.addCleanup(checker.stopService)
        clock.advance(299)
        self.assertEqual(await store.count_queued_updates(), 0)
        clock.advance(1)
        self.assertEqual(await store.count_queued_updates(), 1)

    async def test_stop_cancels_pending_timers(self):
        checker, _, clock = await self.checker()
        checker.startService()
        checker.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])

    async def test_only_the_lease_holder_sweeps(self):
        first, store, clock = await self.checker(holder="manager-a")
        second, _, _ = await self.checker(holder="manager-b", store=store)
        await store.store_server_tasks([task_doc()], T0)
        await store.claim_task(worker(), T0 - timedelta(minutes=5))
        self.assertEqual(len(await first.sweep()), 1)
        self.assertEqual(await second.sweep(), [])
