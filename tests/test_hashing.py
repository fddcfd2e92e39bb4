"""The bcrypt pool: bounded queue, abandoned work skipped, known Workers first; over real HTTP."""

import threading
import time

import treq
from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from flamenco.hashing import HashingPool, Overloaded
from tests.inprocess import InProcessManager


async def until(condition, deadline=5.0):
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("condition not met before the deadline")
        await task.deferLater(reactor, 0.01, lambda: None)


class Gate:
    """A job that blocks its thread until released, recording the order jobs ran in."""

    def __init__(self, testcase):
        self.event = threading.Event()
        self.ran: list[str] = []
        testcase.addCleanup(self.event.set)

    def job(self, name):
        self.event.wait(10)
        self.ran.append(name)
        return name


class HashingPoolTests(TestCase):
    def pool(self, **kwargs):
        pool = HashingPool(reactor, threads=1, budget=2.5, seconds_per_job=1.0, **kwargs)
        self.addCleanup(pool.stop)
        return pool

    async def test_refuses_at_once_what_could_not_finish_within_the_budget(self):
        pool, gate = self.pool(), Gate(self)
        running = pool.submit(gate.job, "running")
        queued = pool.submit(gate.job, "queued")  # finishes after ~2 s: within 2.5 s
        with self.assertRaises(Overloaded) as refused:
            pool.submit(gate.job, "refused")  # would finish after ~3 s
        self.assertEqual(refused.exception.retry_after, 1)
        gate.event.set()
        self.assertEqual(await defer.gatherResults([running, queued]), ["running", "queued"])
        self.assertEqual(gate.ran, ["running", "queued"])
        self.assertLess(pool.seconds_per_job, 1.0, "the estimate follows measured times")

    async def test_secret_checks_go_before_registrations(self):
        pool, gate = self.pool(), Gate(self)
        first = pool.submit(gate.job, "first")
        later = pool.submit(gate.job, "registration")
        urgent = pool.submit(gate.job, "sign-on", urgent=True)
        with self.assertRaises(Overloaded):
            pool.submit(gate.job, "another registration")
        gate.event.set()
        await defer.gatherResults([first, later, urgent])
        self.assertEqual(gate.ran, ["first", "sign-on", "registration"])

    async def test_work_nobody_waits_for_is_not_started(self):
        pool, gate = self.pool(), Gate(self)
        first = pool.submit(gate.job, "first")
        abandoned = pool.submit(gate.job, "abandoned")
        abandoned.cancel()
        self.assertFailure(abandoned, defer.CancelledError)
        gate.event.set()
        await first
        self.assertEqual((gate.ran, pool.skipped, pool.started), (["first"], 1, 1))


class StormTests(TestCase):
    async def manager(self):
        m = await InProcessManager(self).start()
        self.pool = m.manager.workers.hashing
        self.gate = Gate(self)
        return m

    def fill_pool(self):
        """One job running, and every further one judged to take 2 s: nothing more fits."""
        self.pool.seconds_per_job = 2.0
        return self.pool.submit(self.gate.job, "blocker")

    async def test_registration_beyond_the_queue_is_503_with_retry_after(self):
        m = await self.manager()
        blocker = self.fill_pool()
        response = await m.request("POST", "/register-worker", json_body={
            "secret": "s", "platform": "linux", "nickname": "n", "supported_job_types": ["sleep"]})
        self.assertEqual(response.code, 503)
        self.assertEqual(response.headers.getRawHeaders(b"retry-after"), [b"2"])
        self.assertIn("try again later", response.json["error"])
        self.assertEqual(await m.store.count_workers(), 0)
        self.gate.event.set()
        await blocker
        await m.register()
        self.assertEqual(await m.store.count_workers(), 1)

    async def test_a_registration_whose_worker_hung_up_is_not_hashed(self):
        m = await self.manager()
        blocker = self.pool.submit(self.gate.job, "blocker")
        with self.assertRaises(Exception):
            await treq.post(m.url + "/register-worker", timeout=0.3, data=(
                b'{"secret": "s", "platform": "linux", "nickname": "n"}'))
        await until(lambda: self.pool.queued == 1)
        await task.deferLater(reactor, 0.2, lambda: None)  # the close reaches the Manager
        self.gate.event.set()
        await blocker
        await until(lambda: self.pool.skipped == 1)
        self.assertEqual((self.pool.started, await m.store.count_workers()), (1, 0))

    async def test_a_registered_worker_signs_on_without_a_second_hash(self):
        m = await self.manager()
        started = self.pool.started
        worker = await m.register(generation="2.x")
        self.assertEqual(self.pool.started, started + 1, "the registration's hash")
        self.assertEqual((await m.request("POST", "/sign-on", auth=worker)).code, 204)
        self.assertEqual((await m.request("POST", "/task", auth=worker)).code, 204)
        self.assertEqual(self.pool.started, started + 1, "nothing hashed after it")

    async def test_known_workers_sign_on_from_the_cache_while_the_pool_is_full(self):
        m = await self.manager()
        known = await m.register(generation="2.x")
        uncached = await m.register(generation="2.x", nickname="render-02")
        self.assertEqual((await m.request("POST", "/sign-on", auth=known)).code, 204)
        started = self.pool.started
        blocker = self.fill_pool()
        m.manager.workers.credentials.forget(uncached[0])
        self.assertEqual((await m.request("POST", "/sign-on", auth=known)).code, 204)
        refused = await m.request("POST", "/sign-on", auth=uncached)
        self.assertEqual((refused.code, refused.headers.getRawHeaders(b"retry-after")),
                         (503, [b"2"]))
        self.assertEqual(self.pool.started, started + 1, "only the blocker ran")
        self.gate.event.set()
        await blocker
