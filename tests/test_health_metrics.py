"""`/metrics`, `/healthz` and `/readyz` over real HTTP."""

from twisted.trial.unittest import TestCase

from tests.factories import task_doc
from tests.inprocess import InProcessManager


def sample(text: str, name: str, **labels) -> float | None:
    """The value of one sample in the Prometheus text format, or None."""
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                     if labels else "")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    return None


class HealthTests(TestCase):
    async def test_healthz_and_readyz_answer_while_the_store_is_open(self):
        m = await InProcessManager(self).start()
        healthz = await m.request("GET", "/healthz")
        readyz = await m.request("GET", "/readyz")
        self.assertEqual((healthz.code, healthz.json["status"]), (200, "ok"))
        self.assertEqual((readyz.code, readyz.json["status"]), (200, "ready"))

    async def test_readyz_is_503_with_a_reason_when_the_store_does_not_answer(self):
        m = await InProcessManager(self).start()
        await m.store.close()
        readyz = await m.request("GET", "/readyz")
        healthz = await m.request("GET", "/healthz")
        self.assertEqual(readyz.code, 503)
        self.assertEqual(readyz.json["status"], "unavailable")
        self.assertIn("not open", readyz.json["reason"])
        self.assertEqual(healthz.code, 200)

    async def test_switched_off_they_are_not_served(self):
        m = await InProcessManager(self, serve_metrics=False).start()
        for path in ("/metrics", "/healthz", "/readyz"):
            response = await m.request("GET", path)
            self.assertEqual(response.code, 404, path)
            self.assertIn("error", response.json)


class MetricsTests(TestCase):
    async def test_counts_tasks_workers_queue_and_task_requests(self):
        m = await InProcessManager(self).start()
        store = m.manager.store
        await store.store_server_tasks(
            [task_doc(job_type="sleep"), task_doc(job_type="sleep"),
             task_doc(job_type="blender-render", status="queued")],
            m.manager.updates.now())
        auth = await m.register(types=("sleep",))
        assigned = await m.request("POST", "/task", auth=auth)
        self.assertEqual(assigned.code, 200)
        task_id = assigned.json["_id"]
        updated = await m.request("POST", f"/tasks/{task_id}/update", auth=auth,
                                  json_body={"activity": "rendering", "log": "frame 1\n"})
        self.assertEqual(updated.code, 204)

        response = await m.request("GET", "/metrics")
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders("content-type")[0].startswith("text/plain"))
        text = response.body.decode()
        self.assertEqual(sample(text, "flamenco_tasks", status="active", task_type="sleep"), 1)
        self.assertEqual(
            sample(text, "flamenco_tasks", status="claimed-by-manager", task_type="sleep"), 1)
        self.assertEqual(
            sample(text, "flamenco_tasks", status="queued", task_type="blender-render"), 1)
        self.assertEqual(sample(text, "flamenco_workers", status="awake"), 1)
        self.assertEqual(sample(text, "flamenco_task_assign_seconds_count"), 1)
        queued = sample(text, "flamenco_upstream_queue_updates")
        self.assertGreaterEqual(queued, 2)  # the assignment's update(s) and the worker's report
        self.assertEqual(sample(text, "flamenco_task_updates_total"), queued)
        self.assertEqual(sample(text, "flamenco_upstream_push_seconds_count"), 0)
        self.assertIn("flamenco_upstream_failures_total", text)

    async def test_metrics_need_no_login_when_a_password_is_set(self):
        from flamenco.operator_login import hash_password

        m = await InProcessManager(self, admin_password=hash_password("pw", rounds=4)).start()
        self.assertEqual((await m.request("GET", "/metrics")).code, 200)
        self.assertEqual((await m.request("GET", "/api/workers")).code, 401)
