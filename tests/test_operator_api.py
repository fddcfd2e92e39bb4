"""The operator API over real HTTP, and its OpenAPI description against the routes served."""

import re
from pathlib import Path

import yaml
from openapi_spec_validator import validate
from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.ids import new_object_id
from flamenco.web.health_api import HealthAPI
from flamenco.web.login import LoginPages
from flamenco.web.operator_api import OperatorAPI
from tests.factories import JOB_ID, task_doc
from tests.inprocess import InProcessManager

SPEC_PATH = Path(__file__).parent.parent / "docs" / "openapi-operator.yaml"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text("utf-8"))


def served_routes() -> set[tuple[str, str]]:
    routes = {("/events", "get")}  # a plain twisted.web resource, not a Klein route
    for app in (OperatorAPI.app, HealthAPI.app, LoginPages.app):
        for rule in app.url_map.iter_rules():
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes.update((path, method.lower()) for method in rule.methods - IGNORED_METHODS)
    return routes


def assert_has_required(testcase, spec: dict, schema_name: str, doc: dict) -> None:
    required = spec["components"]["schemas"][schema_name].get("required", [])
    missing = [key for key in required if key not in doc]
    testcase.assertEqual(missing, [], f"{schema_name} lacks {missing}: {doc}")


class OpenAPITests(TestCase):
    def test_the_description_is_valid_openapi_3(self):
        spec = load_spec()
        validate(spec)
        self.assertTrue(spec["openapi"].startswith("3."))

    def test_it_describes_exactly_the_routes_served(self):
        spec = load_spec()
        documented = {(path, method) for path, item in spec["paths"].items()
                      for method in item if method in ("get", "post", "put", "delete", "patch")}
        self.assertEqual(documented, served_routes())


class Farm:
    def __init__(self, testcase, **config):
        self.testcase = testcase
        self.m = InProcessManager(testcase, **config)

    async def start(self, *docs):
        await self.m.start()
        if docs:
            await self.m.manager.store.store_server_tasks(list(docs), self.m.manager.updates.now())
        return self

    async def get(self, path):
        return await self.m.request("GET", path)

    async def post(self, path, body, headers=None):
        return await self.m.request("POST", path, json_body=body, headers=headers)


