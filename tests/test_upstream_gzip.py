"""The gzip decision: learnt once per Server, remembered in the store across a restart, and
re-probed once a day on the Clock (against a Server on Python's `http.server` that answers 400
to gzip; the simulated Server's 415 is in test_upstream_client)."""

import os

from twisted.internet import task
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial import unittest

from flamenco.store.sqlite import SQLiteStore
from flamenco.testing import client_for_test, serve_for_test
from flamenco.upstream.client import UpstreamClient
from flamenco.upstream.gzip_choice import REPROBE_SECONDS, GzipChoice
from tests.stdlib_server import serve_stdlib_for_test
from tests.test_upstream_stdlib_server import MANAGER_ID


def noticed(events) -> list[str]:
    """The gzip log lines at info level and above."""
    return [formatEvent(e) for e in events
            if "gzip" in formatEvent(e) and e["log_level"] >= LogLevel.info]


class GzipLearningTests(unittest.TestCase):
    def setUp(self):
        self.server = serve_stdlib_for_test(self)  # answers 400 to gzip
        self.clock = task.Clock()
        self.clock.advance(1515575700)
        self.path = os.path.abspath(self.mktemp() + ".sqlite")

    async def manager(self):
        """A client as a (re)started Manager has it: a new store instance on the same file."""
        store = SQLiteStore(self.path)
        await store.open()
        self.addCleanup(store.close)
        choice = GzipChoice(store, self.clock, self.server.url)
        client = UpstreamClient(self.server.url, MANAGER_ID, "secret", clock=self.clock,
                                timeout=5, gzip_bodies=choice)
        self.addCleanup(client.close)
        return store, client

    async def test_learnt_once_and_remembered_across_a_restart(self):
        store, client = await self.manager()
        with capturedLogs() as events:
            await client.push([])
            await client.push([])
        self.assertEqual([code for _, _, code in self.server.answered], [400, 200, 200])
        self.assertEqual(len(noticed(events)), 1, "one log line when the decision changes")
        self.assertIn("refused", noticed(events)[0])
        await store.close()
        await client.close()
        # Restarted: the first push already goes uncompressed.
        _, client = await self.manager()
        await client.push([])
        self.assertEqual([code for _, _, code in self.server.answered], [400, 200, 200, 200])
        self.assertEqual([p["gzip"] for p in self.server.pushes], [False, False, False])

    async def test_a_refusing_server_is_asked_again_once_a_day(self):
        _, client = await self.manager()
        await client.push([])  # refused: learnt
        self.clock.advance(REPROBE_SECONDS - 60)
        await client.push([])
        self.assertEqual([code for _, _, code in self.server.answered], [400, 200, 200])
        self.clock.advance(60)
        with capturedLogs() as events:
            await client.push([])  # due: gzip again, still refused
        self.assertEqual([code for _, _, code in self.server.answered],
                         [400, 200, 200, 400, 200])
        self.assertEqual(noticed(events), [], "no change, no log line above debug")
        await client.push([])  # and not again before another day
        self.assertEqual(len(self.server.answered), 6)
        self.server.httpd.accept_gzip = True  # the Server was upgraded
        self.clock.advance(REPROBE_SECONDS)
        with capturedLogs() as events:
            await client.push([])
            await client.push([])
        self.assertEqual([p["gzip"] for p in self.server.pushes][-2:], [True, True])
        self.assertEqual(len(noticed(events)), 1)
        self.assertIn("accepts gzip", noticed(events)[0])

    async def test_the_server_accepting_again_is_remembered_too(self):
        store, client = await self.manager()
        await client.push([])
        self.assertIsNotNone(await store.get_setting(client.gzip_choice.key))
        self.server.httpd.accept_gzip = True
        self.clock.advance(REPROBE_SECONDS)
        await client.push([])
        self.assertIsNone(await store.get_setting(client.gzip_choice.key))

    async def test_the_decision_is_per_server(self):
        store, client = await self.manager()
        await client.push([])
        other = GzipChoice(store, self.clock, "http://another-server:8080/")
        self.assertTrue(await other.compress())
        self.assertFalse(await client.gzip_choice.compress())


class GzipConfiguredOffTests(unittest.TestCase):
    async def test_configured_off_is_never_probed(self):
        server = serve_for_test(self)
        clock = task.Clock()
        client = client_for_test(self, server, clock=clock, gzip_bodies=False)
        await client.push([])
        clock.advance(10 * REPROBE_SECONDS)
        await client.push([])
        self.assertEqual([b["gzip"] for b in server.pushed_batches], [False, False])
