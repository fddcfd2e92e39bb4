"""Losing the MongoDB server mid-run: fail fast with StoreUnavailable / HTTP 503, recover alone.

The test runs a server of its own (start.sh), kills it with SIGKILL and starts it again on the
same port with the same data directory.
"""

from twisted.internet import reactor, task
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from flamenco import logs
from flamenco.config import Config
from flamenco.manager import build_manager
from flamenco.store.interface import StoreUnavailable
from flamenco.testing.worker import SimulatedWorker
from flamenco.web.site import ManagerSite
from tests.factories import T0, task_doc, update, worker
from tests.mongo_fixture import OwnServer, database_url, fresh_name

#: The store's per-call deadline in this test; "fast" means well within it.
DEADLINE = 2.0


async def eventually(attempt, what: str, limit: float = 30.0):
    """Retry `attempt()` until it stops raising StoreUnavailable (the server is starting)."""
    started = reactor.seconds()
    while True:
        try:
            return await attempt()
        except StoreUnavailable:
            if reactor.seconds() - started > limit:
                raise AssertionError(f"{what}: still unavailable after {limit} s") from None
            await task.deferLater(reactor, 0.1, lambda: None)


class ConnectionLossTests(TestCase):
    timeout = 120

    async def assert_fails_fast(self, call, what: str):
        started = reactor.seconds()
        try:
            await call()
        except StoreUnavailable:
            pass
        else:
            self.fail(f"{what} succeeded while the server is down")
        self.assertLess(reactor.seconds() - started, DEADLINE + 0.5, f"{what} was slow to fail")

    async def test_store_and_http_survive_a_server_restart(self):
        from flamenco.store.mongo import MongoStore

        server = await OwnServer().start()
        self.addCleanup(server.stop)
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        store = MongoStore(database_url(server.url, fresh_name("fmloss")), timeout=DEADLINE)
        await store.open()
        self.addCleanup(store.close)

        clock = Clock()
        clock.advance(T0.timestamp())
        manager = build_manager(Config(), store, clock, bcrypt_rounds=4)
        port = reactor.listenTCP(0, ManagerSite(manager.resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        sim = SimulatedWorker(f"http://127.0.0.1:{port.getHost().port}/", generation="2.x",
                              types=("sleep",), timeout=DEADLINE * 3)
        self.addCleanup(sim.close)
        await sim.register()

        docs = [task_doc() for _ in range(3)]
        await store.store_server_tasks(docs, T0)
        accepted = [update(doc["_id"], activity=f"accepted {n}") for n, doc in enumerate(docs)]
        for queued in accepted:
            await store.queue_update(queued)

        await server.kill()

        # The first call may still be on its way out of the dead connection; from then on,
        # every call fails at once.
        await self.assert_fails_fast(store.count_tasks, "count_tasks")
        await self.assert_fails_fast(store.count_queued_updates, "count_queued_updates")
        await self.assert_fails_fast(lambda: store.claim_task(worker(), T0), "claim_task")
        await self.assert_fails_fast(lambda: store.queue_update(update(docs[0]["_id"])),
                                     "queue_update")
        await self.assert_fails_fast(lambda: store.get_setting("x"), "get_setting")
        answer = await sim.request("POST", "/task")
        self.assertEqual(answer.code, 503, answer.body)
        self.assertIn("error", answer.json())

        server.restart()

        # No restart of the store or the Manager: the same objects carry on.
        self.assertEqual(await eventually(lambda: store.queued_updates(10), "queued_updates"),
                         accepted, "updates accepted before the outage are all still queued")
        self.assertEqual(await store.count_tasks(), 3)
        late = update(docs[1]["_id"], activity="after the outage")
        await store.queue_update(late)
        self.assertEqual(await store.queued_updates(10), accepted + [late])
        answer = await eventually(self._ask(sim), "POST /task")
        self.assertEqual(answer.code, 200, answer.body)
        self.assertIn(answer.json()["_id"], {doc["_id"] for doc in docs})

        # The whole outage, with its many failed calls and 503s: two warnings, no traceback
        # (in the log the Manager writes, which leaves out txmongo's reconnection errors).
        warnings = [formatEvent(event) for event in events
                    if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical)
                    and not logs.is_noise(event)
                    and "running stand-alone" not in formatEvent(event)]
        self.assertEqual(len(warnings), 2, warnings)
        self.assertIn(f"database {store.description} unreachable", warnings[0])
        self.assertIn(f"database {store.description} answers again", warnings[1])
        self.assertFalse([event for event in events if event.get("log_failure")])

    @staticmethod
    def _ask(sim):
        async def ask():
            answer = await sim.request("POST", "/task")
            if answer.code == 503:
                raise StoreUnavailable("still 503")
            return answer
        return ask
