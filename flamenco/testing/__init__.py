"""Simulated peers of the Manager (the Flamenco Server, Workers) for tests, benchmarks and demos."""

from __future__ import annotations

from twisted.internet import defer


def serve_for_test(testcase, **kwargs):
    """Start a `SimulatedServer` on a free loopback port for one trial test; it is stopped (and
    every connection closed) at cleanup."""
    from flamenco.testing.server import SimulatedServer

    server = SimulatedServer(**kwargs)
    server.listen()
    testcase.addCleanup(lambda: defer.ensureDeferred(server.stop()))
    return server


def client_for_test(testcase, server, **kwargs):
    """An `UpstreamClient` for `server`, closed at cleanup."""
    from flamenco.upstream.client import UpstreamClient

    manager_id = kwargs.pop("manager_id", server.manager_id)
    secret = kwargs.pop("manager_secret", server.managers[server.manager_id])
    client = UpstreamClient(server.url, manager_id, secret, **kwargs)
    testcase.addCleanup(client.close)
    return client


async def sqlite_store_for_test(testcase):
    """A real SQLiteStore on a fresh file, closed at cleanup."""
    from flamenco.store.sqlite import SQLiteStore

    store = SQLiteStore(testcase.mktemp() + ".sqlite")
    await store.open()
    testcase.addCleanup(store.close)
    return store
