"""Test tasks for Workers in `testing` (PROTOCOL §5.11)."""

from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.test_tasks import is_local_task
from tests.factories import task_doc
from tests.inprocess import InProcessManager


class TestTaskTests(TestCase):
    async def test_a_testing_worker_gets_its_test_task_first(self):
        m = InProcessManager(self, task_logs_path=self.mktemp())
        await m.start()
        await m.store.store_server_tasks([task_doc(job_priority=100)], m.manager.updates.now())
        worker = await m.register(generation="2.x", types=("sleep", "test-blender-render"))
        action = f"/worker-action/{worker[0]}?action=send-test-job"
        refused = await m.request("POST", action)
        self.assertEqual(refused.code, 400)
        self.assertIn("not in testing", refused.json["error"])
        await m.request("POST", "/ack-status-change/testing", auth=worker)
        sent = await m.request("POST", action)
        self.assertEqual(sent.code, 200)
        task_id = sent.json["task_id"]
        self.assertTrue(is_local_task(task_id))
        given = await m.request("POST", "/task", auth=worker)
        self.assertEqual((given.code, given.json["_id"], given.json["job_type"]),
                         (200, task_id, "manager-local"))
        done = await m.request("POST", f"/tasks/{task_id}/update", auth=worker,
                               json_body={"task_status": "completed", "log": "ok"})
        self.assertEqual(done.code, 204)
        self.assertEqual((await m.store.get_task(task_id)).status, statuses.COMPLETED)
        self.assertEqual((await m.store.get_worker(worker[0])).status, statuses.W_TESTING)

    async def test_refusals(self):
        m = InProcessManager(self, task_logs_path=self.mktemp())
        await m.start()
        worker = await m.register(generation="2.x", types=("sleep",))
        await m.request("POST", "/ack-status-change/testing", auth=worker)
        no_type = await m.request("POST", f"/worker-action/{worker[0]}?action=send-test-job")
        self.assertEqual(no_type.code, 400)
        self.assertIn("test-blender-render", no_type.json["error"])
        unknown = await m.request(
            "POST", "/worker-action/5a1f0d119f1b2c0d4e5f6a71?action=send-test-job")
        self.assertEqual(unknown.code, 404)
