"""Failed Worker authentications per address: 429 + Retry-After, on a Clock, over real HTTP."""

from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import TestCase

from flamenco.auth_limits import FailedAuthLimiter, TooManyFailures
from flamenco.ids import new_object_id
from tests.inprocess import InProcessManager


def warnings(events):
    return [e for e in events if e["log_level"] == LogLevel.warn]


class LimiterTests(TestCase):
    def test_threshold_window_and_one_log_line_per_window(self):
        clock = Clock()
        limiter = FailedAuthLimiter(clock, threshold=3, window=60)
        with capturedLogs() as events:
            for _ in range(2):
                limiter.failed("10.0.0.9")
            limiter.check("10.0.0.9")
            clock.advance(20)
            for _ in range(5):
                limiter.failed("10.0.0.9")
            with self.assertRaises(TooManyFailures) as refused:
                limiter.check("10.0.0.9")
            limiter.check("10.0.0.10")
        self.assertEqual(refused.exception.retry_after, 40)
        self.assertEqual(len(warnings(events)), 1)
        clock.advance(40)
        limiter.check("10.0.0.9")
        with capturedLogs() as events:
            for _ in range(3):
                limiter.failed("10.0.0.9")
        self.assertEqual(len(warnings(events)), 1, "logged again in the next window")


class RateLimitOverHTTPTests(TestCase):
    async def test_failures_beyond_the_threshold_get_429_but_verified_workers_pass(self):
        m = await InProcessManager(self, worker_auth_failure_limit=3,
                                   worker_auth_failure_window_seconds=60).start()
        good = await m.register()
        self.assertEqual((await m.request("POST", "/task", auth=good)).code, 204)
        other = await m.register(nickname="render-02")
        m.manager.workers.credentials.forget(other[0])
        before = await m.store.list_workers()
        started = m.manager.workers.hashing.started
        for auth in ((good[0], "wrong"), (new_object_id(), "x"), ("not-an-id", "x")):
            self.assertEqual((await m.request("POST", "/task", auth=auth)).code, 401)
        limited = await m.request("POST", "/task", auth=(good[0], "wrong"))
        self.assertEqual(limited.code, 429)
        self.assertEqual(limited.headers.getRawHeaders(b"retry-after"), [b"60"])
        self.assertIn("too many failed authentications", limited.json["error"])
        self.assertEqual(m.manager.workers.hashing.started, started + 1,
                         "only the one wrong secret was checked with bcrypt")
        self.assertEqual((await m.request("POST", "/task", auth=good)).code, 204,
                         "a Worker the cache vouches for is not delayed")
        self.assertEqual((await m.request("POST", "/task", auth=other)).code, 429)
        self.assertEqual(await m.store.list_workers(), before)
        m.clock.advance(60)
        self.assertEqual((await m.request("POST", "/task", auth=other)).code, 204)
        self.assertEqual((await m.request("POST", "/task", auth=(good[0], "wrong"))).code, 401)
