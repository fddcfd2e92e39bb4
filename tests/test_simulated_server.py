"""The simulated Flamenco Server follows the Server rules of PROTOCOL §6 (real loopback HTTP)."""

import base64
import gzip
import json

import treq
from twisted.internet import task
from twisted.trial import unittest

from flamenco.ids import new_object_id
from flamenco.testing import serve_for_test
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET, demo_job_tasks

AUTH = b"Basic " + base64.b64encode(DEFAULT_MANAGER_SECRET.encode() + b":")


class SimulatedServerTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1515575700)  # 2018-01-10
        self.server = serve_for_test(self, clock=self.clock)

    async def call(self, method, path, *, headers=None, body=None, auth=AUTH, raw=None):
        all_headers = {b"Content-Type": [b"application/json"]}
        if auth:
            all_headers[b"Authorization"] = [auth]
        for name, value in (headers or {}).items():
            all_headers[name.encode()] = [value.encode()]
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        response = await treq.request(method, self.server.url.rstrip("/") + path,
                                      headers=all_headers, data=data, persistent=False)
        content = await treq.content(response)
        return response, content

    def depsgraph_path(self, manager=DEFAULT_MANAGER_ID):
        return f"/api/flamenco/managers/{manager}/depsgraph"

    def push_path(self):
        return f"/api/flamenco/managers/{DEFAULT_MANAGER_ID}/task-update-batch"

    async def test_authentication(self):
        response, _ = await self.call("GET", self.depsgraph_path(), auth=None)
        self.assertEqual(response.code, 401)
        bad = b"Basic " + base64.b64encode(b"wrong-token:")
        response, _ = await self.call("GET", self.depsgraph_path(), auth=bad)
        self.assertEqual(response.code, 401)
        response, _ = await self.call("GET", self.depsgraph_path(new_object_id()))
        self.assertEqual(response.code, 404)

    async def test_depsgraph_claims_and_honours_modified_since(self):
        response, _ = await self.call("GET", self.depsgraph_path())
        self.assertEqual(response.code, 204, "no runnable job yet")
        job, ids = self.server.create_job(demo_job_tasks())
        response, content = await self.call("GET", self.depsgraph_path())
        self.assertEqual(response.code, 200)
        tasks = json.loads(content)["depsgraph"]
        self.assertEqual([t["_id"] for t in tasks], ids)
        self.assertEqual({t["status"] for t in tasks}, {"claimed-by-manager"})
        self.assertEqual(self.server.task_status(ids[0]), "claimed-by-manager")
        stamp = response.headers.getRawHeaders(b"X-Flamenco-Last-Updated")[0].decode()
        self.assertEqual(response.headers.getRawHeaders(b"X-Flamenco-Last-Updated-Format"),
                         [b"ISO-8601"])
        response, _ = await self.call("GET", self.depsgraph_path(),
                                      headers={"X-Flamenco-If-Updated-Since": stamp})
        self.assertEqual(response.code, 304)
        self.clock.advance(5)
        self.server.set_task(ids[2], priority=90)
        response, content = await self.call("GET", self.depsgraph_path(),
                                            headers={"X-Flamenco-If-Updated-Since": stamp})
        self.assertEqual(response.code, 200)
        self.assertEqual([t["_id"] for t in json.loads(content)["depsgraph"]], [ids[2]])

    async def test_depsgraph_type_hint_and_limit(self):
        self.server.max_tasks_per_download = 2
        _, renders = self.server.create_job(
            [{"name": f"r{i}", "task_type": "blender-render"} for i in range(4)],
            job_type="blender-render")
        _, merges = self.server.create_job([{"name": "m", "task_type": "exr-merge"}])
        response, content = await self.call("GET", self.depsgraph_path())
        self.assertEqual([t["_id"] for t in json.loads(content)["depsgraph"]], renders[:2])
        self.assertIsNone(response.headers.getRawHeaders(b"X-Flamenco-Task-Types"))
        response, content = await self.call("GET", self.depsgraph_path() + "?task_types=exr-merge")
        self.assertEqual([t["_id"] for t in json.loads(content)["depsgraph"]][:1], merges)
        self.assertEqual(response.headers.getRawHeaders(b"X-Flamenco-Task-Types"), [b"exr-merge"])

    async def test_refetch_etags(self):
        _, (task_id,) = self.server.create_job([{"name": "one"}])
        path = f"/api/flamenco/tasks/{task_id}"
        response, content = await self.call("GET", path, headers={"If-None-Match": ""})
        self.assertEqual(response.code, 200)
        etag = json.loads(content)["_etag"]
        response, _ = await self.call("GET", path, headers={"If-None-Match": etag})
        self.assertEqual(response.code, 304)
        self.server.set_task(task_id, priority=1)
        response, content = await self.call("GET", path, headers={"If-None-Match": etag})
        self.assertEqual((response.code, json.loads(content)["priority"]), (200, 1))
        response, _ = await self.call("GET", f"/api/flamenco/tasks/{new_object_id()}")
        self.assertEqual(response.code, 404)
        self.server.managers[new_object_id()] = "other-token"
        other = b"Basic " + base64.b64encode(b"other-token:")
        response, _ = await self.call("GET", path, auth=other)
        self.assertEqual(response.code, 403)

    async def test_push_acceptance_rules(self):
        _, (t1, t2) = self.server.create_job([{"name": "a"}, {"name": "b"}])
        self.server.set_task(t2, status="cancel-requested")
        unknown = new_object_id()
        updates = [
            {"_id": new_object_id(), "task_id": t1, "task_status": "active",
             "received_on_manager": "2018-01-10T09:16:40.512Z", "log": "line 1",
             "current_command_index": 2, "worker": "w1", "activity": "working"},
            {"_id": new_object_id(), "task_id": t2, "task_status": "active",
             "received_on_manager": "2018-01-10T09:16:41.000Z"},
            {"_id": new_object_id(), "task_id": unknown, "task_status": "canceled",
             "received_on_manager": "2018-01-10T09:16:42.000Z"},
        ]
        response, content = await self.call("POST", self.push_path(), body=updates)
        answer = json.loads(content)
        self.assertEqual(answer["handled_update_ids"], [u["_id"] for u in updates])  # 2021
        self.assertEqual(answer["cancel_task_ids"], [t2])
        self.assertEqual(self.server.task_status(t1), "active")
        self.assertEqual(self.server.task_status(t2), "cancel-requested")
        self.assertEqual(self.server.tasks[t1].doc["current_command_index"], 2)
        self.assertEqual(self.server.logs_of(t1), ["line 1"])
        # Re-delivery collapses by update ID; canceled is accepted after cancel-requested.
        cancel = {"_id": new_object_id(), "task_id": t2, "task_status": "canceled",
                  "received_on_manager": "2018-01-10T09:16:43.000Z"}
        response, content = await self.call("POST", self.push_path(), body=[updates[0], cancel])
        self.assertNotIn("cancel_task_ids", json.loads(content))
        self.assertEqual(self.server.logs_of(t1), ["line 1"])
        self.assertEqual(self.server.task_status(t2), "canceled")

    async def test_push_2017_does_not_ack_unknown_tasks(self):
        self.server.generation = "2017"
        update = {"_id": new_object_id(), "task_id": new_object_id(), "task_status": "canceled",
                  "received_on_manager": "2018-01-10T09:16:42.000Z"}
        _, content = await self.call("POST", self.push_path(), body=[update])
        self.assertEqual(json.loads(content)["handled_update_ids"], [])

    async def test_push_bad_ids_and_gzip(self):
        response, _ = await self.call("POST", self.push_path(),
                                      body=[{"_id": "nope", "task_id": new_object_id()}])
        self.assertEqual(response.code, 400)
        response, content = await self.call("POST", self.push_path(), raw=b"null")
        self.assertEqual(json.loads(content), {"modified_count": 0, "handled_update_ids": []})
        response, content = await self.call("POST", self.push_path(), raw=gzip.compress(b"[]"),
                                            headers={"Content-Encoding": "gzip"})
        self.assertEqual(response.code, 200)
        self.assertTrue(self.server.pushed_batches[-1]["gzip"])
        self.server.accept_gzip = False
        response, _ = await self.call("POST", self.push_path(), raw=gzip.compress(b"[]"),
                                      headers={"Content-Encoding": "gzip"})
        self.assertEqual(response.code, 415)

    async def test_startup_requires_path_replacement_from_2021(self):
        path = f"/api/flamenco/managers/{DEFAULT_MANAGER_ID}/startup"
        body = {"manager_url": "http://m/", "variables": {}, "nr_of_workers": 0}
        response, _ = await self.call("POST", path, body=body)
        self.assertEqual(response.code, 400)
        response, _ = await self.call("POST", path, body=dict(body, path_replacement={}))
        self.assertEqual(response.code, 204)
        self.assertEqual(self.server.notifications[-1][0], "startup")

    async def test_cancel_job(self):
        job, (t1, t2, t3) = self.server.create_job([{}, {}, {}])
        self.server.set_task(t2, status="active")
        await self.call("GET", self.depsgraph_path())  # t1 and t3 claimed
        self.server.set_task(t3, status="queued")
        self.server.cancel_job(job)
        self.assertEqual([self.server.task_status(t) for t in (t1, t2, t3)],
                         ["cancel-requested", "cancel-requested", "canceled"])
        self.assertEqual(self.server.jobs[job].status, "cancel-requested")
