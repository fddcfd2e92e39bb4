"""The job API of a stand-alone Manager over loopback HTTP: submission (201 / 422 with every
problem), reading, and steering jobs while simulated Workers run their tasks."""

import os
import socket

import yaml

from twisted.internet import reactor
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.server import Site

from flamenco.config import Config
from flamenco.manager import build_manager
from flamenco.standalone.local_updates import LocalUpdates
from flamenco.store.sqlite import SQLiteStore
from flamenco.testing.worker import GENERATION_2_0, GENERATION_2_X, SimulatedWorker
from flamenco.web.jobs_api import JobsAPI
from tests.factories import MANAGER_ID
from tests.inprocess import InProcessManager
from tests.manager_process import REPO_ROOT

SLEEP = {"name": "smoke", "type": "sleep", "settings": {"n_tasks": 3, "seconds": 1}}


class JobAPITestCase(TestCase):
    async def manager(self, **config) -> InProcessManager:
        self.m = await InProcessManager(self, **config).start()
        self.rounds = next(s for s in self.m.manager.services if isinstance(s, LocalUpdates))
        return self.m

    async def submit(self, doc=SLEEP) -> dict:
        response = await self.m.request("POST", "/api/jobs", json_body=doc)
        self.assertEqual(response.code, 201, response.body)
        return response.json

    async def job(self, job_id: str) -> dict:
        response = await self.m.request("GET", f"/api/jobs/{job_id}")
        self.assertEqual(response.code, 200, response.body)
        return response.json

    async def act(self, job_id: str, action: str, code: int = 200, **body):
        response = await self.m.request("POST", f"/api/jobs/{job_id}/{action}",
                                        json_body=body or None)
        self.assertEqual(response.code, code, response.body)
        return response.json

    async def worker(self, generation=GENERATION_2_0, types=("sleep",)) -> SimulatedWorker:
        worker = SimulatedWorker(self.m.url, generation=generation, types=types,
                                 nickname=f"w-{generation}")
        self.addCleanup(worker.close)
        await worker.register()
        return worker


class SubmissionTests(JobAPITestCase):
    async def test_submit_answers_201_with_job_and_task_ids(self):
        await self.manager()
        answer = await self.submit()
        self.assertEqual((answer["status"], answer["priority"], len(answer["task_ids"])),
                         ("queued", 50, 3))
        job = await self.job(answer["id"])
        self.assertEqual([t["id"] for t in job["tasks"]], answer["task_ids"])
        self.assertEqual(job["task_counts"], {"queued": 3})
        self.assertEqual(job["tasks"][0]["commands"][1],
                         {"name": "sleep", "settings": {"time_in_seconds": 1}})

    async def test_bad_submission_gets_422_with_every_problem_and_stores_nothing(self):
        await self.manager()
        response = await self.m.request("POST", "/api/jobs", json_body={
            "type": "sleep", "priority": 101, "settings": {"n_tasks": 0, "seconds": "x"}})
        self.assertEqual(response.code, 422)
        self.assertEqual(response.json["problems"], [
            "name: required, a non-empty string",
            "priority: must be 1..100, not 101",
            "settings.n_tasks: must be at least 1, not 0",
            "settings.seconds: expected a number, not 'x'",
        ])
        self.assertEqual((await self.m.request("GET", "/api/jobs")).json, {"jobs": []})
        self.assertEqual(await self.m.store.count_tasks(), 0)

    async def test_body_that_is_not_json_gets_422(self):
        await self.manager()
        response = await self.m.request("POST", "/api/jobs", body=b"{name: x")
        self.assertEqual(response.code, 422)
        self.assertIn("not valid JSON", response.json["problems"][0])

    async def test_values_the_store_cannot_keep_get_422(self):
        await self.manager()
        for body in (b'{"name": "\\ud800", "type": "sleep"}',
                     b'{"name": "x", "type": "sleep", "priority": 1e999}',
                     b'{"name": "x", "type": "sleep", "settings": {"n_tasks": NaN}}'):
            response = await self.m.request("POST", "/api/jobs", body=body)
            self.assertEqual(response.code, 422, body)
        self.assertEqual(await self.m.store.count_tasks(), 0)

    async def test_list_filters_on_status(self):
        await self.manager()
        first = await self.submit()
        await self.submit()
        await self.act(first["id"], "cancel")
        listed = (await self.m.request("GET", "/api/jobs?status=canceled")).json["jobs"]
        self.assertEqual([job["id"] for job in listed], [first["id"]])
        self.assertEqual(len((await self.m.request("GET", "/api/jobs")).json["jobs"]), 2)
        self.assertEqual((await self.m.request("GET", "/api/jobs?status=done")).code, 422)

    async def test_types_declare_their_settings(self):
        await self.manager()
        types = (await self.m.request("GET", "/api/jobs/types")).json["types"]
        sleep = next(t for t in types if t["name"] == "sleep")
        self.assertEqual(sleep["settings"][0]["name"], "n_tasks")
        self.assertEqual(sleep["settings"][0]["default"], 3)

    async def test_unknown_job_route_and_action(self):
        await self.manager()
        self.assertEqual((await self.m.request("GET", "/api/jobs/nope")).code, 404)
        self.assertEqual((await self.m.request("GET", f"/api/jobs/{MANAGER_ID}")).code, 404)
        job = await self.submit()
        self.assertEqual((await self.m.request("POST", f"/api/jobs/{job['id']}/explode")).code,
                         404)
        self.assertEqual((await self.m.request("PUT", "/api/jobs")).code, 405)

    async def test_two_way_paths_run_in_the_workers_form(self):
        await self.manager(two_way_variables={
            "projects": {"windows": "S:\\projects", "linux": "/mnt/projects"}})
        answer = await self.submit({
            "name": "shot", "type": "blender-render", "submitter_platform": "windows",
            "settings": {"filepath": "S:\\projects\\shot.blend", "frames": "1-3",
                         "render_output": "S:\\projects\\out\\####"}})
        self.assertEqual(answer["settings"]["filepath"], "S:\\projects\\shot.blend")
        worker = await self.worker(types=("blender-render",))
        task = await worker.ask_for_task()
        settings = task["commands"][0]["settings"]
        self.assertEqual((settings["filepath"], settings["render_output"]),
                         ("/mnt/projects/shot.blend", "/mnt/projects/out/####"))
        await worker.send_update(task["_id"], task_status="active",
                                 activity="Saved /mnt/projects/out/0001.png")
        job = await self.job(answer["id"])
        self.assertEqual(job["tasks"][0]["activity"], "Saved S:\\projects\\out\\0001.png")


