"""End to end, farm operations: the real `twistd flamenco-manager`, the simulated Server and
simulated 2.x Workers over loopback (PROTOCOL §5.9, §5.10.2, §6.7).

Real time: intervals are configured short, and waiting is polling with a deadline.
"""

from __future__ import annotations

import os

import treq
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from flamenco.testing import serve_for_test
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET
from flamenco.testing.worker import GENERATION_2_X, SimulatedWorker
from tests.factories import task_doc
from tests.manager_process import ManagerProcess, stop_at_cleanup
from tests.test_e2e_manager import eventually, load_tasks
from tests.test_e2e_server import FAST_LINK, statuses_are


class FarmEndToEndTest(unittest.TestCase):
    timeout = 90

    async def start_farm(self, tasks, jobs=1, **config):
        self.server = serve_for_test(self)
        self.jobs = [self.server.create_job(tasks) for _ in range(jobs)]
        self.job, self.ids = self.jobs[0]
        self.all_ids = [task_id for _, ids in self.jobs for task_id in ids]
        workdir = self.mktemp()
        os.makedirs(workdir)
        config = dict(FAST_LINK, flamenco=self.server.url, manager_id=DEFAULT_MANAGER_ID,
                      manager_secret=DEFAULT_MANAGER_SECRET, own_url="http://127.0.0.1:1/",
                      task_logs_path="task-logs", **config)
        self.manager = ManagerProcess(config, workdir)
        stop_at_cleanup(self, self.manager)
        await self.manager.start()
        await self.server.wait_for(statuses_are(self.all_ids, "claimed-by-manager"), 20)
        self.loops = []

    def worker(self, nickname, **kwargs) -> SimulatedWorker:
        worker = SimulatedWorker(self.manager.url, generation=GENERATION_2_X, nickname=nickname,
                                 types=("sleep",), **kwargs)
        self.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        return worker

    def start_loop(self, worker, **loop_options):
        loop_options.setdefault("after_task", 0.1)
        loop_options.setdefault("after_nothing", 0.2)
        loop = defer.ensureDeferred(worker.loop(**loop_options))
        self.loops.append((worker, loop))

        async def stop():
            worker.stop()
            await loop

        self.addCleanup(lambda: defer.ensureDeferred(stop()))
        return loop

    async def operator_get(self, path):
        response = await treq.get(self.manager.url + path.lstrip("/"), persistent=False)
        return response.code, await response.json()


class FailureTests(FarmEndToEndTest):
    async def test_a_broken_worker_is_blocklisted_and_the_job_finishes_elsewhere(self):
        await self.start_farm([{"name": f"t{i}", "task_type": "sleep"} for i in range(5)])
        broken = self.worker("broken", fails=lambda doc: True, work_seconds=0.01)
        good = self.worker("good", work_seconds=0.3)
        await good.register()  # known, so the broken worker's failures are soft
        self.start_loop(broken)
        await self.server.wait_for(
            lambda s: sum(s.task_status(t) == "soft-failed" for t in self.ids) == 3, 30)
        self.start_loop(good)
        await self.server.wait_for(statuses_are(self.ids, "completed"), 45)
        self.assertEqual(self.server.jobs[self.job].status, "completed")
        # Three tasks were failed by the broken worker first and completed by the good one.
        soft_failed = {t for t, status, _ in self.server.status_history if status == "soft-failed"}
        self.assertEqual(len(soft_failed), 3)
        for task_id in soft_failed:
            refs = self.server.tasks[task_id].doc["failed_by_workers"]
            self.assertEqual([ref["id"] for ref in refs], [broken.worker_id])
            self.assertEqual(self.server.tasks[task_id].doc["worker"], "127.0.0.1 (good)")
        code, listing = await self.operator_get("/blocklist")
        self.assertEqual(code, 200)
        self.assertEqual([(e["worker_id"], e["job_id"], e["task_type"])
                          for e in listing["blocklist"]],
                         [(broken.worker_id, self.job, "sleep")])
        self.assertIn("simulated error", listing["blocklist"][0]["reason"])


class QuarantineTests(FarmEndToEndTest):
    async def test_a_worker_failing_in_three_jobs_sleeps_until_woken(self):
        await self.start_farm([{"name": "t", "task_type": "sleep"}], jobs=3)
        sick = self.worker("sick", fails=lambda doc: True)
        good = self.worker("good", work_seconds=0.1)
        await good.register()
        self.start_loop(sick, asleep_poll=0.2)
        await self.server.wait_for(
            lambda s: all(s.task_status(t) == "soft-failed" for t in self.all_ids), 30)
        await eventually(lambda: defer.succeed(sick.status == "asleep"), timeout=10)
        code, listing = await self.operator_get("/quarantine")
        self.assertEqual([q["worker_id"] for q in listing["quarantine"]], [sick.worker_id])
        self.assertIn("3 different jobs", listing["quarantine"][0]["reason"])
        self.start_loop(good)
        await self.server.wait_for(statuses_are(self.all_ids, "completed"), 30)
        self.assertEqual(sick.status, "asleep")
        response = await treq.post(
            f"{self.manager.url}worker-action/{sick.worker_id}",
            data={"action": "set-status", "status": "awake"}, persistent=False)
        await response.content()
        self.assertEqual(response.code, 204)
        await eventually(lambda: defer.succeed(sick.status == "awake"), timeout=10)
        self.assertEqual((await self.operator_get("/quarantine"))[1], {"quarantine": []})


