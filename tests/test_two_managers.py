"""Two Managers on one MongoDB database behind a (simulated) load balancer.

2,000 tasks, 20 simulated workers spread over both Managers over real loopback HTTP. Every task
is handed out exactly once; when one Manager is killed mid-run the workers fail over to the
other, which carries on and takes over the timeout-sweep lease.
"""

import collections
import os
from datetime import timedelta

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from flamenco.config import Config
from flamenco.manager import build_manager
from flamenco.store import mongo
from flamenco.testing.worker import SimulatedWorker
from flamenco.timeouts import LEASE_NAME
from flamenco.web.site import ManagerSite
from tests.factories import T0, task_doc
from tests.mongo_fixture import fresh_name, fresh_store, server_url

#: 2,000 tasks: about 2 minutes on FerretDB over PostgreSQL (what tests/mongo-server/start.sh
#: starts when PostgreSQL is installed), over 10 on its SQLite backend, whose writes cost time
#: linear in the collection size. FLAMENCO_TWO_MANAGER_TASKS sets another size.
TASKS = int(os.environ.get("FLAMENCO_TWO_MANAGER_TASKS", "2000"))
WORKERS = 20
KILL_AFTER = TASKS * 3 // 10  # assignments before Manager A is killed


class ServedManager:
    def __init__(self, store):
        self.store = store
        self.clock = Clock()
        self.clock.advance(T0.timestamp())
        self.manager = build_manager(Config(), store, self.clock, bcrypt_rounds=4)
        self.port = reactor.listenTCP(0, ManagerSite(self.manager.resource), interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port.getHost().port}/"

    async def kill(self):
        await self.port.stopListening()
        await self.store.close()


class TwoManagerTests(TestCase):
    timeout = 1800

    async def test_every_task_assigned_once_and_the_survivor_takes_over(self):
        base, name = server_url(), fresh_name("fmtwo")
        # FerretDB rewrites a document in time linear in the collection size, and twenty
        # workers queue up behind one SQLite writer: a generous per-call deadline.
        store_a = await fresh_store(self, base, name, timeout=30)
        store_b = await fresh_store(self, base, name, timeout=30)
        for start in range(0, TASKS, 500):
            await store_a.store_server_tasks(
                [task_doc(priority=n % 7) for n in range(start, min(TASKS, start + 500))], T0)

        a, b = ServedManager(store_a), ServedManager(store_b)
        self.addCleanup(a.port.stopListening)
        self.addCleanup(b.port.stopListening)

        # A holds the timeout-sweep lease; B's sweep is a no-op.
        await a.manager.timeouts.sweep()
        await b.manager.timeouts.sweep()
        self.assertEqual(await self.lease_holder(store_b), a.manager.lease_holder)

        pool = HTTPConnectionPool(reactor, persistent=False)
        workers = [
            SimulatedWorker((a if n % 2 else b).url, generation="2.x", nickname=f"w{n:02d}",
                            types=("sleep",), pool=pool, timeout=30)
            for n in range(WORKERS)
        ]
        for sim in workers:
            await sim.register()

        assigned = []  # (task id, worker id), in hand-out order
        killed = defer.Deferred()

        async def run(sim):
            while True:
                doc = await self.call(sim, b.url, sim.ask_for_task)
                if doc is None:
                    return
                assigned.append((doc["_id"], sim.worker_id))
                if len(assigned) == KILL_AFTER and not killed.called:
                    killed.callback(None)
                code = await self.call(sim, b.url, lambda: self.accepted(sim.send_update(
                    doc["_id"], task_status="completed", activity="done")))
                self.assertEqual(code, 204)

        async def kill_a():
            await killed
            await a.kill()
            # A claim A had begun but not finished leaves a claim marker behind; B may take
            # such a task over once the marker is stale. (This also lets A's lease run out.)
            b.clock.advance((mongo.CLAIM_STALE + timedelta(seconds=1)).total_seconds())

        await defer.gatherResults(
            [defer.ensureDeferred(kill_a())]
            + [defer.ensureDeferred(run(sim)) for sim in workers], consumeErrors=True)

        counts = collections.Counter(task_id for task_id, _ in assigned)
        self.assertEqual(len(counts), TASKS, "every task was handed out")
        self.assertEqual([t for t, n in counts.items() if n > 1], [], "none twice")
        done = await store_b._find(mongo.TASKS, {"status": "completed"}, ["_id"])
        self.assertEqual(len(done), TASKS)
        # At least the hand-out and the completion of every task are queued for the Server.
        self.assertGreaterEqual(await store_b.count_queued_updates(), 2 * TASKS)

        # A is gone and its lease has run out: B's sweep takes it over.
        await b.manager.timeouts.sweep()
        self.assertEqual(await self.lease_holder(store_b), b.manager.lease_holder)

    @staticmethod
    async def call(sim, fallback_url, request):
        """The load balancer's part: a request the Manager cannot answer (down, 503) goes to
        the other Manager; like the real workers, a failed request is tried again."""
        last = None
        for _ in range(5):
            try:
                return await request()
            except Exception as error:  # connection refused / reset, 503 from a dying Manager
                sim.manager_url = fallback_url
                last = error
        raise last

    @staticmethod
    async def accepted(sending):
        code = await sending
        if code == 503:
            raise RuntimeError("503")
        return code

    @staticmethod
    async def lease_holder(store):
        lease = await store._find_one(mongo.LEASES, {"_id": LEASE_NAME})
        return lease and lease["holder"]
