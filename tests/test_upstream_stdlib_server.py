"""The upstream link against a Server on Python's standard `http.server` (HTTP/1.0: one request
per connection), not our own simulator: the defect of issue 7 reproduced and fixed."""

from twisted.internet import task
from twisted.trial import unittest

from flamenco.cancellation import CancelRequests
from flamenco.ids import new_object_id
from flamenco.testing import sqlite_store_for_test
from flamenco.updates import UpdateQueue
from flamenco.upstream.client import UpstreamClient
from flamenco.upstream.pusher import UpdatePusher
from tests.stdlib_server import serve_stdlib_for_test
from tests.util import async_test

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

    @async_test
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

    @async_test
    async def test_requests_in_a_row_each_get_their_answer(self):
        client = self.client(gzip_bodies=False)
        body = {"manager_url": "http://m/", "variables": {}, "nr_of_workers": 0,
                "path_replacement": {}}
        for _ in range(3):
            await client.startup(body)
            self.assertEqual((await client.depsgraph(None)).code, 204)
            await client.push([])
        self.assertEqual(len(self.server.answered), 9)

    @async_test
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