class WorkerViewTests(TestCase):
    async def test_list_filter_and_one_worker(self):
        farm = await Farm(self).start()
        spec = load_spec()
        a_id, _ = await farm.m.register(nickname="alpha", types=("sleep",))
        b_id, _ = await farm.m.register(nickname="beta", types=("blender-render",))
        listed = await farm.get("/api/workers")
        self.assertEqual(listed.code, 200)
        self.assertEqual(sorted(w["nickname"] for w in listed.json["workers"]), ["alpha", "beta"])
        for worker in listed.json["workers"]:
            assert_has_required(self, spec, "Worker", worker)
            self.assertNotIn("secret_hash", worker)
        by_type = await farm.get("/api/workers?type=blender-render")
        self.assertEqual([w["id"] for w in by_type.json["workers"]], [b_id])
        one = await farm.get(f"/api/workers/{a_id}")
        self.assertEqual((one.code, one.json["nickname"]), (200, "alpha"))
        missing = await farm.get(f"/api/workers/{new_object_id()}")
        self.assertEqual(missing.code, 404)
        self.assertIn("error", missing.json)

    async def test_actions_request_a_status_like_worker_action(self):
        farm = await Farm(self).start()
        worker_id, _ = await farm.m.register()
        asleep = await farm.post(f"/api/workers/{worker_id}/actions", {"action": "sleep"})
        self.assertEqual(asleep.code, 200, asleep.body)
        self.assertEqual(asleep.json["status_requested"], statuses.W_ASLEEP)
        lazy = await farm.post(f"/api/workers/{worker_id}/actions",
                               {"action": "shutdown", "lazy": True})
        self.assertEqual((lazy.json["status_requested"], lazy.json["lazy_status_request"]),
                         (statuses.W_SHUTDOWN, True))
        stored = await farm.m.store.get_worker(worker_id)
        self.assertEqual(stored.status_requested, statuses.W_SHUTDOWN)

    async def test_approve_lets_a_waiting_worker_get_tasks(self):
        farm = await Farm(self, worker_registration="approve").start()
        worker_id, _ = await farm.m.register()
        waiting = await farm.get(f"/api/workers/{worker_id}")
        self.assertIs(waiting.json["approved"], False)
        approved = await farm.post(f"/api/workers/{worker_id}/actions", {"action": "approve"})
        self.assertEqual((approved.code, approved.json["approved"]), (200, True), approved.body)
        self.assertTrue((await farm.m.store.get_worker(worker_id)).approved)

    async def test_bad_actions_are_4xx_and_change_nothing(self):
        farm = await Farm(self).start()
        worker_id, _ = await farm.m.register()
        for body, code in (({"action": "explode"}, 400), ({}, 400),
                           ({"action": "sleep", "lazy": "yes"}, 400)):
            response = await farm.post(f"/api/workers/{worker_id}/actions", body)
            self.assertEqual(response.code, code, body)
            self.assertIn("error", response.json)
        raw = await farm.m.request("POST", f"/api/workers/{worker_id}/actions", body=b"{nope")
        self.assertEqual(raw.code, 400)
        unknown = await farm.post(f"/api/workers/{new_object_id()}/actions", {"action": "wake"})
        self.assertEqual(unknown.code, 404)
        self.assertEqual((await farm.m.store.get_worker(worker_id)).status_requested, "")


    async def test_forget_an_offline_worker_requeues_its_tasks_and_ends_its_credentials(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        auth = await farm.m.register()
        self.assertEqual((await farm.m.request("POST", "/task", auth=auth)).code, 200)
        worker_id = auth[0]
        busy = await farm.post(f"/api/workers/{worker_id}/actions", {"action": "forget"})
        self.assertEqual(busy.code, 409, "an awake Worker is not forgotten")
        self.assertIn("error", busy.json)
        await farm.m.store.update_worker(worker_id, status=statuses.W_TIMEOUT)
        forgotten = await farm.post(f"/api/workers/{worker_id}/actions", {"action": "forget"})
        self.assertEqual((forgotten.code, forgotten.body), (204, b""))
        self.assertEqual((await farm.get(f"/api/workers/{worker_id}")).code, 404)
        self.assertEqual((await farm.m.store.get_task(doc["_id"])).status,
                         statuses.CLAIMED, "its active task went back to the queue")
        self.assertEqual((await farm.m.request("POST", "/task", auth=auth)).code, 401)
        again = await farm.post(f"/api/workers/{worker_id}/actions", {"action": "forget"})
        self.assertEqual(again.code, 404)


class TaskViewTests(TestCase):
    async def test_filters_and_pages(self):
        other_job = new_object_id()
        docs = ([task_doc(job_type="sleep") for _ in range(5)]
                + [task_doc(job_type="blender-render", status="queued", job=other_job)])
        farm = await Farm(self).start(*docs)
        spec = load_spec()
        everything = await farm.get("/api/tasks")
        self.assertEqual((everything.json["total"], len(everything.json["tasks"])), (6, 6))
        for task in everything.json["tasks"]:
            assert_has_required(self, spec, "Task", task)
        page = await farm.get("/api/tasks?type=sleep&limit=2&offset=2")
        self.assertEqual(page.json["total"], 5)
        expected = sorted(d["_id"] for d in docs[:5])[2:4]
        self.assertEqual([t["id"] for t in page.json["tasks"]], expected)
        queued = await farm.get("/api/tasks?status=queued")
        self.assertEqual([t["job"] for t in queued.json["tasks"]], [other_job])
        by_job = await farm.get(f"/api/tasks?job={JOB_ID}")
        self.assertEqual(by_job.json["total"], 5)

    async def test_bad_filters_are_400(self):
        farm = await Farm(self).start(task_doc())
        for query in ("limit=0", "limit=501", "offset=-1", "limit=ten", "status=sleeping",
                      "job=123"):
            response = await farm.get(f"/api/tasks?{query}")
            self.assertEqual(response.code, 400, query)
            self.assertIn("error", response.json)

    async def test_one_task_with_status_history_and_log_tail(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        auth = await farm.m.register()
        self.assertEqual((await farm.m.request("POST", "/task", auth=auth)).code, 200)
        update = await farm.m.request("POST", f"/tasks/{doc['_id']}/update", auth=auth, json_body={
            "task_status": "completed", "activity": "done", "log": "frame 1\nframe 2\n"})
        self.assertEqual(update.code, 204)
        task = await farm.get(f"/api/tasks/{doc['_id']}")
        self.assertEqual(task.code, 200)
        self.assertEqual(task.json["status"], "completed")
        self.assertEqual(task.json["log_tail"][-2:], ["frame 1", "frame 2"])
        self.assertEqual([h["status"] for h in task.json["status_history"]][-2:],
                         ["active", "completed"])
        self.assertEqual((await farm.get(f"/api/tasks/{new_object_id()}")).code, 404)
        self.assertEqual((await farm.get("/api/tasks/not-an-id")).code, 404)


class FarmViewTests(TestCase):
    async def test_queue_depth_by_status_and_type(self):
        farm = await Farm(self).start(task_doc(job_type="sleep"), task_doc(job_type="sleep"),
                                      task_doc(job_type="blender-render", status="queued"))
        queue = (await farm.get("/api/queue")).json
        self.assertEqual(queue["by_type"], {"sleep": 2, "blender-render": 1})
        self.assertEqual(queue["by_status"], {"claimed-by-manager": 2, "queued": 1})
        overview = (await farm.get("/api/farm")).json
        assert_has_required(self, load_spec(), "FarmOverview", overview)
        self.assertEqual(overview["upstream"], {
            "configured": False, "state": "none", "queued_updates": 0,
            "oldest_queued_age_seconds": None})

    async def test_as_json_answers_as_in_2x(self):
        farm = await Farm(self).start(task_doc())
        await farm.m.register(nickname="alpha")
        report = await farm.get("/as-json")
        self.assertEqual(report.code, 200)
        self.assertEqual((report.json["nr_of_workers"], report.json["nr_of_tasks"]), (1, 1))
        self.assertEqual(report.json["workers"][0]["nickname"], "alpha")
        self.assertIn("supported_job_types", report.json["workers"][0])
        for key in ("upstream_queue_size", "version", "manager_name", "manager_mode", "server"):
            self.assertIn(key, report.json)

    async def test_unknown_operator_path_is_a_json_404(self):
        farm = await Farm(self).start()
        response = await farm.get("/api/nothing-here")
        self.assertEqual(response.code, 404)
        self.assertIn("error", response.json)
