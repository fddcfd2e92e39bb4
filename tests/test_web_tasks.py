"""`/task`, `/tasks/{id}/update`, `/tasks/{id}/return` and `/may-i-run/{id}` over real HTTP."""

from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.ids import new_object_id
from flamenco.write_resolution import MAX_RESOLUTION_SECONDS
from tests.factories import task_doc
from tests.inprocess import TaskFarm

VARIABLES = {"blender": {"linux": "/opt/blender/blender", "windows": "c:/blender.exe"}}


class Farm(TaskFarm):
    """An in-process Manager with tasks loaded and helpers to act as workers."""

    def __init__(self, testcase):
        super().__init__(testcase, variables=VARIABLES)

    async def worker(self, **kwargs):
        return await self.m.register(**kwargs)

    async def update(self, auth, task_id, body=None, raw=None):
        return await self.m.request("POST", f"/tasks/{task_id}/update", auth=auth,
                                    json_body=body, body=raw)

    async def may_i_run(self, auth, task_id):
        return await self.m.request("GET", f"/may-i-run/{task_id}", auth=auth)


class TaskEndpointTests(TestCase):
    async def test_nothing_to_do_is_204(self):
        farm = await Farm(self).start()
        response = await farm.ask(await farm.worker())
        self.assertEqual((response.code, response.body), (204, b""))

    async def test_assignment_replaces_variables_and_queues_two_updates(self):
        doc = task_doc(commands=[{"name": "blender_render", "settings": {
            "blender_cmd": "{blender} --factory-startup", "frames": "1..10",
            "nested": {"x": "{blender}"}, "count": 3}}])
        farm = await Farm(self).start(doc)
        auth = await farm.worker(platform="linux", nickname="render-01")
        response = await farm.ask(auth)
        self.assertEqual(response.code, 200)
        sent = response.json
        self.assertEqual(sent["_id"], doc["_id"])
        self.assertEqual(sent["status"], "active")
        self.assertEqual(sent["commands"][0]["settings"], {
            "blender_cmd": "/opt/blender/blender --factory-startup", "frames": "1..10",
            "nested": {"x": "{blender}"}, "count": 3})
        for local in ("worker_id", "last_worker_ping", "last_updated"):
            self.assertNotIn(local, sent)
        stored = await farm.store.get_task(doc["_id"])
        self.assertEqual(stored.doc["commands"][0]["settings"]["blender_cmd"],
                         "{blender} --factory-startup")
        self.assertEqual((stored.status, stored.worker_id), ("active", auth[0]))
        active, note = await farm.store.queued_updates(10)
        self.assertEqual((active.task_status, active.worker, active.activity), ("active", "", ""))
        self.assertEqual(note.activity, "Manager assigned task to worker 127.0.0.1 (render-01)")
        self.assertRegex(note.log,
                         r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}: Manager assigned task")
        self.assertEqual(note.task_status, "")

    async def test_2x_announcement_names_the_task(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        await farm.ask(await farm.worker(generation="2.x"))
        note = (await farm.store.queued_updates(10))[-1]
        self.assertEqual(note.activity,
                         f"Manager assigned task {doc['_id']} to worker 127.0.0.1 (render-01)")

    async def test_worker_gets_only_supported_types(self):
        render = task_doc(job_type="blender-render", task_type="blender-render", priority=99)
        sleep = task_doc(job_type="sleep")
        farm = await Farm(self).start(render, sleep)
        response = await farm.ask(await farm.worker(types=("sleep",)))
        self.assertEqual(response.json["_id"], sleep["_id"])
        self.assertEqual((await farm.ask(await farm.worker(types=("sleep",)))).code, 204)

    async def test_worker_without_types_gets_406(self):
        farm = await Farm(self).start(task_doc())
        response = await farm.ask(await farm.worker(types=()))
        self.assertEqual(response.code, 406)
        self.assertEqual(response.json["error"], "You do not support any job types.")
        self.assertEqual(await farm.store.count_queued_updates(), 0)

    async def test_worker_that_lost_its_task_gets_it_again(self):
        first, second = task_doc(priority=90), task_doc(priority=10)
        farm = await Farm(self).start(first, second)
        auth = await farm.worker()
        self.assertEqual((await farm.ask(auth)).json["_id"], first["_id"])
        self.assertEqual((await farm.ask(auth)).json["_id"], first["_id"])

    async def test_worker_that_reported_on_its_task_does_not_get_it_again(self):
        # A Worker that finished a task but whose `completed` is still on its way (the
        # Manager was down) asks for work: handing it the same task would run it twice.
        first, second = task_doc(priority=90), task_doc(priority=10)
        farm = await Farm(self).start(first, second)
        auth = await farm.worker(generation="2.x")
        self.assertEqual((await farm.ask(auth)).json["_id"], first["_id"])
        await farm.update(auth, first["_id"], {"task_status": "active", "activity": "rendering"})
        self.assertEqual((await farm.ask(auth)).json["_id"], second["_id"])
        self.assertEqual((await farm.update(auth, first["_id"], {"task_status": "completed"})).code,
                         204)
        self.assertEqual((await farm.store.get_task(first["_id"])).status, "completed")
        await farm.may_i_run(auth, second["_id"])
        self.assertEqual((await farm.ask(auth)).code, 204)

    async def test_pending_status_request_is_423_with_exactly_one_key(self):
        farm = await Farm(self).start(task_doc())
        auth = await farm.worker(generation="2.x")
        action = await farm.m.request(
            "POST", f"/worker-action/{auth[0]}?action=set-status&status=asleep&lazy=true")
        self.assertEqual(action.code, 204)
        response = await farm.ask(auth)
        self.assertEqual((response.code, response.json), (423, {"status_requested": "asleep"}))
        self.assertEqual(await farm.store.count_queued_updates(), 0)
        change = await farm.m.request("GET", "/status-change", auth=auth)
        self.assertEqual((change.code, change.json), (200, {"status_requested": "asleep"}))
        ack = await farm.m.request("POST", "/ack-status-change/asleep", auth=auth)
        self.assertEqual(ack.code, 204)
        self.assertEqual((await farm.m.request("GET", "/status-change", auth=auth)).code, 204)
        worker = await farm.store.get_worker(auth[0])
        self.assertEqual((worker.status, worker.status_requested), ("asleep", ""))
        self.assertEqual((await farm.ask(auth)).code, 200)

    async def test_operator_actions_are_validated(self):
        farm = await Farm(self).start()
        auth = await farm.worker()
        bad_status = await farm.m.request(
            "POST", f"/worker-action/{auth[0]}?action=set-status&status=dancing")
        self.assertEqual(bad_status.code, 400)
        unknown = await farm.m.request(
            "POST", f"/worker-action/{new_object_id()}?action=shutdown")
        self.assertEqual(unknown.code, 404)
        bad_action = await farm.m.request("POST", f"/worker-action/{auth[0]}?action=explode")
        self.assertEqual(bad_action.code, 400)
        self.assertEqual((await farm.store.get_worker(auth[0])).status_requested, "")

    async def test_ack_of_unknown_status_is_400(self):
        farm = await Farm(self).start()
        auth = await farm.worker(generation="2.x")
        response = await farm.m.request("POST", "/ack-status-change/dancing", auth=auth)
        self.assertEqual(response.code, 400)
        self.assertEqual((await farm.store.get_worker(auth[0])).status, "")


class TaskUpdateTests(TestCase):
    async def assigned(self, generation="2.0", **doc_fields):
        doc = task_doc(**doc_fields)
        farm = await Farm(self).start(doc)
        auth = await farm.worker(generation=generation)
        self.assertEqual((await farm.ask(auth)).code, 200)
        return farm, auth, doc["_id"]

    async def test_update_is_queued_and_applied(self):
        echo = {"name": "echo", "settings": {"message": "hello"}}
        farm, auth, task_id = await self.assigned(commands=[echo, echo])
        before = await farm.store.count_queued_updates()
        response = await farm.update(auth, task_id, {
            "task_status": "active", "activity": "rendering frame 3", "current_command_idx": 1,
            "task_progress_percentage": 30, "command_progress_percentage": 50.0,
            "log": "line 1\nline 2", "unknown_field": True})
        self.assertEqual(response.code, 204)
        queued = (await farm.store.queued_updates(100))[before:]
        self.assertEqual(len(queued), 1)
        update = queued[0]
        self.assertEqual(
            (update.task_id, update.task_status, update.activity, update.current_command_idx,
             update.task_progress_percentage, update.command_progress_percentage, update.log,
             update.worker),
            (task_id, "active", "rendering frame 3", 1, 30, 50, "line 1\nline 2",
             "127.0.0.1 (render-01)"),
        )
        task = await farm.store.get_task(task_id)
        self.assertEqual(task.doc["activity"], "rendering frame 3")
        done = await farm.update(auth, task_id, {"task_status": "completed"})
        self.assertEqual(done.code, 204)
        self.assertEqual((await farm.store.get_task(task_id)).status, "completed")

    async def test_empty_update_is_a_ping(self):
        farm, auth, task_id = await self.assigned()
        farm.m.clock.advance(30)
        self.assertEqual((await farm.update(auth, task_id, {})).code, 204)
        task = await farm.store.get_task(task_id)
        self.assertEqual(task.last_worker_ping, farm.m.manager.updates.now())

    async def test_bad_updates_are_400_and_change_nothing(self):
        farm, auth, task_id = await self.assigned()
        before_queue = await farm.store.queued_updates(100)
        before_task = await farm.store.get_task(task_id)
        cases = [
            (None, b"{broken", "not valid JSON"),
            ({"task_status": 5}, None, "'task_status' must be a string"),
            ({"task_status": "exploded"}, None, "task_status 'exploded'"),
            ({"task_status": "claimed-by-manager"}, None, "not one a worker may report"),
            ({"current_command_idx": "2"}, None, "'current_command_idx' must be an integer"),
            ({"current_command_idx": 1.5}, None, "must be an integer"),
            ({"task_progress_percentage": 101}, None, "must be in 0..100"),
            ({"command_progress_percentage": True}, None, "must be an integer"),
            ({"log": ["a"]}, None, "'log' must be a string"),
            ({"metrics": []}, None, "'metrics' must be an object"),
        ]
        for body, raw, message in cases:
            response = await farm.update(auth, task_id, body, raw)
            self.assertEqual(response.code, 400, (body, raw))
            self.assertIn(message, response.json["error"])
        self.assertEqual(await farm.store.queued_updates(100), before_queue)
        self.assertEqual(await farm.store.get_task(task_id), before_task)

    async def test_oversized_body_is_413(self):
        farm, auth, task_id = await self.assigned()
        big = b'{"log": "' + b"x" * (16 * 1024 * 1024) + b'"}'
        before = await farm.store.count_queued_updates()
        response = await farm.update(auth, task_id, raw=big)
        self.assertEqual(response.code, 413)
        self.assertEqual(response.json["error"], "request body too large")
        self.assertEqual(await farm.store.count_queued_updates(), before)

    async def test_invalid_task_id_is_404_after_authentication(self):
        farm, auth, _ = await self.assigned()
        response = await farm.update(auth, "not-an-id", {})
        self.assertEqual(response.code, 404)
        self.assertIn("Invalid ObjectID", response.json["error"])

    async def test_unknown_task_is_404_for_2x_and_409_for_2_0(self):
        farm = await Farm(self).start()
        old = await farm.worker(generation="2.0")
        new = await farm.worker(generation="2.x")
        unknown = new_object_id()
        self.assertEqual((await farm.update(new, unknown, {"log": "x"})).code, 404)
        response = await farm.update(old, unknown, {"log": "x"})
        self.assertEqual(response.code, 409)
        self.assertEqual(response.json["error"], f"Task {unknown} is unknown.")
        self.assertEqual(await farm.store.count_queued_updates(), 0)

    async def test_task_of_another_worker_is_409_and_not_queued(self):
        farm, auth, task_id = await self.assigned()
        other = await farm.worker(nickname="render-02")
        before = await farm.store.count_queued_updates()
        response = await farm.update(other, task_id, {"task_status": "failed"})
        self.assertEqual(response.code, 409)
        self.assertEqual(response.json["error"], f"Task {task_id} is assigned to another worker.")
        self.assertEqual(await farm.store.count_queued_updates(), before)
        self.assertEqual((await farm.store.get_task(task_id)).status, "active")

    async def test_cancel_requested_task_accepts_only_ending_statuses(self):
        farm, auth, task_id = await self.assigned()
        await farm.store.set_task_status(task_id, statuses.CANCEL_REQUESTED)
        late = await farm.update(auth, task_id, {"task_status": "active", "activity": "busy",
                                                 "log": "still going"})
        self.assertEqual(late.code, 204)
        task = await farm.store.get_task(task_id)
        self.assertEqual(task.status, statuses.CANCEL_REQUESTED)
        forwarded = (await farm.store.queued_updates(100))[-1]
        self.assertEqual((forwarded.task_status, forwarded.activity, forwarded.log),
                         ("", "", "still going"))
        await farm.update(auth, task_id,
                          {"task_status": "canceled", "activity": "Task was canceled"})
        self.assertEqual((await farm.store.get_task(task_id)).status, statuses.CANCELED)

    async def test_completed_task_is_not_reopened_by_a_late_update(self):
        farm, auth, task_id = await self.assigned()
        await farm.update(auth, task_id, {"task_status": "completed"})
        await farm.update(auth, task_id, {"task_status": "active", "log": "late"})
        self.assertEqual((await farm.store.get_task(task_id)).status, "completed")


class MayIRunTests(TestCase):
    async def assigned(self, generation="2.0"):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        auth = await farm.worker(generation=generation)
        await farm.ask(auth)
        return farm, auth, doc["_id"]

    async def test_active_task_may_keep_running_and_is_pinged(self):
        farm, auth, task_id = await self.assigned()
        farm.m.clock.advance(42)
        response = await farm.may_i_run(auth, task_id)
        self.assertEqual((response.code, response.json), (200, {"may_keep_running": True}))
        task = await farm.store.get_task(task_id)
        self.assertEqual(task.last_worker_ping, farm.m.manager.updates.now())

    async def test_polls_in_quick_succession_record_one_ping(self):
        farm, auth, task_id = await self.assigned()
        farm.m.clock.advance(42)
        await farm.may_i_run(auth, task_id)
        pinged = (await farm.store.get_task(task_id)).last_worker_ping
        farm.m.clock.advance(MAX_RESOLUTION_SECONDS - 1)
        self.assertEqual((await farm.may_i_run(auth, task_id)).json, {"may_keep_running": True})
        self.assertEqual((await farm.store.get_task(task_id)).last_worker_ping, pinged)
        farm.m.clock.advance(1)
        await farm.may_i_run(auth, task_id)
        self.assertEqual((await farm.store.get_task(task_id)).last_worker_ping,
                         farm.m.manager.updates.now())

    async def test_refusals_are_200_with_the_protocol_reasons(self):
        farm, auth, task_id = await self.assigned()
        unknown = new_object_id()
        other = await farm.worker(nickname="render-02")
        response = await farm.may_i_run(auth, unknown)
        self.assertEqual(response.json, {"may_keep_running": False,
                                         "reason": f"unable to find task {unknown}"})
        response = await farm.may_i_run(other, task_id)
        self.assertEqual(response.json, {"may_keep_running": False,
                                         "reason": f"task {task_id} reassigned to another worker"})
        await farm.store.set_task_status(task_id, statuses.CANCEL_REQUESTED)
        response = await farm.may_i_run(auth, task_id)
        self.assertEqual(response.json, {
            "may_keep_running": False,
            "reason": f"task {task_id} in non-runnable status cancel-requested"})
        malformed = await farm.may_i_run(auth, "nope")
        self.assertEqual(malformed.code, 404)

    async def test_status_request_reaches_2x_workers_only(self):
        farm, auth, task_id = await self.assigned(generation="2.x")
        await farm.m.request("POST", f"/worker-action/{auth[0]}?action=set-status&status=asleep")
        response = await farm.may_i_run(auth, task_id)
        self.assertEqual(response.json, {
            "may_keep_running": False, "status_requested": "asleep",
            "reason": "worker status change to asleep requested"})
        old_farm, old_auth, old_task = await self.assigned(generation="2.0")
        await old_farm.m.request(
            "POST", f"/worker-action/{old_auth[0]}?action=set-status&status=asleep")
        response = await old_farm.may_i_run(old_auth, old_task)
        self.assertEqual(response.json, {"may_keep_running": True})

    async def test_lazy_request_lets_the_task_run(self):
        farm, auth, task_id = await self.assigned(generation="2.x")
        await farm.m.request(
            "POST", f"/worker-action/{auth[0]}?action=set-status&status=asleep&lazy=true")
        response = await farm.may_i_run(auth, task_id)
        self.assertEqual(response.json, {"may_keep_running": True, "status_requested": "asleep"})


class ReturnTests(TestCase):
    async def test_return_requeues_own_active_task(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        auth = await farm.worker(generation="2.x")
        await farm.ask(auth)
        response = await farm.m.request("POST", f"/tasks/{doc['_id']}/return", auth=auth)
        self.assertEqual(response.code, 204)
        update = (await farm.store.queued_updates(10))[-1]
        self.assertEqual((update.task_status, update.worker, update.activity), (
            "claimed-by-manager", "-",
            "Re-queued task after unassigning from worker 127.0.0.1 (render-01): "
            "returned by worker"))
        self.assertEqual((await farm.store.get_task(doc["_id"])).status, "claimed-by-manager")
        # Returning again is a no-op: the task is no longer active.
        before = await farm.store.count_queued_updates()
        await farm.m.request("POST", f"/tasks/{doc['_id']}/return", auth=auth)
        self.assertEqual(await farm.store.count_queued_updates(), before)

    async def test_return_of_another_workers_task_or_unknown_task(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        owner = await farm.worker(generation="2.x")
        await farm.ask(owner)
        other = await farm.worker(generation="2.x", nickname="render-02")
        before = await farm.store.count_queued_updates()
        response = await farm.m.request("POST", f"/tasks/{doc['_id']}/return", auth=other)
        self.assertEqual(response.code, 204)
        self.assertEqual(await farm.store.count_queued_updates(), before)
        unknown = await farm.m.request("POST", f"/tasks/{new_object_id()}/return", auth=other)
        self.assertEqual(unknown.code, 404)
        self.assertIn("error", unknown.json)


class MiscEndpointTests(TestCase):
    async def test_status_report(self):
        farm = await Farm(self).start(task_doc(), task_doc())
        await farm.worker()
        response = await farm.m.request("GET", "/")
        self.assertEqual(response.json["nr_of_workers"], 1)
        self.assertEqual(response.json["nr_of_tasks"], 2)
        self.assertEqual(response.json["upstream_queue_size"], 0)
        self.assertEqual(response.headers.getRawHeaders("Cache-Control"), ["no-cache"])

    async def test_output_produced(self):
        farm = await Farm(self).start()
        auth = await farm.worker(generation="2.x")
        ok = await farm.m.request("POST", "/output-produced", auth=auth,
                                  json_body={"paths": ["/render/0001.png"]})
        self.assertEqual(ok.code, 204)
        empty = await farm.m.request("POST", "/output-produced", auth=auth, json_body={"paths": []})
        self.assertEqual((empty.code, empty.json["error"]),
                         (422, "List of paths may not be empty."))

    async def test_unknown_route_and_method_are_json_errors(self):
        farm = await Farm(self).start()
        missing = await farm.m.request("GET", "/no-such-thing")
        self.assertEqual((missing.code, missing.json["error"]),
                         (404, "no such endpoint: /no-such-thing"))
        wrong = await farm.m.request("DELETE", "/task")
        self.assertEqual(wrong.code, 405)
        self.assertIn("not allowed", wrong.json["error"])

    async def test_store_unavailable_is_503_except_for_may_i_run(self):
        farm = await Farm(self).start(task_doc())
        auth = await farm.worker()
        await farm.store.close()
        response = await farm.ask(auth)
        self.assertEqual(response.code, 503)
        self.assertEqual(response.json["error"], "database unavailable, try again later")
        polled = await farm.may_i_run(auth, new_object_id())
        self.assertEqual((polled.code, polled.json), (200, {"may_keep_running": True}))
