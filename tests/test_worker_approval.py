"""`worker_registration: approve`: simulated Workers of both generations wait for an operator."""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from flamenco.ids import new_object_id
from flamenco.testing.worker import GENERATION_2_0, GENERATION_2_X, SimulatedWorker
from tests.factories import task_doc
from tests.inprocess import InProcessManager

COMMANDS = [{"name": "echo", "settings": {"message": "hi"}}]


class ApprovalTests(TestCase):
    async def farm(self, **config):
        m = await InProcessManager(self, **config).start()
        tasks = [task_doc(job_type="sleep", commands=COMMANDS) for _ in range(2)]
        await m.store.store_server_tasks(tasks, m.manager.updates.now())
        return m, tasks

    def worker(self, m, generation) -> SimulatedWorker:
        worker = SimulatedWorker(m.url, generation=generation, types=("sleep",),
                                 nickname=f"sim-{generation}")
        self.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        return worker

    async def test_new_workers_get_nothing_until_approved_then_work(self):
        m, tasks = await self.farm(worker_registration="approve")
        for generation in (GENERATION_2_0, GENERATION_2_X):
            worker = self.worker(m, generation)
            await worker.register()
            if worker.is_2x:
                self.assertEqual((await worker.sign_on()).code, 204)
            for _ in range(3):
                self.assertIsNone(await worker.ask_for_task(), "nothing to do while waiting")
            self.assertFalse((await m.store.get_worker(worker.worker_id)).approved)
            self.assertEqual(await m.store.tasks_of_worker(worker.worker_id, "active"), [])
            approved = await m.request("POST", f"/worker-action/{worker.worker_id}?action=approve")
            self.assertEqual(approved.code, 204)
            self.assertTrue((await m.store.get_worker(worker.worker_id)).approved)
            doc = await worker.ask_for_task()
            self.assertIn(doc["_id"], [t["_id"] for t in tasks])
            outcome = await worker.run_task(doc)
            self.assertEqual(outcome.result, "completed")

    async def test_open_registration_needs_no_approval(self):
        m, tasks = await self.farm()
        worker = self.worker(m, GENERATION_2_X)
        await worker.register()
        self.assertTrue((await m.store.get_worker(worker.worker_id)).approved)
        self.assertIsNotNone(await worker.ask_for_task())

    async def test_approving_an_unknown_worker_is_404_and_an_unknown_action_400(self):
        m, _ = await self.farm(worker_registration="approve")
        unknown = await m.request("POST", f"/worker-action/{new_object_id()}?action=approve")
        self.assertEqual(unknown.code, 404)
        worker = self.worker(m, GENERATION_2_X)
        await worker.register()
        wrong = await m.request("POST", f"/worker-action/{worker.worker_id}?action=approved")
        self.assertEqual(wrong.code, 400)
        self.assertIn("approve", wrong.json["error"])
        self.assertFalse((await m.store.get_worker(worker.worker_id)).approved)

    async def test_approval_as_a_form_encoded_body(self):
        m, _ = await self.farm(worker_registration="approve")
        worker = self.worker(m, GENERATION_2_0)
        await worker.register()
        response = await m.request("POST", f"/worker-action/{worker.worker_id}",
                                   body=b"action=approve", headers={
                                       b"Content-Type": b"application/x-www-form-urlencoded"})
        self.assertEqual(response.code, 204)
        self.assertTrue((await m.store.get_worker(worker.worker_id)).approved)
