"""Soft-fail, retries and the blocklist (PROTOCOL §5.9) over real HTTP, in-process Manager."""

from datetime import timedelta

from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.ids import new_object_id
from tests.factories import JOB_ID, task_doc
from tests.inprocess import InProcessManager

FAILED = {"task_status": "failed", "activity": "blender_render failed: exit code 1",
          "log": "2018-01-10T09:16:41.220311+00:00: blender_render: Error: exit code 1"}


class FailureFarm:
    def __init__(self, testcase, **config):
        config.setdefault("task_logs_path", testcase.mktemp())
        self.m = InProcessManager(testcase, **config)

    async def start(self, *docs):
        await self.m.start()
        await self.m.store.store_server_tasks(list(docs), self.m.manager.updates.now())
        return self

    async def worker(self, nickname, types=("render",)):
        return await self.m.register(generation="2.x", types=types, nickname=nickname)

    async def take(self, auth):
        response = await self.m.request("POST", "/task", auth=auth)
        self.m.testcase.assertIn(response.code, (200, 204), response.body)
        return response.json["_id"] if response.code == 200 else None

    async def fail(self, auth, task_id):
        response = await self.m.request("POST", f"/tasks/{task_id}/update", auth=auth,
                                        json_body=FAILED)
        self.m.testcase.assertEqual(response.code, 204, response.body)

    async def status(self, task_id):
        return (await self.m.store.get_task(task_id)).status

    async def last_update(self, task_id):
        updates = await self.m.store.queued_updates(1000)
        return [u for u in updates if u.task_id == task_id and u.task_status][-1]


def render_task(**fields):
    return task_doc(job_type="blender-render", task_type="render", **fields)


class SoftFailTests(TestCase):
    async def test_a_failed_task_is_retried_by_another_worker(self):
        task = render_task()
        farm = await FailureFarm(self).start(task)
        a, b = await farm.worker("a"), await farm.worker("b")
        self.assertEqual(await farm.take(a), task["_id"])
        await farm.fail(a, task["_id"])
        self.assertEqual(await farm.status(task["_id"]), statuses.SOFT_FAILED)
        sent = await farm.last_update(task["_id"])
        self.assertEqual(sent.task_status, statuses.SOFT_FAILED)
        self.assertEqual(sent.failed_by_workers, [{"id": a[0], "identifier": "127.0.0.1 (a)"}])
        self.assertEqual(sent.to_upstream()["failed_by_workers"], sent.failed_by_workers)
        # The worker that failed it never gets it again; the other one does.
        self.assertIsNone(await farm.take(a))
        self.assertEqual(await farm.take(b), task["_id"])
        response = await farm.m.request("POST", f"/tasks/{task['_id']}/update", auth=b,
                                        json_body={"task_status": "completed"})
        self.assertEqual(response.code, 204)
        self.assertEqual(await farm.status(task["_id"]), statuses.COMPLETED)

    async def test_failed_for_good_after_enough_workers_failed_it(self):
        task = render_task()
        farm = await FailureFarm(self, task_fail_after_softfail_count=2).start(task)
        a, b, c = await farm.worker("a"), await farm.worker("b"), await farm.worker("c")
        await farm.take(a)
        await farm.fail(a, task["_id"])
        self.assertEqual(await farm.take(b), task["_id"])
        await farm.fail(b, task["_id"])
        self.assertEqual(await farm.status(task["_id"]), statuses.FAILED)
        sent = await farm.last_update(task["_id"])
        self.assertEqual([ref["id"] for ref in sent.failed_by_workers], [a[0], b[0]])
        self.assertIsNone(await farm.take(c))

    async def test_failed_when_no_other_worker_can_run_it(self):
        task = render_task()
        farm = await FailureFarm(self).start(task)
        a = await farm.worker("a")
        await farm.worker("sleeper", types=("sleep",))
        await farm.take(a)
        await farm.fail(a, task["_id"])
        self.assertEqual(await farm.status(task["_id"]), statuses.FAILED)

    async def test_soft_fail_off_for_a_2017_server(self):
        task = render_task()
        farm = await FailureFarm(self, server_generation="2017").start(task)
        a = await farm.worker("a")
        await farm.worker("b")
        await farm.take(a)
        await farm.fail(a, task["_id"])
        self.assertEqual(await farm.status(task["_id"]), statuses.FAILED)

    async def test_a_failure_of_a_task_no_longer_active_changes_nothing(self):
        task = render_task()
        farm = await FailureFarm(self).start(task)
        a = await farm.worker("a")
        await farm.worker("b")
        await farm.take(a)
        await farm.m.store.set_task_status(task["_id"], statuses.CANCEL_REQUESTED)
        await farm.fail(a, task["_id"])  # accepted after cancel-requested, not soft-failed
        self.assertEqual(await farm.status(task["_id"]), statuses.FAILED)
        self.assertEqual(await farm.m.store.farm.failers(task["_id"]), [])


