"""The update pusher (PROTOCOL §6.5): decisions on a Clock, pushes real over loopback HTTP."""

from datetime import timedelta

from twisted.internet import task
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial import unittest

from flamenco import statuses
from flamenco.cancellation import CancelRequests
from flamenco.ids import new_object_id
from flamenco.testing import client_for_test, serve_for_test, sqlite_store_for_test
from flamenco.timefmt import utc_now
from flamenco.updates import UpdateQueue
from flamenco.upstream.pusher import LEASE_NAME, UpdatePusher


class PusherTests(unittest.TestCase):
    async def make(self, *, generation="2021", max_count=3, start=True, backoff_max=8.0,
                   give_up_after=0):
        self.server = serve_for_test(self, generation=generation)
        self.clock = task.Clock()
        self.clock.advance(1515575700)
        self.store = await sqlite_store_for_test(self)
        self.updates = UpdateQueue(self.store, self.clock)
        self.client = client_for_test(self, self.server, clock=self.clock, timeout=5)
        self.pusher = UpdatePusher(
            self.client, self.store, CancelRequests(self.store, self.updates), self.clock,
            max_count=max_count, max_interval=30, cancel_interval=10, backoff_max=backoff_max,
            lease_holder="manager-a", lease_seconds=30, give_up_after=give_up_after,
        )
        _, self.ids = self.server.create_job([{"name": f"t{i}"} for i in range(4)],
                                             status="claimed-by-manager")
        await self.store.store_server_tasks(
            [self.server.tasks[t].public() for t in self.ids], utc_now(self.clock))
        if start:
            self.pusher.startService()
            self.addCleanup(self.pusher.stopService)
            await self.pusher.when_idle()

    async def tick(self, seconds=1):
        for _ in range(int(seconds)):
            self.clock.advance(1)
            await self.pusher.when_idle()

    async def queue(self, count, task_id=None, **fields):
        for i in range(count):
            await self.updates.queue(task_id or self.ids[0], activity=f"step {i}",
                                     log=f"line {i}", **fields)

    def batches(self):
        return [batch["count"] for batch in self.server.pushed_batches]

    async def test_empty_push_at_start_and_every_cancel_interval(self):
        await self.make()
        self.assertEqual(self.batches(), [0])
        await self.tick(9)
        self.assertEqual(self.batches(), [0])
        await self.tick(1)
        self.assertEqual(self.batches(), [0, 0])

    async def test_batch_full_or_interval_passed(self):
        await self.make()
        await self.queue(2)
        await self.tick(1)
        self.assertEqual(self.batches(), [0, 2], "nothing was ever pushed: push at once")
        await self.queue(2)
        await self.tick(9)
        self.assertEqual(self.batches(), [0, 2])
        await self.tick(1)
        self.assertEqual(self.batches(), [0, 2, 0], "the cancel poll is an empty push")
        await self.queue(1)
        await self.tick(1)
        self.assertEqual(self.batches(), [0, 2, 0, 3], "a full batch goes at the next inspection")
        await self.queue(1)
        await self.tick(29)
        self.assertEqual(self.batches(), [0, 2, 0, 3, 0, 0], "cancel polls; the update waits")
        await self.tick(1)
        self.assertEqual(self.batches(), [0, 2, 0, 3, 0, 0, 1], "max_interval after the last")
        self.assertEqual(await self.store.count_queued_updates(), 0)

    async def test_a_backlog_drains_without_waiting_for_ticks(self):
        await self.make()
        await self.queue(10)
        await self.tick(1)
        self.assertEqual(self.batches(), [0, 3, 3, 3])
        self.assertEqual(await self.store.count_queued_updates(), 1)
        self.assertEqual(len(self.server.task_logs), 9)

    async def test_updates_arrive_in_order_with_their_logs(self):
        await self.make(max_count=500)
        await self.queue(5, task_status="active")
        await self.pusher.push_batch(await self.store.queued_updates(500))
        self.assertEqual(self.server.logs_of(self.ids[0]), [f"line {i}" for i in range(5)])
        self.assertEqual(self.server.tasks[self.ids[0]].doc["activity"], "step 4")

    async def test_only_acknowledged_updates_are_removed(self):
        await self.make(generation="2017")
        unknown = new_object_id()  # a 2017 Server does not acknowledge these
        await self.queue(1, task_id=unknown)
        await self.queue(2)
        self.pusher.push_soon()
        await self.tick(1)
        left = await self.store.queued_updates(10)
        self.assertEqual([u.task_id for u in left], [unknown])

    async def test_an_update_never_acknowledged_is_dropped_after_so_many_pushes(self):
        await self.make(generation="2017", give_up_after=3, start=False)
        unknown = new_object_id()  # a 2017 Server never acknowledges these
        await self.queue(1, task_id=unknown)
        for _ in range(2):
            await self.queue(1)
            await self.pusher.push_batch(await self.store.queued_updates(10))
        self.assertEqual([u.task_id for u in await self.store.queued_updates(10)], [unknown])
        with capturedLogs() as events:
            await self.pusher.push_batch(await self.store.queued_updates(10))
        self.assertEqual(await self.store.queued_updates(10), [])
        self.assertEqual(self.pusher.unacknowledged_sends, {})
        dropped = [e for e in events if e["log_level"] == LogLevel.error]
        self.assertEqual(len(dropped), 1)
        self.assertIn(unknown, formatEvent(dropped[0]))

    async def test_cancel_requests_reach_the_local_tasks(self):
        await self.make()
        active, claimed = self.ids[0], self.ids[1]
        await self.store.set_task_status(active, statuses.ACTIVE)
        job = self.server.tasks[active].doc["job"]
        self.server.cancel_job(job)
        await self.tick(10)
        self.assertEqual((await self.store.get_task(active)).status, statuses.CANCEL_REQUESTED)
        self.assertEqual((await self.store.get_task(claimed)).status, statuses.CANCELED)
        await self.tick(30)  # the queued `canceled` updates go out after max_interval
        self.assertEqual(self.server.task_status(claimed), statuses.CANCELED)
        self.assertEqual(self.server.task_status(active), statuses.CANCEL_REQUESTED)
        # The worker reports `canceled`, which reaches the Server; the listing stops.
        await self.updates.queue(active, task_status=statuses.CANCELED)
        await self.tick(30)
        self.assertEqual(self.server.task_status(active), statuses.CANCELED)
        self.assertEqual(self.server.jobs[job].status, "canceled")

    async def test_exponential_back_off_with_a_cap_then_recovery(self):
        await self.make(backoff_max=8)
        await self.queue(3)
        self.server.down_status = 503
        attempts = []
        for second in range(1, 40):
            before = len(self.server.requests)
            await self.tick(1)
            if len(self.server.requests) > before:
                attempts.append(second)
        self.assertEqual(attempts, [1, 2, 4, 8, 16, 24, 32])
        self.assertEqual(await self.store.count_queued_updates(), 3, "nothing lost")
        self.server.down_status = None
        await self.tick(8)
        self.assertEqual(await self.store.count_queued_updates(), 0)
        self.assertEqual(self.pusher.failures, 0)

    async def test_pushes_are_gzipped(self):
        await self.make()
        await self.queue(3)
        await self.tick(1)
        self.assertEqual([b["gzip"] for b in self.server.pushed_batches], [True, True])

    async def test_only_the_lease_holder_pushes(self):
        await self.make(start=False)
        await self.store.try_lease(LEASE_NAME, "manager-b", utc_now(self.clock),
                                   timedelta(seconds=30))
        await self.queue(3)
        await self.pusher.inspect()
        self.assertEqual(self.batches(), [])
        self.clock.advance(31)
        await self.pusher.inspect()
        self.assertEqual(self.batches(), [3])

    async def test_a_refused_push_logs_which_settings_to_check(self):
        await self.make(start=False)
        self.client._auth = b"Basic d3Jvbmc6"  # "wrong:"
        await self.queue(1)
        with capturedLogs() as events:
            await self.pusher.inspect()
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1)
        self.assertIn("answered 401 (check `manager_secret` and `manager_id`)", warnings[0])