class SteeringTests(JobAPITestCase):
    async def test_job_runs_to_completion(self):
        await self.manager()
        answer = await self.submit()
        worker = await self.worker()
        for _ in range(3):
            self.assertEqual((await worker.run_task(await worker.ask_for_task())).result,
                             "completed")
            await self.rounds.inspect()
        job = await self.job(answer["id"])
        self.assertEqual((job["status"], job["task_counts"]), ("completed", {"completed": 3}))
        self.assertEqual(await self.m.store.count_queued_updates(), 0)

    async def test_first_active_task_makes_the_job_active(self):
        await self.manager()
        answer = await self.submit()
        worker = await self.worker()
        await worker.ask_for_task()
        await self.rounds.inspect()
        self.assertEqual((await self.job(answer["id"]))["status"], "active")

    async def test_cancel_mid_way_with_a_2_0_worker(self):
        await self.manager()
        answer = await self.submit()
        worker = await self.worker()
        running = await worker.ask_for_task()
        job = await self.act(answer["id"], "cancel")
        self.assertEqual(job["status"], "cancel-requested")
        self.assertEqual((await self.job(answer["id"]))["task_counts"],
                         {"cancel-requested": 1, "canceled": 2})
        self.assertFalse((await worker.may_i_run(running["_id"]))["may_keep_running"])
        await worker.send_update(running["_id"], task_status="canceled")
        await self.rounds.inspect()
        self.assertEqual((await self.job(answer["id"]))["status"], "canceled")
        self.assertIsNone(await worker.ask_for_task())

    async def test_cancel_finishes_when_a_2_x_worker_returns_the_task(self):
        await self.manager()
        answer = await self.submit()
        worker = await self.worker(GENERATION_2_X)
        running = await worker.ask_for_task()
        await self.act(answer["id"], "cancel")
        self.assertEqual(await worker.return_task(running["_id"]), 204)
        await self.rounds.inspect()
        self.assertEqual((await self.job(answer["id"]))["status"], "cancel-requested")
        self.m.clock.advance(self.m.config.cancel_task_fetch_max_interval_seconds)
        await self.rounds.inspect()
        await self.rounds.inspect()  # the canceled update marked the job for reconciling
        job = await self.job(answer["id"])
        self.assertEqual((job["status"], job["task_counts"]), ("canceled", {"canceled": 3}))

    async def test_cancel_of_a_finished_job_is_409(self):
        await self.manager()
        answer = await self.submit()
        await self.act(answer["id"], "cancel")
        self.assertIn("already canceled", (await self.act(answer["id"], "cancel", 409))["error"])

    async def test_too_many_failures_fail_the_job_and_requeue_brings_it_back(self):
        await self.manager()
        answer = await self.submit()
        worker = await self.worker()
        task = await worker.ask_for_task()
        await worker.send_update(task["_id"], task_status="failed", activity="exit 1")
        await self.rounds.inspect()
        job = await self.job(answer["id"])
        self.assertEqual((job["status"], job["task_counts"]), ("failed", {"failed": 1,
                                                                         "canceled": 2}))
        requeued = await self.act(answer["id"], "requeue")
        self.assertEqual((requeued["status"], requeued["requeued"]), ("queued", 3))
        for _ in range(3):
            await worker.run_task(await worker.ask_for_task())
        await self.rounds.inspect()
        self.assertEqual((await self.job(answer["id"]))["status"], "completed")

    async def test_requeue_all(self):
        await self.manager()
        first, second = await self.submit(), await self.submit()
        await self.act(first["id"], "cancel")
        await self.act(second["id"], "cancel")
        response = await self.m.request("POST", "/api/jobs/requeue")
        self.assertEqual(response.json, {"requeued": 6})
        self.assertEqual((await self.job(second["id"]))["status"], "queued")

    async def test_pause_holds_tasks_back_until_resumed(self):
        await self.manager()
        answer = await self.submit()
        worker = await self.worker()
        self.assertEqual((await self.act(answer["id"], "pause"))["status"], "paused")
        self.assertIsNone(await worker.ask_for_task())
        self.assertEqual((await self.act(answer["id"], "pause", 409))["error"],
                         f"job {answer['id']} is paused; only a queued or active job can be"
                         " paused")
        self.assertEqual((await self.act(answer["id"], "resume"))["status"], "queued")
        self.assertIsNotNone(await worker.ask_for_task())

    async def test_priority_orders_the_hand_out(self):
        await self.manager()
        first, second = await self.submit(), await self.submit()
        self.assertEqual((await self.act(second["id"], "priority", priority=90))["priority"],
                         90)
        worker = await self.worker()
        self.assertIn((await worker.ask_for_task())["_id"], second["task_ids"])
        self.assertEqual((await self.act(first["id"], "priority", 422, priority=0))["problems"],
                         ["priority: a whole number 1..100, not 0"])

    async def test_delete_only_a_finished_job(self):
        await self.manager()
        answer = await self.submit()
        self.assertEqual((await self.m.request("DELETE", f"/api/jobs/{answer['id']}")).code, 409)
        await self.act(answer["id"], "cancel")
        self.assertEqual((await self.m.request("DELETE", f"/api/jobs/{answer['id']}")).code, 204)
        self.assertEqual((await self.m.request("GET", f"/api/jobs/{answer['id']}")).code, 404)
        self.assertEqual(await self.m.store.count_tasks(), 0)