class BlocklistTests(TestCase):
    async def broken_worker_fails_three(self, farm, a):
        for _ in range(3):
            task_id = await farm.take(a)
            await farm.fail(a, task_id)

    async def test_three_failures_in_a_job_blocklist_the_worker_for_it(self):
        tasks = [render_task(priority=90 - n) for n in range(5)]
        elsewhere = render_task(job=new_object_id(), priority=1)
        farm = await FailureFarm(self).start(*tasks, elsewhere)
        a, b = await farm.worker("a"), await farm.worker("b")
        await self.broken_worker_fails_three(farm, a)
        entries = await farm.m.manager.failures.blocklist()
        self.assertEqual([(e.worker_id, e.job_id, e.task_type, e.reason) for e in entries],
                         [(a[0], JOB_ID, "render", FAILED["activity"])])
        self.assertEqual(entries[0].expires - entries[0].created, timedelta(days=7))
        # Only the other job's task is left for the broken worker.
        self.assertEqual(await farm.take(a), elsewhere["_id"])
        # The other worker finishes the job, including what the broken one soft-failed.
        done = []
        while (task_id := await farm.take(b)) is not None:
            done.append(task_id)
            response = await farm.m.request("POST", f"/tasks/{task_id}/update", auth=b,
                                            json_body={"task_status": "completed"})
            self.assertEqual(response.code, 204)
        self.assertEqual(sorted(done), sorted(t["_id"] for t in tasks))

        listing = await farm.m.request("GET", "/blocklist")
        self.assertEqual(listing.code, 200)
        self.assertEqual(listing.json["blocklist"][0]["reason"], FAILED["activity"])
        forget = await farm.m.request(
            "POST", f"/worker-action/{a[0]}?action=forget-blacklist-line&job_id={JOB_ID}"
            "&task_type=render")
        self.assertEqual(forget.code, 204)
        self.assertEqual((await farm.m.request("GET", "/blocklist")).json, {"blocklist": []})
        again = await farm.m.request(
            "POST", f"/worker-action/{a[0]}?action=forget-blacklist-line&job_id={JOB_ID}"
            "&task_type=render")
        self.assertEqual(again.code, 404)
        bad = await farm.m.request(
            "POST", f"/worker-action/{a[0]}?action=forget-blacklist-line&job_id=nope")
        self.assertEqual(bad.code, 400)

    async def test_blacklisted_worker_with_nobody_left_hard_fails_its_soft_failed_tasks(self):
        first, second = render_task(priority=90), render_task(priority=80)
        farm = await FailureFarm(self, blocklist_threshold=2).start(first, second)
        a, b = await farm.worker("a"), await farm.worker("b")
        await farm.fail(a, await farm.take(a))
        self.assertEqual(await farm.status(first["_id"]), statuses.SOFT_FAILED)  # b is left
        forget = await farm.m.request("POST", f"/worker-action/{b[0]}?action=forget-worker")
        self.assertEqual(forget.code, 204)
        self.assertIsNone(await farm.m.store.get_worker(b[0]))
        # a's second failure blocklists it, and nobody else may run the job's render tasks.
        self.assertEqual(await farm.take(a), second["_id"])
        await farm.fail(a, second["_id"])
        self.assertEqual([await farm.status(t["_id"]) for t in (first, second)],
                         [statuses.FAILED] * 2)
        note = await farm.last_update(first["_id"])
        self.assertEqual(note.activity, "Manager hard-failed task after blacklisting worker"
                                        " 127.0.0.1 (a)")
        self.assertEqual(note.worker, "127.0.0.1 (a)")
        self.assertIsNone(await farm.take(a))