class PushLimitTests(unittest.TestCase):
    make, tick, batches = PusherTests.make, PusherTests.tick, PusherTests.batches

    async def test_out_of_range_values_already_queued_are_corrected_before_the_push(self):
        await self.make()
        await self.updates.queue(self.ids[0], activity="bad", task_progress_percentage=150,
                                 current_command_idx=10**30, metrics={"timing": {"x": "slow"}})
        await self.updates.queue(self.ids[1], activity="good", task_progress_percentage=40,
                                 command_progress_percentage=60)
        with capturedLogs() as events:
            await self.tick(1)
        self.assertEqual(self.batches(), [0, 2])
        self.assertEqual(await self.store.count_queued_updates(), 0, "both acknowledged")
        bad, good = (self.server.tasks[t].doc for t in self.ids[:2])
        self.assertEqual((bad["task_progress_percentage"], bad["current_command_index"]), (0, 0))
        self.assertEqual((good["task_progress_percentage"], good["command_progress_percentage"]),
                         (40, 60))
        warnings = [formatEvent(e) for e in events if e["log_level"] == LogLevel.warn]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("task_progress_percentage, current_command_idx, current_command_index,"
                      " metrics", warnings[0])

class LogUploadTests(unittest.TestCase):
    """§6.7: the Server asks for logs in push answers; the Manager uploads each once."""

    async def test_requested_logs_are_uploaded_gzipped(self):
        import gzip

        from flamenco.task_logs import MISSING_LOG, TaskLogs
        from flamenco.upstream.log_upload import LogUploader

        server = serve_for_test(self)
        clock = task.Clock()
        clock.advance(1515575700)
        store = await sqlite_store_for_test(self)
        logs = TaskLogs(store, self.mktemp())
        updates = UpdateQueue(store, clock, logs)
        client = client_for_test(self, server, clock=clock, timeout=5)
        uploads = LogUploader(client, logs)
        pusher = UpdatePusher(client, store, CancelRequests(store, updates), clock,
                              max_count=10, max_interval=30, cancel_interval=10,
                              backoff_max=8, lease_holder="m", lease_seconds=30,
                              log_uploads=uploads)
        job, (logged, silent) = server.create_job([{"name": "a"}, {"name": "b"}],
                                                  status="claimed-by-manager")
        await store.store_server_tasks([server.tasks[logged].public()], utc_now(clock))
        await updates.queue(logged, log="rendered frame 1")
        server.log_requests = {logged: job, silent: job}
        await pusher.push_batch([])
        await uploads.when_idle()
        self.assertEqual(sorted(uploads.uploaded), sorted([logged, silent]))
        self.assertEqual(gzip.decompress(server.attached_logs[logged]), b"rendered frame 1\n")
        self.assertEqual(gzip.decompress(server.attached_logs[silent]), MISSING_LOG)
        self.assertEqual(server.log_requests, {})
        uploads.request([{"job": "nope", "task": logged}])  # malformed: ignored
        await uploads.when_idle()
        self.assertEqual(len(uploads.uploaded), 2)


