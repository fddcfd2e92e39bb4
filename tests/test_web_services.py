"""The services the web layer calls (`web.resource_tree.WebServices`), called without HTTP:
the rules that used to live in the request handlers."""

from datetime import timedelta

from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.documents import (
    GENERATION_2_0, GENERATION_2_X, WorkerRegistration, WorkerTaskUpdate,
)
from flamenco.errors import BadRequest, TaskConflict, UnknownWorker
from flamenco.readiness import Readiness
from flamenco.test_tasks import is_local_task
from flamenco.worker_actions import WorkerAction
from flamenco.worker_requests import WHILE_STORE_UNAVAILABLE, Contact, RunPermission
from tests.factories import T0, task_doc
from tests.inprocess import InProcessManager

AGENT_2X = "Flamenco-Worker/2.5"
AGENT_2_0 = "python-requests/2.18"


class Farm:
    """A Manager on a real SQLite file (its HTTP port unused) and its web services."""

    def __init__(self, testcase, **config):
        self.m = InProcessManager(testcase, **config)

    async def start(self, *docs):
        await self.m.start()
        self.manager = self.m.manager
        self.web = self.manager.web
        self.store = self.m.store
        if docs:
            await self.store.store_server_tasks(list(docs), self.manager.updates.now())
        return self

    async def worker(self, *, generation=GENERATION_2_0, types=("sleep",), status=""):
        agent = AGENT_2X if generation == GENERATION_2_X else AGENT_2_0
        worker = await self.web.workers.register(
            WorkerRegistration("secret", "linux", "render-01", tuple(types), generation),
            "10.0.0.21", agent, None)
        if status:
            await self.store.update_worker(worker.id, status=status)
        return await self.store.get_worker(worker.id), Contact("10.0.0.21", agent)

    def later(self, seconds: float) -> None:
        self.m.clock.advance(seconds)