class WorkerTimeoutTests(FarmEndToEndTest):
    async def test_a_silently_killed_workers_task_is_requeued_and_done_elsewhere(self):
        await self.start_farm([{"name": "t0", "task_type": "sleep"}],
                              active_worker_timeout_interval_seconds=1.5,
                              active_task_timeout_interval_seconds=60,
                              task_timeout_check_interval_seconds=0.5,
                              task_timeout_grace_seconds=0)
        doomed = self.worker("doomed")
        await doomed.register()
        doc = await doomed.ask_for_task()
        self.assertEqual(doc["_id"], self.ids[0])
        self.assertEqual(await doomed.send_update(doc["_id"], task_status="active"), 204)
        # ... and then it is gone without a word (power cut).
        rescuer = self.worker("rescuer", work_seconds=0.1)
        self.start_loop(rescuer)
        await self.server.wait_for(statuses_are(self.ids, "completed"), 30)
        history = [status for t, status, _ in self.server.status_history]
        self.assertEqual(history, ["active", "claimed-by-manager", "active", "completed"])
        self.assertNotIn("failed", history)


class LogFileTests(unittest.TestCase):
    timeout = 90

    async def test_log_holds_every_accepted_line_once_after_a_kill_mid_job(self):
        workdir = self.mktemp()
        os.makedirs(workdir)
        manager = ManagerProcess({"task_timeout_grace_seconds": 600}, workdir)
        doc = task_doc(job_type="sleep")
        await load_tasks(manager.sqlite_path, [doc])
        stop_at_cleanup(self, manager)
        await manager.start()
        worker = SimulatedWorker(manager.url, generation=GENERATION_2_X, types=("sleep",))
        self.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        await worker.register()
        self.assertEqual((await worker.ask_for_task())["_id"], doc["_id"])

        async def deliver(number):
            """Like the real workers: the same update again until it gets a 2xx."""
            while True:
                try:
                    if await worker.send_update(doc["_id"], log=f"line {number:03d}") == 204:
                        return
                except Exception:  # noqa: BLE001 - connection refused / timeout
                    pass
                await task.deferLater(reactor, 0.05, lambda: None)

        for number in range(60):
            sending = defer.ensureDeferred(deliver(number))
            if number in (20, 40):
                # Killed while this update is in flight: maybe accepted, maybe not.
                await manager.kill()
                await manager.start()
            await sending
        path = os.path.join(workdir, "task-logs", f"job-{doc['job'][:4]}", doc["job"],
                            f"task-{doc['_id']}.txt")

        async def complete():
            with open(path, encoding="utf-8") as stream:
                return [line for line in stream.read().splitlines()
                        if line.startswith("line ")]

        lines = await eventually(complete, timeout=5)
        self.assertEqual(lines, [f"line {n:03d}" for n in range(60)])


class HousekeepingTests(unittest.TestCase):
    """In-process Manager on a `task.Clock` (14 days pass in a moment), simulated 2.x Workers
    over loopback HTTP."""

    async def test_housekeeping_removes_old_tasks_and_their_logs_and_nothing_else(self):
        from tests.inprocess import InProcessManager

        m = InProcessManager(self, task_logs_path=os.path.abspath(self.mktemp()),
                             task_cleanup_max_age=14 * 86400,
                             active_worker_timeout_interval_seconds=0,
                             active_task_timeout_interval_seconds=30 * 86400)
        await m.start()
        done = [task_doc(priority=90), task_doc(priority=80)]
        running, waiting = task_doc(priority=70), task_doc(priority=10)
        await m.store.store_server_tasks([*done, running, waiting], m.manager.updates.now())
        worker = SimulatedWorker(m.url, generation=GENERATION_2_X, types=("sleep",))
        self.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        await worker.register()
        for doc in done:
            outcome = await worker.run_task(await worker.ask_for_task())
            self.assertEqual((outcome.task_id, outcome.result), (doc["_id"], "completed"))
        busy = await worker.ask_for_task()  # still running 15 days later
        self.assertEqual(busy["_id"], running["_id"])
        # The Server acknowledged everything but the last update of `waiting`.
        await m.manager.updates.queue(waiting["_id"], activity="not pushed yet")
        queued = await m.store.queued_updates(1000)
        await m.store.ack_updates([u.id for u in queued if u.task_id != waiting["_id"]])
        logs = m.manager.task_logs
        paths = {doc["_id"]: logs.path(doc["job"], doc["_id"]) for doc in done + [running]}
        self.assertTrue(all(os.path.exists(path) for path in paths.values()))

        m.manager.services.startService()
        self.addCleanup(m.manager.services.stopService)
        for _ in range(15):
            m.clock.advance(86400)
            self.assertEqual(await worker.send_update(running["_id"], activity="rendering"),
                             204)
        for doc in done:
            self.assertIsNone(await m.store.get_task(doc["_id"]))
            self.assertFalse(os.path.exists(paths[doc["_id"]]))
        self.assertEqual((await m.store.get_task(running["_id"])).status, "active")
        self.assertTrue(os.path.exists(paths[running["_id"]]))
        self.assertIsNotNone(await m.store.get_task(waiting["_id"]))
        self.assertEqual(await m.store.count_tasks(), 2)