class QuarantineTests(TestCase):
    async def test_failing_tasks_of_three_jobs_within_the_window_quarantines(self):
        jobs = [new_object_id() for _ in range(4)]
        tasks = [render_task(job=job, priority=90 - n) for n, job in enumerate(jobs)]
        farm = await FailureFarm(self, sick_worker_jobs=3, sick_worker_window=3600).start(
            *tasks)
        sick, _ = await farm.worker("sick"), await farm.worker("healthy")
        for task in tasks[:2]:
            await farm.fail(sick, await farm.take(sick))
            farm.m.clock.advance(1200)
        self.assertEqual((await farm.m.request("GET", "/quarantine")).json, {"quarantine": []})
        farm.m.clock.advance(1300)  # the first failure is now out of the window
        await farm.fail(sick, await farm.take(sick))
        self.assertEqual((await farm.m.request("GET", "/quarantine")).json, {"quarantine": []})
        await farm.fail(sick, await farm.take(sick))  # jobs 2, 3, 4 within the hour
        listing = (await farm.m.request("GET", "/quarantine")).json["quarantine"]
        self.assertEqual([(q["worker_id"], q["reason"]) for q in listing],
                         [(sick[0], "failed tasks of 3 different jobs within 60 minutes")])
        record = await farm.m.store.get_worker(sick[0])
        self.assertEqual((record.status_requested, record.lazy_status_request),
                         (statuses.W_ASLEEP, False))
        self.assertEqual((await farm.m.request("POST", "/task", auth=sick)).code, 423)
        # The operator wakes it: no longer quarantined, and old failures do not count again.
        wake = await farm.m.request(
            "POST", f"/worker-action/{sick[0]}?action=set-status&status=awake")
        self.assertEqual(wake.code, 204)
        self.assertEqual((await farm.m.request("GET", "/quarantine")).json, {"quarantine": []})
        await farm.m.request("POST", "/ack-status-change/awake", auth=sick)
        farm.m.clock.advance(60)
        other = render_task(job=new_object_id())
        await farm.m.store.store_server_tasks([other], farm.m.manager.updates.now())
        await farm.fail(sick, await farm.take(sick))
        self.assertEqual((await farm.m.request("GET", "/quarantine")).json, {"quarantine": []})

    async def test_zero_jobs_turns_quarantine_off(self):
        tasks = [render_task(job=new_object_id()) for _ in range(3)]
        farm = await FailureFarm(self, sick_worker_jobs=0).start(*tasks)
        sick, _ = await farm.worker("sick"), await farm.worker("healthy")
        for _ in tasks:
            await farm.fail(sick, await farm.take(sick))
        self.assertEqual((await farm.m.store.get_worker(sick[0])).status_requested, "")

    async def test_a_quarantined_2_0_worker_idles_until_woken(self):
        tasks = [render_task(job=new_object_id(), priority=90 - n) for n in range(4)]
        farm = await FailureFarm(self, sick_worker_jobs=2).start(*tasks)
        sick = await farm.m.register(generation="2.0", types=("render",), nickname="old")
        await farm.worker("healthy")
        for _ in range(2):
            await farm.fail(sick, await farm.take(sick))
        self.assertEqual((await farm.m.request("POST", "/task", auth=sick)).code, 423)
        wake = await farm.m.request(
            "POST", f"/worker-action/{sick[0]}?action=set-status&status=awake")
        self.assertEqual(wake.code, 204)
        self.assertEqual((await farm.m.store.get_worker(sick[0])).status_requested, "")
        self.assertIsNotNone(await farm.take(sick))
