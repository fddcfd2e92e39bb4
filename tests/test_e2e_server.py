"""End to end with the Server: simulated Server (in this process) + the real Manager (twistd
child process) + simulated Workers, all over loopback HTTP.

Waiting is event-driven where this process can see the events (`SimulatedServer.wait_for` is
checked after every request the Server handles, with a deadline); the Manager's own timers run
on real time, so its intervals are configured short.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import treq
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from flamenco.testing import serve_for_test
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET
from flamenco.testing.worker import GENERATION_2_0, GENERATION_2_X, SimulatedWorker
from tests.manager_process import ManagerProcess, stop_at_cleanup

FAST_LINK = {
    "download_task_sleep_seconds": 2,
    "download_task_recheck_throttle_seconds": 0.5,
    "task_update_push_max_interval_seconds": 0.5,
    "task_update_push_max_count": 20,
    "cancel_task_fetch_max_interval_seconds": 0.5,
    "task_update_push_backoff_max_seconds": 1,
    "task_timeout_grace_seconds": 600,
    # A restarted Manager has a new lease-holder ID, so after a kill -9 it waits for the dead
    # process's push/download leases to expire: keep that short here.
    "upstream_lease_seconds": 3,
    # No task log files here, so pushes carry the full `log`, which these tests check at the
    # Server (with log files, a 2021 Server gets only `log_tail`: tests/test_e2e_farm.py).
    "task_logs_path": "",
}


def commands(name):
    return [{"name": "echo", "settings": {"message": f"{name} says hello"}},
            {"name": "sleep", "settings": {"time_in_seconds": 1}}]


def diamond():
    """prepare -> (render-a, render-b) -> merge."""
    return [{"name": "prepare", "task_type": "sleep", "commands": commands("prepare")},
            {"name": "render-a", "task_type": "sleep", "parents": [0],
             "commands": commands("render-a")},
            {"name": "render-b", "task_type": "sleep", "parents": [0],
             "commands": commands("render-b")},
            {"name": "merge", "task_type": "sleep", "parents": [1, 2],
             "commands": commands("merge")}]


def statuses_are(ids, wanted):
    return lambda server: all(server.task_status(t) == wanted for t in ids)


class ServerFarm(unittest.TestCase):
    """A simulated Server, the Manager process and simulated Workers; no tests of its own."""

    timeout = 90

    async def setup_farm(self, tasks, manager_options=None, **server_options):
        self.server = serve_for_test(self, **server_options)
        self.job, self.ids = self.server.create_job(tasks)
        workdir = self.mktemp()
        os.makedirs(workdir)
        config = dict(FAST_LINK, flamenco=self.server.url, manager_id=DEFAULT_MANAGER_ID,
                      manager_secret=DEFAULT_MANAGER_SECRET, own_url="http://127.0.0.1:1/",
                      **(manager_options or {}))
        self.manager = ManagerProcess(config, workdir)
        stop_at_cleanup(self, self.manager)
        await self.manager.start()
        # The first download claims every task of the job.
        await self.server.wait_for(statuses_are(self.ids, "claimed-by-manager"), 20)

    def start_workers(self, *generations, work_seconds=0.05, may_i_run_interval=5.0,
                      max_tasks=None, offline_queue=False):
        self.workers, self.loops = [], []
        for number, generation in enumerate(generations):
            worker = SimulatedWorker(self.manager.url, generation=generation,
                                     nickname=f"w{number}", types=("sleep",),
                                     work_seconds=work_seconds,
                                     may_i_run_interval=may_i_run_interval,
                                     offline_queue=offline_queue, update_retry_seconds=0.2)
            self.workers.append(worker)
            self.loops.append(defer.ensureDeferred(
                worker.loop(after_task=0.05, after_nothing=0.2, after_error=0.2,
                            max_tasks=max_tasks)))
        self.addCleanup(self.stop_workers)

    async def stop_workers(self):
        for worker in self.workers:
            worker.stop()
        await defer.gatherResults(self.loops, consumeErrors=True)
        for worker in self.workers:
            await worker.close()
        self.workers, self.loops = [], []

    def assert_complete_logs(self, task_ids):
        """Every worker log line and the Manager's assignment note reached the Server."""
        for task_id in task_ids:
            text = "\n".join(self.server.logs_of(task_id))
            for command in ("echo", "sleep"):
                self.assertIn(f"{command}: Starting", text)
                self.assertIn(f"{command}: Finished", text)
            self.assertIn("Manager assigned task", text)
            self.assertEqual(self.server.tasks[task_id].doc["activity"], "Task completed")


