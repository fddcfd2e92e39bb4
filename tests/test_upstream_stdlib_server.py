"""The upstream link against a Server on Python's standard `http.server` (HTTP/1.0: one request
per connection), not our own simulator: the defect of issue 7 reproduced and fixed."""

from twisted.internet import task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from flamenco.cancellation import CancelRequests
from flamenco.ids import new_object_id
from flamenco.testing import sqlite_store_for_test
from flamenco.updates import UpdateQueue
from flamenco.upstream.client import UpstreamClient, UpstreamError
from flamenco.upstream.pusher import UpdatePusher
from tests.stdlib_server import serve_stdlib_for_test

MANAGER_ID = "5a1f0c3e9f1b2c0d4e5f6a70"


class StdlibServerTests(unittest.TestCase):
    def setUp(self):
        self.server = serve_stdlib_for_test(self)
        self.clock = task.Clock()
        self.clock.advance(1515575700)

    def client(self, **options) -> UpstreamClient:
        client = UpstreamClient(self.server.url, MANAGER_ID, "secret", clock=self.clock,
                                timeout=5, **options)
        self.addCleanup(client.close)
        return client

    async def test_a_server_that_cannot_decode_gzip_gets_the_push_uncompressed(self):
        # The gzip push gets 400 and the connection is closed (HTTP/1.0); the uncompressed
        # retry must not go out on that connection.
        client = self.client()
        update = {"_id": new_object_id(), "task_id": new_object_id(), "log": "x"}
        answer = await client.push([update])
        self.assertEqual(answer["handled_update_ids"], [update["_id"]])
        await client.push([])
        self.assertEqual(self.server.pushes, [{"count": 1, "gzip": False},
                                              {"count": 0, "gzip": False}])
        self.assertEqual([code for _, _, code in self.server.answered], [400, 200, 200])

    async def test_requests_in_a_row_each_get_their_answer(self):
        client = self.client(gzip_bodies=False)
        body = {"manager_url": "http://m/", "variables": {}, "nr_of_workers": 0,
                "path_replacement": {}}
        for _ in range(3):
            await client.startup(body)
            self.assertEqual((await client.depsgraph(None)).code, 204)
            await client.push([])
        self.assertEqual(len(self.server.answered), 9)

    async def test_a_backlog_drains_without_a_failed_push(self):
        store = await sqlite_store_for_test(self)
        updates = UpdateQueue(store, self.clock)
        client = self.client(gzip_bodies=False)
        pusher = UpdatePusher(client, store, CancelRequests(store, updates), self.clock,
                              max_count=3, max_interval=30, cancel_interval=10, backoff_max=8,
                              lease_holder="manager-a", lease_seconds=30)
        for i in range(10):
            await updates.queue(new_object_id(), activity=f"step {i}", log=f"line {i}")
        await pusher.inspect()
        self.assertEqual(pusher.failures, 0)
        self.assertEqual(await store.count_queued_updates(), 1)
        self.assertEqual([push["count"] for push in self.server.pushes], [3, 3, 3])


RETRIED = "sending again on a new connection"


def retries(events) -> int:
    return sum(RETRIED in formatEvent(event) for event in events)


class ClosedConnectionTests(unittest.TestCase):
    """Connections the Server closes under the client: honoured, or survived by one retry."""

    def client(self, server) -> UpstreamClient:
        client = UpstreamClient(server.url, MANAGER_ID, "secret", timeout=5,
                                gzip_bodies=False)
        self.addCleanup(client.close)
        return client

    async def test_http10_answers_are_not_reused(self):
        server = serve_stdlib_for_test(self)
        client = self.client(server)
        with capturedLogs() as events:
            for _ in range(4):
                await client.push([])
        self.assertEqual(len(server.pushes), 4)
        self.assertEqual(retries(events), 0, "no request went out on a closed connection")

    async def test_connection_close_is_honoured(self):
        server = serve_stdlib_for_test(self, http11=True)
        server.httpd.close_after_answer = "announced"
        client = self.client(server)
        with capturedLogs() as events:
            for _ in range(4):
                await client.push([])
        self.assertEqual(len(server.pushes), 4)
        self.assertEqual(retries(events), 0)

    async def test_a_connection_closed_silently_after_the_answer_costs_one_retry(self):
        server = serve_stdlib_for_test(self, http11=True)
        server.httpd.close_after_answer = "silently"  # HTTP/1.1, no `Connection: close`
        client = self.client(server)
        with capturedLogs() as events:
            for _ in range(4):
                await client.push([])
        self.assertEqual(len(server.pushes), 4)
        self.assertGreater(retries(events), 0)

    async def test_a_reused_connection_is_retried_once_on_a_new_one(self):
        server = serve_stdlib_for_test(self, http11=True)
        client = self.client(server)
        await client.push([])  # keeps its connection open: it goes back to the pool
        server.httpd.drop_requests = True  # read the request, close without an answer
        with capturedLogs() as events:
            await self.assertFailure(client.push([]), UpstreamError)
        self.assertEqual(server.httpd.dropped, 2, "the idle connection, then one new one")
        self.assertEqual(retries(events), 1)

    async def test_a_new_connection_is_not_retried(self):
        server = serve_stdlib_for_test(self, http11=True)
        server.httpd.drop_requests = True
        await self.assertFailure(self.client(server).push([]), UpstreamError)
        self.assertEqual(server.httpd.dropped, 1)