class LocalTaskTests(unittest.TestCase):
    async def test_updates_of_test_tasks_never_reach_the_server(self):
        from flamenco.test_tasks import new_local_task_id

        server = serve_for_test(self)
        clock = task.Clock()
        clock.advance(1515575700)
        store = await sqlite_store_for_test(self)
        updates = UpdateQueue(store, clock)
        pusher = UpdatePusher(client_for_test(self, server, clock=clock, timeout=5), store,
                              CancelRequests(store, updates), clock, max_count=10,
                              max_interval=30, cancel_interval=10, backoff_max=8,
                              lease_holder="m", lease_seconds=30)
        _, (server_task,) = server.create_job([{"name": "a"}], status="claimed-by-manager")
        local = new_local_task_id()
        await updates.queue(local, task_status="completed")
        await updates.queue(server_task, activity="real work")
        await pusher.push_batch(await store.queued_updates(10))
        self.assertEqual(await store.count_queued_updates(), 0)
        self.assertEqual(server.pushed_batches[-1]["count"], 1)
        await updates.queue(local, activity="only local")
        self.assertTrue(await pusher.push_batch(await store.queued_updates(10)))
        self.assertEqual(len(server.pushed_batches), 1)
        self.assertEqual(await store.count_queued_updates(), 0)
