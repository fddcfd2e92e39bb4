"""The scheduler's refetch loop (PROTOCOL §5.1 steps 5-7), with a scripted task source.

The real task source (treq against the simulated Server) has its own tests; here the
Server's answers are scripted so each branch of the loop is reached deterministically.
"""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from flamenco import statuses
from flamenco.scheduler import MAX_REEXAMINATIONS, Scheduler
from flamenco.store.sqlite import SQLiteStore
from flamenco.updates import UpdateQueue
from flamenco.upstream import Freshness, ITaskSource, Refetched
from tests.factories import T0, task_doc, worker


@implementer(ITaskSource)
class ScriptedServer:
    def __init__(self, answers=None):
        self.answers = answers or {}
        self.refetched = []
        self.kicks = []
        self.requests = []

    def refetch(self, task):
        self.refetched.append(task.id)
        script = self.answers.get(task.id, [])
        answer = script.pop(0) if script else Refetched(Freshness.UNCHANGED)
        return defer.succeed(answer)

    def kick(self, types):
        self.kicks.append(tuple(types))

    def download_now(self):
        self.requests.append("download")

    def push_soon(self):
        self.requests.append("push")

    def types_changed(self):
        self.requests.append("types")


class SchedulerTests(TestCase):
    async def scheduler(self, docs, answers=None):
        store = SQLiteStore(self.mktemp() + ".sqlite")
        await store.open()
        self.addCleanup(store.close)
        clock = Clock()
        clock.advance(T0.timestamp())
        await store.store_server_tasks(docs, T0)
        server = ScriptedServer(answers)
        return Scheduler(store, UpdateQueue(store, clock), server, {}), store, server

    async def test_nothing_to_do_kicks_the_downloader_with_the_workers_types(self):
        scheduler, _, server = await self.scheduler([])
        w = worker(types=("sleep", "exr-merge"))
        await scheduler.store.add_worker(w)
        self.assertIsNone(await scheduler.assign(w))
        self.assertEqual(server.kicks, [("sleep", "exr-merge")])

    async def test_changed_task_is_stored_and_confirmed_again(self):
        doc = task_doc(priority=50)
        changed = dict(doc, _etag="etag-2", commands=[{"name": "sleep", "settings": {"time": 3}}])
        scheduler, store, server = await self.scheduler(
            [doc], {doc["_id"]: [Refetched(Freshness.CHANGED, changed)]})
        w = worker()
        await store.add_worker(w)
        sent = await scheduler.assign(w)
        self.assertEqual(sent["commands"], changed["commands"])
        self.assertEqual(server.refetched, [doc["_id"], doc["_id"]])
        self.assertEqual((await store.get_task(doc["_id"])).etag, "etag-2")

    async def test_changed_to_cancel_requested_moves_on_to_the_next_task(self):
        first, second = task_doc(priority=90), task_doc(priority=10)
        gone_upstream = dict(first, status="cancel-requested")
        scheduler, store, server = await self.scheduler(
            [first, second], {first["_id"]: [Refetched(Freshness.CHANGED, gone_upstream)]})
        w = worker()
        await store.add_worker(w)
        self.assertEqual((await scheduler.assign(w))["_id"], second["_id"])
        self.assertEqual((await store.get_task(first["_id"])).status, "cancel-requested")

    async def test_gone_task_is_cancelled_locally_without_an_update(self):
        first, second = task_doc(priority=90), task_doc(priority=10)
        scheduler, store, _ = await self.scheduler(
            [first, second], {first["_id"]: [Refetched(Freshness.GONE)]})
        w = worker()
        await store.add_worker(w)
        self.assertEqual((await scheduler.assign(w))["_id"], second["_id"])
        self.assertEqual((await store.get_task(first["_id"])).status, statuses.CANCELED)
        queued_for_first = [u for u in await store.queued_updates(10) if u.task_id == first["_id"]]
        self.assertEqual(queued_for_first, [])

    async def test_reexaminations_are_bounded(self):
        docs = [task_doc(priority=90 - n) for n in range(MAX_REEXAMINATIONS + 3)]
        answers = {d["_id"]: [Refetched(Freshness.GONE)] for d in docs}
        scheduler, store, server = await self.scheduler(docs, answers)
        w = worker()
        await store.add_worker(w)
        self.assertIsNone(await scheduler.assign(w))
        self.assertEqual(len(server.refetched), MAX_REEXAMINATIONS + 1)
        self.assertEqual((server.kicks, server.requests), ([], ["push", "download"]))
        self.assertEqual(await store.count_queued_updates(), 0)

    async def test_manager_local_tasks_are_not_refetched(self):
        doc = task_doc(job_type="manager-local", task_type="sleep")
        scheduler, store, server = await self.scheduler([doc])
        w = worker()
        await store.add_worker(w)
        self.assertEqual((await scheduler.assign(w))["_id"], doc["_id"])
        self.assertEqual(server.refetched, [])
