"""The treq adapter against the simulated Server over loopback HTTP."""

import json

from twisted.internet import defer, protocol, reactor, task
from twisted.trial import unittest

from flamenco.ids import new_object_id
from flamenco.testing import client_for_test, serve_for_test
from flamenco.testing.server import demo_job_tasks
from flamenco.upstream.client import UpstreamClient, UpstreamError


class _SilentServer(protocol.Factory):
    """Reads one request and never answers; records its arrival and the connection's end."""

    def __init__(self):
        self.request_received: defer.Deferred[bytes] = defer.Deferred()
        self.connection_lost: defer.Deferred[None] = defer.Deferred()

    def buildProtocol(self, addr):
        return _SilentConnection(self)


class _SilentConnection(protocol.Protocol):
    def __init__(self, server: _SilentServer):
        self.server = server
        self.received = b""

    def dataReceived(self, data):
        self.received += data
        if b"\r\n\r\n" in self.received and not self.server.request_received.called:
            self.server.request_received.callback(self.received)

    def connectionLost(self, reason=protocol.connectionDone):
        self.server.connection_lost.callback(None)


class UpstreamClientTests(unittest.TestCase):
    def setUp(self):
        self.server = serve_for_test(self)
        self.clock = task.Clock()
        self.client = client_for_test(self, self.server, clock=self.clock, timeout=5)

    async def test_authenticates_with_the_token_and_an_empty_password(self):
        await self.client.startup({"manager_url": "http://m/", "variables": {},
                                   "nr_of_workers": 3, "path_replacement": {}})
        self.assertEqual(self.server.notifications[0][1]["nr_of_workers"], 3)
        wrong = client_for_test(self, self.server, manager_secret="nope", clock=self.clock)
        error = await self.assertFailure(
            wrong.startup({"manager_url": "", "variables": {}, "nr_of_workers": 0,
                           "path_replacement": {}}), UpstreamError)
        self.assertEqual(error.code, 401)

    async def test_depsgraph(self):
        result = await self.client.depsgraph(None)
        self.assertEqual((result.code, result.tasks), (204, []))
        _, ids = self.server.create_job(demo_job_tasks())
        result = await self.client.depsgraph(None, ("sleep",))
        self.assertEqual([t["_id"] for t in result.tasks], ids)
        self.assertTrue(result.last_updated)
        self.assertEqual(result.honoured_types, ("sleep",))
        again = await self.client.depsgraph(result.last_updated)
        self.assertEqual(again.code, 304)
        route, details = self.server.requests[-1]
        self.assertEqual((route, details["since"]), ("depsgraph", result.last_updated))

    async def test_failure_status_is_an_error(self):
        self.server.down_status = 503
        error = await self.assertFailure(self.client.depsgraph(None), UpstreamError)
        self.assertEqual(error.code, 503)
        error = await self.assertFailure(self.client.push([]), UpstreamError)
        self.assertEqual(error.code, 503)

    async def test_unreachable_is_an_error(self):
        await self.server.stop()
        await self.assertFailure(self.client.depsgraph(None), UpstreamError)

    async def test_every_request_has_a_deadline(self):
        self.server.hang.add("depsgraph")
        d = self.client.depsgraph(None)
        self.assertNoResult(d)
        self.clock.advance(5)
        error = await self.assertFailure(d, UpstreamError)
        self.assertIn("no answer in 5 s", str(error))

    async def test_push_is_gzipped_and_falls_back_after_415(self):
        _, (task_id,) = self.server.create_job([{}])
        update = {"_id": new_object_id(), "task_id": task_id, "log": "x" * 1000,
                  "received_on_manager": "2018-01-10T09:16:40.512Z"}
        answer = await self.client.push([update])
        self.assertEqual(answer["handled_update_ids"], [update["_id"]])
        self.assertTrue(self.server.pushed_batches[-1]["gzip"])
        self.assertLess(self.server.pushed_batches[-1]["bytes"], 200)
        self.server.accept_gzip = False
        answer = await self.client.push([update])
        self.assertEqual(answer["handled_update_ids"], [update["_id"]])
        self.assertIsNotNone(self.client.gzip_choice.refused_at)
        await self.client.push([])
        self.assertEqual([b["gzip"] for b in self.server.pushed_batches], [True, False, False])

    async def test_push_falls_back_when_a_server_cannot_parse_gzip_at_all(self):
        # A Server without gzip support fails to decode the body as JSON: 400.
        original = self.server._body

        def no_gzip_support(request):
            raw = request.content.read()
            request.content.seek(0)
            try:
                json.loads(raw)
            except ValueError:
                from flamenco.testing.server import _BadBody
                raise _BadBody(400, "The browser (or proxy) sent a request that this server "
                                    "could not understand.") from None
            return original(request)

        self.server._body = no_gzip_support
        answer = await self.client.push([])
        self.assertEqual(answer["handled_update_ids"], [])
        self.assertIsNotNone(self.client.gzip_choice.refused_at)

    async def test_fetch_task(self):
        _, (task_id,) = self.server.create_job([{}])
        response = await self.client.fetch_task(task_id, "")
        self.assertEqual(response.code, 200)
        etag = response.json()["_etag"]
        response = await self.client.fetch_task(task_id, etag)
        self.assertEqual(response.code, 304)

    async def test_cancelling_aborts_the_request(self):
        silent = _SilentServer()
        port = reactor.listenTCP(0, silent, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = UpstreamClient(f"http://127.0.0.1:{port.getHost().port}/", new_object_id(),
                                "secret", clock=self.clock, timeout=5)
        self.addCleanup(client.close)
        task_id = new_object_id()
        d = client.fetch_task(task_id, "")
        request = await silent.request_received
        self.assertTrue(request.startswith(f"GET /api/flamenco/tasks/{task_id} ".encode()))
        d.cancel()
        await self.assertFailure(d, defer.CancelledError)
        # The Server sees the connection go although it never answered (the client's deadline
        # is on the Clock, which does not move): the cancel aborted it.
        await silent.connection_lost.addTimeout(30, reactor)

    async def test_refusals_name_the_settings_to_check(self):
        body = {"manager_url": "", "variables": {}, "nr_of_workers": 0, "path_replacement": {}}
        wrong_secret = client_for_test(self, self.server, manager_secret="nope", clock=self.clock)
        error = await self.assertFailure(wrong_secret.startup(body), UpstreamError)
        self.assertIn("401 (check `manager_secret` and `manager_id`)", str(error))
        self.server.managers["5a1f0c3e9f1b2c0d4e5f6a71"] = "other-token"
        not_ours = client_for_test(self, self.server, manager_id="5a1f0c3e9f1b2c0d4e5f6a71",
                                   clock=self.clock)
        error = await self.assertFailure(not_ours.push([]), UpstreamError)
        self.assertIn("403 (check `manager_secret` and `manager_id`)", str(error))
        unknown = client_for_test(self, self.server, manager_id=new_object_id(),
                                  clock=self.clock)
        error = await self.assertFailure(unknown.depsgraph(None), UpstreamError)
        self.assertIn("404 (check `manager_id` and the `flamenco` URL)", str(error))
        self.server.down_status = 503
        error = await self.assertFailure(self.client.depsgraph(None), UpstreamError)
        self.assertNotIn("check", str(error))
