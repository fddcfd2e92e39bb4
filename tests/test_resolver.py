"""Name resolution that a full thread pool cannot block (the Server link during a bcrypt storm)."""

import threading

from twisted.internet import reactor
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IResolutionReceiver
from twisted.trial import unittest
from zope.interface import implementer

from flamenco import resolver
from flamenco.documents import Task
from flamenco.testing import client_for_test, serve_for_test
from flamenco.upstream import Freshness
from flamenco.upstream.refetch import Refetcher


@implementer(IResolutionReceiver)
class Collect:
    def __init__(self):
        self.addresses, self.complete = [], False

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.addresses.append(address)

    def resolutionComplete(self):
        self.complete = True


class ResolverTests(unittest.TestCase):
    def setUp(self):
        self.resolver = resolver.DedicatedResolver(reactor)
        self.addCleanup(self.resolver.stop)

    def fill_the_reactor_pool(self):
        """Occupy every thread of the reactor's shared pool until the test ends."""
        release = threading.Event()
        pool = reactor.getThreadPool()
        for _ in range(pool.max + 5):
            reactor.callInThread(release.wait, 30)
        self.addCleanup(release.set)

    def test_ip_literals_resolve_at_once_without_a_thread(self):
        self.fill_the_reactor_pool()
        for host, kind in (("127.0.0.1", IPv4Address), ("::1", IPv6Address)):
            receiver = Collect()
            self.resolver.resolveHostName(receiver, host, 8090)
            self.assertTrue(receiver.complete)
            self.assertEqual(receiver.addresses, [kind("TCP", host, 8090)])

    def test_a_literal_of_the_wrong_family_resolves_to_nothing(self):
        receiver = Collect()
        self.resolver.resolveHostName(receiver, "127.0.0.1", 80, addressTypes=[IPv6Address])
        self.assertEqual((receiver.complete, receiver.addresses), (True, []))

    async def test_names_resolve_on_the_own_pool_while_the_shared_one_is_full(self):
        self.fill_the_reactor_pool()
        receiver = Collect()
        self.resolver.resolveHostName(receiver, "localhost", 80)
        for _ in range(100):  # polled with a deadline: a real getaddrinfo thread answers
            if receiver.complete:
                break
            await self.pause(0.05)
        self.assertTrue(receiver.complete)
        self.assertTrue(receiver.addresses)

    @staticmethod
    def pause(seconds):
        from twisted.internet import task

        return task.deferLater(reactor, seconds, lambda: None)


class RefetchWithAFullPoolTests(unittest.TestCase):
    """A task re-fetch while bcrypt work (here: blocked threads) fills the shared pool."""

    async def refetch_reaches_the_server(self) -> bool:
        server = serve_for_test(self)
        _, ids = server.create_job([{"name": "a"}])
        client = client_for_test(self, server, clock=reactor, timeout=30)
        refetcher = Refetcher(client, reactor, deadline=1.0)
        release = threading.Event()
        self.addCleanup(release.set)
        for _ in range(reactor.getThreadPool().max + 5):
            reactor.callInThread(release.wait, 30)
        answer = await refetcher.refetch(Task(doc=server.tasks[ids[0]].public()))
        self.assertIs(answer.freshness, Freshness.UNCHANGED)  # 304, or handed out as cached
        return ("refetch", {"task_id": ids[0]}) in server.requests

    async def test_default_resolver_waits_behind_the_pool(self):
        # What the Manager did before: the look-up of '127.0.0.1' queued behind the pool's
        # work, so the re-fetch missed its deadline and never reached the Server.
        self.assertFalse(await self.refetch_reaches_the_server())

    async def test_dedicated_resolver_reaches_the_server_within_the_deadline(self):
        previous = reactor.installNameResolver(resolver.DedicatedResolver(reactor))
        self.addCleanup(reactor.installNameResolver, previous)
        self.assertTrue(await self.refetch_reaches_the_server())