class ServerEndToEndTest(ServerFarm):
    async def test_diamond_job_completes_in_order(self):
        await self.setup_farm(diamond())
        self.start_workers(GENERATION_2_X, GENERATION_2_X, GENERATION_2_0)
        await self.server.wait_for(statuses_are(self.ids, "completed"), 60)
        self.assertEqual(self.server.jobs[self.job].status, "completed")
        history = self.server.status_history
        first_active = {t: min(when for tid, s, when in history if tid == t and s == "active")
                        for t in self.ids}
        completed = {t: max(when for tid, s, when in history if tid == t and s == "completed")
                     for t in self.ids}
        prepare, render_a, render_b, merge = self.ids
        for child, parents in ((render_a, [prepare]), (render_b, [prepare]),
                               (merge, [render_a, render_b])):
            for parent in parents:
                self.assertGreater(first_active[child], completed[parent])
        self.assert_complete_logs(self.ids)

    async def test_cancel_at_the_server_stops_active_tasks(self):
        await self.setup_farm([{"name": f"long-{i}", "task_type": "sleep"} for i in range(3)])
        # Long commands, may-i-run every 0.2 s; two workers, so one task stays queued locally.
        self.start_workers(GENERATION_2_0, GENERATION_2_X, work_seconds=60,
                           may_i_run_interval=0.2)
        await self.server.wait_for(
            lambda s: sum(s.task_status(t) == "active" for t in self.ids) == 2, 30)
        self.server.cancel_job(self.job)
        await self.server.wait_for(statuses_are(self.ids, "canceled"), 30)
        self.assertEqual(self.server.jobs[self.job].status, "canceled")
        # Two tasks went active and then canceled (the 2.0 worker reported `canceled` itself,
        # the 2.x worker returned its task and the Manager canceled it on the next listing);
        # the one never started was canceled by the Manager directly.
        changes = sorted((s, t) for t, s, _ in self.server.status_history)
        self.assertEqual([s for s, _ in changes], ["active"] * 2 + ["canceled"] * 3)
        logs = "\n".join(log for t in self.ids for log in self.server.logs_of(t))
        self.assertIn("stopped running this task, no longer allowed to run by Manager", logs)
        self.assertIn("Manager cancelled task by request of Flamenco Server", logs)

    async def test_server_down_for_a_while_loses_nothing(self):
        await self.setup_farm([{"name": f"t{i}", "task_type": "sleep",
                                "commands": commands(f"t{i}")} for i in range(4)])
        self.server.down_status = 503
        self.start_workers(GENERATION_2_X, GENERATION_2_0)
        # The workers finish every task while the Server is down (refetch: handed out as
        # cached); the Manager keeps every update queued and backs off.
        await self.wait_for_manager_queue(lambda size: size >= 4 * 6)
        failures = len([r for r, _ in self.server.requests if r == "push"])
        self.assertGreater(failures, 0)
        self.server.down_status = None
        await self.server.wait_for(statuses_are(self.ids, "completed"), 30)
        await self.server.wait_for(lambda s: all(len(s.logs_of(t)) == 5 for t in self.ids), 30)
        self.assert_complete_logs(self.ids)

    async def test_killed_manager_delivers_every_accepted_update_after_restart(self):
        await self.setup_farm([{"name": f"t{i}", "task_type": "sleep",
                                "commands": commands(f"t{i}")} for i in range(2)])
        self.server.down_status = 503  # nothing leaves the Manager before the kill
        self.start_workers(GENERATION_2_X, max_tasks=2)
        await defer.gatherResults(self.loops)  # both tasks done, every update answered 204
        await self.stop_workers()
        self.assertGreaterEqual((await self.wait_for_manager_queue(lambda size: size > 0))
                                ["upstream_queue_size"], 2 * 8)
        await self.manager.kill()
        self.assertEqual(self.manager.process.returncode, -signal.SIGKILL)
        self.server.down_status = None
        await self.manager.start()
        await self.server.wait_for(statuses_are(self.ids, "completed"), 30)
        await self.server.wait_for(lambda s: all(len(s.logs_of(t)) == 5 for t in self.ids), 30)
        self.assert_complete_logs(self.ids)

    async def test_manager_killed_again_and_again_makes_no_worker_re_run_a_task(self):
        # Workers with the real Workers' offline update queue keep running while the Manager
        # is down; after each restart they deliver what they queued and ask for more work.
        # Killing at arbitrary moments must not make any Worker run a task twice.
        # A Worker whose /task answer a kill swallowed never reports on its task: the task
        # timeout (short here) re-queues such a task for another Worker.
        timeouts = {"task_timeout_grace_seconds": 5, "active_task_timeout_interval_seconds": 5,
                    "task_timeout_check_interval_seconds": 0.5}
        await self.setup_farm([{"name": f"t{i}", "task_type": "sleep",
                                "commands": commands(f"t{i}")} for i in range(8)], timeouts)
        self.start_workers(GENERATION_2_X, GENERATION_2_X, GENERATION_2_0, work_seconds=0.3,
                           may_i_run_interval=0.2, offline_queue=True)
        for pause in (0.7, 1.3, 0.9, 1.6):
            await task.deferLater(reactor, pause, lambda: None)  # real time: the Workers run
            await self.manager.kill()
            await task.deferLater(reactor, 0.5, lambda: None)
            await self.manager.start()
        await self.server.wait_for(statuses_are(self.ids, "completed"), 60)
        runs = sum((worker.runs for worker in self.workers), start=Counter())
        self.assertEqual(runs, Counter({task_id: 1 for task_id in self.ids}))
        # Four Worker lines and at least one assignment note each (a re-queued task has more).
        await self.server.wait_for(lambda s: all(len(s.logs_of(t)) >= 5 for t in self.ids), 30)
        self.assert_complete_logs(self.ids)
        for task_id in self.ids:
            text = "\n".join(self.server.logs_of(task_id))
            for line in ("echo: Starting", "echo: Finished", "sleep: Starting", "sleep: Finished"):
                self.assertEqual(text.count(line), 1, f"{line!r} in the log of {task_id}")

    async def wait_for_manager_queue(self, condition, timeout=30.0):
        """Poll the Manager's status report (another process: nothing to subscribe to)."""
        deadline = reactor.seconds() + timeout
        while True:
            response = await treq.get(self.manager.url, persistent=False)
            report = await response.json()
            if condition(report.get("upstream_queue_size", 0)):
                return report
            if reactor.seconds() > deadline:
                raise AssertionError(f"Manager queue never matched; last report {report}")
            await task.deferLater(reactor, 0.1, lambda: None)