class AccessTests(TestCase):
    async def test_other_machines_are_refused(self):
        address = _own_non_loopback_address()
        store = SQLiteStore(self.mktemp() + ".sqlite")
        await store.open()
        self.addCleanup(store.close)
        manager = build_manager(Config(), store, bcrypt_rounds=4)
        port = reactor.listenTCP(0, Site(manager.resource), interface=address)
        self.addCleanup(port.stopListening)
        client = InProcessManager(self)
        client.url = f"http://{address}:{port.getHost().port}"
        response = await client.request("GET", "/api/jobs")
        self.assertEqual(response.code, 403)
        self.assertIn("own machine", response.json["error"])

    async def test_relay_mode_has_no_job_api(self):
        m = await InProcessManager(self, flamenco="http://127.0.0.1:9/", manager_id=MANAGER_ID,
                                   manager_secret="secret").start()
        self.assertIsNone(m.manager.jobs)
        self.assertEqual((await m.request("GET", "/api/jobs")).code, 404)


def _own_non_loopback_address() -> str:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        address = probe.getsockname()[0]
    except OSError:
        address = ""
    finally:
        probe.close()
    if not address or address.startswith("127."):
        raise SkipTest("this machine has no non-loopback IPv4 address")
    return address


class OpenAPITests(TestCase):
    def test_every_route_is_described(self):
        with open(os.path.join(REPO_ROOT, "docs", "openapi-jobs.yaml"), encoding="utf-8") as f:
            spec = yaml.safe_load(f)
        described = {(path, method.upper()) for path, operations in spec["paths"].items()
                     for method in operations if method != "parameters"}
        served = set()
        for rule in JobsAPI.app.url_map.iter_rules():
            path = rule.rule.replace("<job_id>", "{job_id}")
            names = (["cancel", "pause", "resume", "requeue", "priority"]
                     if "<action>" in path else [None])
            for name in names:
                concrete = path.replace("<action>", name) if name else path
                served.update((concrete, method) for method in rule.methods
                              if method not in ("HEAD", "OPTIONS"))
        self.assertEqual(served, described)
