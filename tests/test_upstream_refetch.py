"""Refetch before hand-out (PROTOCOL §5.5) against the simulated Server, deadline on a Clock."""

from twisted.internet import defer, task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from flamenco.documents import Task
from flamenco.ids import new_object_id
from flamenco.testing import client_for_test, serve_for_test
from flamenco.upstream import Freshness
from flamenco.upstream.refetch import Refetcher, interpret


def cached(server, task_id, etag=None):
    doc = server.tasks[task_id].public()
    if etag is not None:
        doc["_etag"] = etag
    return Task(doc=doc)


class RefetchTests(unittest.TestCase):
    def setUp(self):
        self.server = serve_for_test(self)
        self.clock = task.Clock()
        # The client's own deadline is long; the refetcher's (1 s on the Clock) must win.
        self.client = client_for_test(self, self.server, clock=self.clock, timeout=30)
        self.refetcher = Refetcher(self.client, self.clock, deadline=1.0)
        _, self.ids = self.server.create_job([{"name": "a"}, {"name": "b"}])

    async def test_unchanged(self):
        answer = await self.refetcher.refetch(cached(self.server, self.ids[0]))
        self.assertIs(answer.freshness, Freshness.UNCHANGED)
        self.assertEqual(self.server.requests[-1], ("refetch", {"task_id": self.ids[0]}))

    async def test_changed_brings_the_new_document(self):
        old = cached(self.server, self.ids[0])
        self.server.set_task(self.ids[0], priority=99)
        answer = await self.refetcher.refetch(old)
        self.assertIs(answer.freshness, Freshness.CHANGED)
        self.assertEqual(answer.doc["priority"], 99)
        self.assertEqual(answer.doc["_etag"], self.server.tasks[self.ids[0]].etag)

    async def test_gone(self):
        old = cached(self.server, self.ids[0])
        self.server.delete_task(self.ids[0])
        answer = await self.refetcher.refetch(old)
        self.assertIs(answer.freshness, Freshness.GONE)

    async def test_server_error_hands_out_as_cached(self):
        self.server.down_status = 500
        answer = await self.refetcher.refetch(cached(self.server, self.ids[0]))
        self.assertIs(answer.freshness, Freshness.UNCHANGED)

    async def test_unreachable_hands_out_as_cached(self):
        old = cached(self.server, self.ids[0])
        await self.server.stop()
        answer = await self.refetcher.refetch(old)
        self.assertIs(answer.freshness, Freshness.UNCHANGED)

    async def test_hanging_server_costs_one_deadline_and_holds_up_nobody(self):
        self.server.hang.add(self.ids[0])
        slow = self.refetcher.refetch(cached(self.server, self.ids[0]))
        # A second worker's refetch, concurrent with the hanging one, answers at once.
        fast = await self.refetcher.refetch(cached(self.server, self.ids[1]))
        self.assertIs(fast.freshness, Freshness.UNCHANGED)
        self.assertNoResult(slow)
        self.clock.advance(0.99)
        self.assertNoResult(slow)
        self.clock.advance(0.01)
        answer = self.successResultOf(slow)
        self.assertIs(answer.freshness, Freshness.UNCHANGED)

    async def test_many_concurrent_hanging_refetches_are_independent(self):
        self.server.hang.add("refetch")
        pending = [self.refetcher.refetch(cached(self.server, self.ids[i % 2])) for i in range(20)]
        self.clock.advance(1)
        results = await defer.gatherResults(pending)
        self.assertEqual({r.freshness for r in results}, {Freshness.UNCHANGED})


class InterpretTests(unittest.TestCase):
    """The §5.5 table for answers the simulated Server does not give."""

    def test_table(self):
        task_id = new_object_id()
        self.assertIs(interpret(task_id, 304, b"").freshness, Freshness.UNCHANGED)
        self.assertIs(interpret(task_id, 204, b"").freshness, Freshness.GONE)
        self.assertIs(interpret(task_id, 403, b"").freshness, Freshness.GONE)
        self.assertIs(interpret(task_id, 404, b"").freshness, Freshness.GONE)
        self.assertIs(interpret(task_id, 301, b"").freshness, Freshness.UNCHANGED)
        self.assertIs(interpret(task_id, 502, b"").freshness, Freshness.UNCHANGED)
        self.assertIs(interpret(task_id, 200, b"<html>").freshness, Freshness.GONE)
        self.assertIs(interpret(task_id, 200, b'{"_id": "%s"}' % task_id.encode()).freshness,
                      Freshness.GONE)  # no status, no commands: undecodable
        other = b'{"_id": "%s", "status": "queued", "commands": []}' % new_object_id().encode()
        self.assertIs(interpret(task_id, 200, other).freshness, Freshness.GONE)
        good = b'{"_id": "%s", "status": "queued", "commands": []}' % task_id.encode()
        self.assertIs(interpret(task_id, 200, good).freshness, Freshness.CHANGED)

    def test_a_refused_refetch_logs_which_settings_to_check(self):
        with capturedLogs() as events:
            interpret(new_object_id(), 401, b"")
            interpret(new_object_id(), 404, b"")  # the task is gone: no setting to check
        lines = [formatEvent(e) for e in events]
        self.assertEqual(len(lines), 1)
        self.assertIn("401 (check `manager_secret` and `manager_id`)", lines[0])