class WorkerRequestsTests(TestCase):
    async def test_asking_for_a_task_wakes_the_worker(self):
        farm = await Farm(self).start(task_doc())
        worker, contact = await farm.worker(status=statuses.W_ASLEEP)
        doc = await farm.web.worker_requests.next_task(worker, contact)
        self.assertIsNotNone(doc)
        self.assertEqual((await farm.store.get_worker(worker.id)).status, statuses.W_AWAKE)

    async def test_a_refused_update_records_no_sign_of_life(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        worker, contact = await farm.worker(status=statuses.W_AWAKE)
        other, _ = await farm.worker()
        await farm.web.worker_requests.next_task(other, contact)  # the task is other's now
        before = (await farm.store.get_worker(worker.id)).last_activity
        farm.later(60)
        with self.assertRaises(TaskConflict):
            await farm.web.worker_requests.update_task(worker, contact, doc["_id"],
                                                       WorkerTaskUpdate(activity="mine"))
        self.assertEqual((await farm.store.get_worker(worker.id)).last_activity, before)

    async def test_an_accepted_update_records_the_sign_of_life(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        worker, contact = await farm.worker(status=statuses.W_AWAKE)
        await farm.web.worker_requests.next_task(worker, contact)
        farm.later(60)
        await farm.web.worker_requests.update_task(worker, contact, doc["_id"],
                                                   WorkerTaskUpdate(activity="rendering"))
        seen = (await farm.store.get_worker(worker.id)).last_activity
        self.assertEqual(seen, T0 + timedelta(seconds=60))

    async def test_the_status_request_rides_along_in_may_i_run_for_2x_workers_only(self):
        doc = task_doc()
        farm = await Farm(self).start(doc)
        for generation, expected in ((GENERATION_2_X, statuses.W_ASLEEP), (GENERATION_2_0, "")):
            worker, contact = await farm.worker(generation=generation)
            await farm.store.update_worker(worker.id, status_requested=statuses.W_ASLEEP,
                                           lazy_status_request=True)
            worker = await farm.store.get_worker(worker.id)
            answer = await farm.web.worker_requests.may_i_run(worker, contact, doc["_id"])
            self.assertEqual(answer.status_requested, expected, generation)
            self.assertEqual("status_requested" in answer.to_json(), bool(expected))

    async def test_may_i_run_gives_the_reason_only_when_it_says_no(self):
        self.assertEqual(RunPermission(True).to_json(), {"may_keep_running": True})
        self.assertEqual(RunPermission(False, "task gone").to_json(),
                         {"may_keep_running": False, "reason": "task gone"})
        self.assertEqual(WHILE_STORE_UNAVAILABLE.to_json(), {"may_keep_running": True})

    async def test_the_requested_status_is_answered_with_a_sign_of_life(self):
        farm = await Farm(self).start()
        worker, contact = await farm.worker(generation=GENERATION_2_X)
        await farm.web.workers.request_status(worker.id, statuses.W_ASLEEP, False)
        farm.later(60)
        worker = await farm.store.get_worker(worker.id)  # as authenticated
        requested = await farm.web.worker_requests.requested_status(worker, contact)
        self.assertEqual(requested, statuses.W_ASLEEP)
        self.assertEqual((await farm.store.get_worker(worker.id)).last_activity,
                         T0 + timedelta(seconds=60))

    async def test_output_produced_is_made_into_a_preview_in_the_background(self):
        farm = await Farm(self).start()
        worker, _ = await farm.worker(generation=GENERATION_2_X)
        farm.web.worker_requests.output_produced(worker, [self.mktemp() + ".png"])
        await farm.web.operator.previews.when_idle()
        self.assertEqual(farm.web.operator.previews.latest(), [])  # unreadable: skipped


class WorkerActionTests(TestCase):
    async def test_set_status_and_shutdown_request_a_status(self):
        farm = await Farm(self).start()
        worker, _ = await farm.worker(generation=GENERATION_2_X)
        actions = farm.web.worker_actions
        await actions.perform(worker.id, WorkerAction("set-status", status="asleep", lazy=True))
        found = await farm.store.get_worker(worker.id)
        self.assertEqual((found.status_requested, found.lazy_status_request), ("asleep", True))
        await actions.perform(worker.id, WorkerAction("shutdown"))
        found = await farm.store.get_worker(worker.id)
        self.assertEqual((found.status_requested, found.lazy_status_request), ("shutdown", False))

    async def test_send_test_job_returns_the_test_task(self):
        farm = await Farm(self).start()
        worker, _ = await farm.worker(generation=GENERATION_2_X,
                                      types=("sleep", "test-blender-render"),
                                      status=statuses.W_TESTING)
        task_id = await farm.web.worker_actions.perform(worker.id, WorkerAction("send-test-job"))
        self.assertTrue(is_local_task(task_id))

    async def test_forget_worker_forgets_a_working_worker_too(self):
        farm = await Farm(self).start()
        worker, _ = await farm.worker(status=statuses.W_AWAKE)
        self.assertIsNone(await farm.web.worker_actions.perform(worker.id,
                                                                WorkerAction("forget-worker")))
        self.assertIsNone(await farm.store.get_worker(worker.id))

    async def test_an_unknown_action_is_refused_naming_the_known_ones(self):
        farm = await Farm(self).start()
        worker, _ = await farm.worker()
        with self.assertRaises(BadRequest) as raised:
            await farm.web.worker_actions.perform(worker.id, WorkerAction("reboot"))
        self.assertIn("forget-blocklist-line", raised.exception.message)


class SleepScheduleTests(TestCase):
    async def test_a_worker_without_a_schedule_is_unknown_to_the_schedules(self):
        farm = await Farm(self).start()
        worker, _ = await farm.worker(generation=GENERATION_2_X)
        with self.assertRaises(UnknownWorker):
            await farm.web.sleep_schedules.get(worker.id)

    async def test_a_saved_active_schedule_applies_at_the_managers_time(self):
        farm = await Farm(self, sleep_schedule_timezone="UTC").start()
        worker, _ = await farm.worker(generation=GENERATION_2_X, status=statuses.W_AWAKE)
        # The Manager's clock says 09:15 UTC (T0).
        saved = await farm.web.sleep_schedules.save(worker.id, {
            "schedule_active": True, "days_of_week": "", "time_start": "09:00",
            "time_end": "10:00"})
        self.assertEqual(await farm.web.sleep_schedules.get(worker.id), saved)
        self.assertEqual((await farm.store.get_worker(worker.id)).status_requested,
                         statuses.W_ASLEEP)


class StatusAndReadinessTests(TestCase):
    async def test_the_status_report_counts_workers_tasks_and_queued_updates(self):
        farm = await Farm(self).start(task_doc(), task_doc())
        await farm.worker()
        report = await farm.web.operator.farm.status_report()
        self.assertEqual((report["nr_of_workers"], report["nr_of_tasks"]), (1, 2))
        self.assertEqual(report["upstream_queue_size"], await farm.store.count_queued_updates())
        self.assertIn("version", report)

    async def test_ready_while_the_store_answers_and_not_once_it_is_closed(self):
        farm = await Farm(self).start()
        description = farm.store.description
        self.assertEqual(await farm.web.readiness.check(), Readiness(True, description))
        await farm.store.close()
        found = await farm.web.readiness.check()
        self.assertEqual((found.ready, found.store), (False, description))
        self.assertIn("not open", found.reason)


class JobTaskCountTests(TestCase):
    async def test_a_jobs_tasks_are_counted_by_status(self):
        farm = await Farm(self).start()
        jobs = farm.web.jobs
        found = await jobs.submit({"name": "n", "type": "sleep",
                                   "settings": {"n_tasks": 3, "seconds": 1}})
        await farm.store.set_task_status(found.tasks[0].id, statuses.COMPLETED)
        counts = (await jobs.job_with_tasks(found.job.id)).task_counts()
        self.assertEqual(sum(counts.values()), len(found.tasks))
        self.assertEqual(counts[statuses.COMPLETED], 1)
