"""The simulated Worker (flamenco/testing/worker.py) against an in-process Manager over loopback."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from flamenco.config import Config
from flamenco.manager import build_manager
from flamenco.store.sqlite import SQLiteStore
from flamenco.testing.worker import (
    GENERATION_2_0, GENERATION_2_X, ProtocolError, RequestTimeout, SimulatedWorker, StatusRequest,
)
from flamenco.web.site import ManagerSite
from tests.factories import T0, task_doc

COMMANDS = [
    {"name": "echo", "settings": {"message": "hi"}},
    {"name": "sleep", "settings": {"time_in_seconds": 1}},
]


class ManagerFixture:
    """A Manager built in-process (real SQLite file, real HTTP on 127.0.0.1, no timers)."""

    def __init__(self, testcase):
        self.testcase = testcase
        self.store = SQLiteStore(testcase.mktemp() + ".sqlite")
        self.manager = None
        self.url = ""

    async def start(self, tasks=()):
        await self.store.open()
        self.testcase.addCleanup(self.store.close)
        if tasks:
            await self.store.store_server_tasks(list(tasks), T0)
        self.manager = build_manager(Config(), self.store, reactor, bcrypt_rounds=4)
        port = reactor.listenTCP(0, ManagerSite(self.manager.resource), interface="127.0.0.1")
        self.testcase.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{port.getHost().port}/"
        return self

    def worker(self, **kwargs) -> SimulatedWorker:
        worker = SimulatedWorker(self.url, **kwargs)
        self.testcase.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        return worker

    async def request_status(self, worker_id: str, status: str, lazy: bool = False):
        await self.manager.workers.request_status(worker_id, status, lazy)

    async def updates_for(self, task_id: str):
        return [u for u in await self.store.queued_updates(10_000) if u.task_id == task_id]


class RegistrationTests(unittest.TestCase):
    async def test_2_0_registers_with_job_types_and_requests_user_agent(self):
        fixture = await ManagerFixture(self).start()
        worker = fixture.worker(generation=GENERATION_2_0, types=("sleep",), nickname="old")
        doc = await worker.register()
        self.assertEqual(doc["_id"], worker.worker_id)
        self.assertEqual(len(worker.secret), 64)
        stored = await fixture.store.get_worker(worker.worker_id)
        self.assertEqual(stored.generation, "2.0")
        self.assertEqual(stored.supported_types, ("sleep",))
        self.assertEqual(stored.software, "")

    async def test_2_x_registers_with_task_types_and_signs_on(self):
        fixture = await ManagerFixture(self).start()
        worker = fixture.worker(generation=GENERATION_2_X, types=("sleep", "debug"))
        await worker.register()
        stored = await fixture.store.get_worker(worker.worker_id)
        self.assertEqual(stored.generation, "2.x")
        self.assertEqual(stored.supported_types, ("sleep", "debug"))
        self.assertEqual(stored.software, "Flamenco-Worker/2.5")
        self.assertEqual((await worker.sign_on()).code, 204)
        self.assertEqual((await fixture.store.get_worker(worker.worker_id)).status, "starting")

    async def test_wrong_secret_is_a_protocol_error(self):
        fixture = await ManagerFixture(self).start()
        worker = fixture.worker()
        await worker.register()
        worker.secret = "wrong"
        with self.assertRaises(ProtocolError) as caught:
            await worker.ask_for_task()
        self.assertEqual(caught.exception.code, 401)


class RunTaskTests(unittest.TestCase):
    async def _assigned(self, generation, **worker_kwargs):
        self.task = task_doc(job_type="sleep", commands=COMMANDS)
        self.fixture = await ManagerFixture(self).start([self.task])
        worker = self.fixture.worker(generation=generation, types=("sleep",), **worker_kwargs)
        await worker.register()
        doc = await worker.ask_for_task()
        self.assertEqual(doc["_id"], self.task["_id"])
        return worker, doc

    async def _worker_updates(self, worker):
        return [u for u in await self.fixture.updates_for(self.task["_id"])
                if u.worker == worker.identifier.replace(worker.worker_id, "127.0.0.1")]

    async def test_completes_with_the_real_workers_updates(self):
        worker, doc = await self._assigned(GENERATION_2_X)
        outcome = await worker.run_task(doc)
        self.assertEqual(outcome.result, "completed")
        updates = await self._worker_updates(worker)
        self.assertEqual(
            [u.activity for u in updates],
            ["", "starting echo", "finished echo", "starting sleep", "finished sleep",
             "Task completed"])
        self.assertEqual([u.task_status for u in updates], ["active"] * 5 + ["completed"])
        logs = [u.log.split(": ", 1)[1] for u in updates if u.log]
        self.assertEqual(logs, ["echo: Starting", "echo: Finished", "sleep: Starting",
                                "sleep: Finished"])
        self.assertEqual([u.current_command_idx for u in updates[1:5]], [0, 0, 1, 1])
        self.assertEqual([u.command_progress_percentage for u in updates[1:5]], [0, 100, 0, 100])
        self.assertEqual((await self.fixture.store.get_task(doc["_id"])).status, "completed")

    async def test_2_0_sends_the_same_updates(self):
        worker, doc = await self._assigned(GENERATION_2_0)
        self.assertEqual((await worker.run_task(doc)).result, "completed")
        updates = await self._worker_updates(worker)
        self.assertEqual([u.task_status for u in updates], ["active"] * 5 + ["completed"])
        self.assertEqual(updates[-1].activity, "Task completed")

    async def test_2_0_reports_canceled_when_told_to_stop(self):
        async def work(worker, task_id, index, command):
            await self.fixture.store.set_task_status(task_id, "cancel-requested")

        worker, doc = await self._assigned(GENERATION_2_0, work=work)
        outcome = await worker.run_task(doc)
        self.assertEqual(outcome.result, "canceled")
        self.assertIn("non-runnable status cancel-requested", outcome.reason)
        last = (await self._worker_updates(worker))[-1]
        self.assertEqual((last.task_status, last.activity), ("canceled", "Task was canceled"))
        self.assertEqual((await self.fixture.store.get_task(doc["_id"])).status, "canceled")

    async def test_2_x_stops_silently_returns_the_task_and_goes_to_sleep(self):
        async def work(worker, task_id, index, command):
            await self.fixture.request_status(worker.worker_id, "asleep", lazy=False)

        worker, doc = await self._assigned(GENERATION_2_X, work=work)
        outcome = await worker.run_task(doc)
        self.assertEqual((outcome.result, outcome.status_requested), ("returned", "asleep"))
        self.assertEqual(outcome.reason, "worker status change to asleep requested")
        worker_updates = await self._worker_updates(worker)
        self.assertEqual(worker_updates[-1].task_status, "")
        self.assertIn("stopped running this task", worker_updates[-1].log)
        task = await self.fixture.store.get_task(doc["_id"])
        self.assertEqual(task.status, "claimed-by-manager")
        stored = await self.fixture.store.get_worker(worker.worker_id)
        self.assertEqual((stored.status, stored.status_requested), ("asleep", ""))
        self.assertEqual(worker.status, "asleep")


    async def test_stop_aborts_without_a_status_and_sign_off_requeues(self):
        async def work(worker, task_id, index, command):
            worker.stop()

        worker, doc = await self._assigned(GENERATION_2_X, work=work)
        outcome = await worker.run_task(doc)
        self.assertEqual((outcome.result, outcome.reason), ("stopped", "worker shutting down"))
        self.assertEqual([u.activity for u in await self._worker_updates(worker)],
                         ["", "starting echo"])
        self.assertEqual((await self.fixture.store.get_task(doc["_id"])).status, "active")
        self.assertEqual(await worker.sign_off(), 204)
        self.assertEqual((await self.fixture.store.get_task(doc["_id"])).status,
                         "claimed-by-manager")


class StatusRequestTests(unittest.TestCase):
    async def test_423_status_change_and_ack(self):
        fixture = await ManagerFixture(self).start([task_doc(job_type="sleep")])
        worker = fixture.worker(generation=GENERATION_2_X, types=("sleep",))
        await worker.register()
        await fixture.request_status(worker.worker_id, "asleep", lazy=True)
        self.assertEqual(await worker.ask_for_task(), StatusRequest("asleep"))
        self.assertEqual(await worker.ack_status_change("asleep"), 204)
        self.assertIsNone(await worker.status_change())
        await fixture.request_status(worker.worker_id, "awake")
        self.assertEqual(await worker.status_change(), "awake")
        await worker.apply_status("awake")
        self.assertIsInstance(await worker.ask_for_task(), dict)


class LoopTests(unittest.TestCase):
    async def test_loop_runs_tasks_then_signs_off(self):
        tasks = [task_doc(job_type="sleep", priority=p) for p in (3, 2, 1)]
        fixture = await ManagerFixture(self).start(tasks)
        worker = fixture.worker(generation=GENERATION_2_0, types=("sleep",))
        done = await worker.loop(max_tasks=2, after_task=0)
        self.assertEqual(done, 2)
        statuses = [(await fixture.store.get_task(t["_id"])).status for t in tasks]
        self.assertEqual(statuses, ["completed", "completed", "claimed-by-manager"])
        self.assertEqual((await fixture.store.get_worker(worker.worker_id)).status, "down")

    async def test_2_x_loop_signs_on_when_it_has_credentials(self):
        fixture = await ManagerFixture(self).start([task_doc(job_type="sleep")])
        first = fixture.worker(generation=GENERATION_2_X, types=("sleep",))
        await first.register()
        again = fixture.worker(generation=GENERATION_2_X, types=("sleep",),
                               worker_id=first.worker_id, secret=first.secret)
        self.assertEqual(await again.loop(max_tasks=1, after_task=0), 1)
        self.assertEqual((await fixture.store.get_worker(first.worker_id)).status, "offline")


class Hanging(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.arrived = defer.Deferred()

    def render(self, request):
        self.arrived.callback(request)
        return NOT_DONE_YET


class TimeoutTests(unittest.TestCase):
    async def test_every_request_gives_up_after_three_seconds(self):
        hanging = Hanging()
        port = reactor.listenTCP(0, Site(hanging), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        clock = Clock()
        worker = SimulatedWorker(f"http://127.0.0.1:{port.getHost().port}/", clock=clock,
                                 worker_id="5a1f0d119f1b2c0d4e5f6a71", secret="s")
        self.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        asked = defer.ensureDeferred(worker.ask_for_task())
        await hanging.arrived
        clock.advance(2.9)
        self.assertNoResult(asked)
        clock.advance(0.1)
        with self.assertRaises(RequestTimeout):
            await asked
