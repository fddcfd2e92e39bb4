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
from tests.util import async_test


class FarmEndToEndTest(unittest.TestCase):
    timeout = 90

    async def start_farm(self, tasks, **config):
        self.server = serve_for_test(self)
        self.job, self.ids = self.server.create_job(tasks)
        workdir = self.mktemp()
        os.makedirs(workdir)
        config = dict(FAST_LINK, flamenco=self.server.url, manager_id=DEFAULT_MANAGER_ID,
                      manager_secret=DEFAULT_MANAGER_SECRET, own_url="http://127.0.0.1:1/",
                      task_logs_path="task-logs", **config)
        self.manager = ManagerProcess(config, workdir)
        stop_at_cleanup(self, self.manager)
        await self.manager.start()
        await self.server.wait_for(statuses_are(self.ids, "claimed-by-manager"), 20)
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
    @async_test
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


class WorkerTimeoutTests(FarmEndToEndTest):
    @async_test
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

    @async_test
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
