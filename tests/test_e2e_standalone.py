"""End to end, stand-alone: the real `twistd flamenco-manager` with no Server, jobs submitted
with the `flamenco-manager` command line, simulated Workers of both generations over
loopback. Waiting on the processes is polling with a bounded deadline."""

import os
import sys

import yaml
from twisted.internet import defer, reactor, utils
from twisted.trial import unittest

from flamenco.jobs_client import JobClient
from flamenco.testing.worker import GENERATION_2_0, GENERATION_2_X, SimulatedWorker
from tests.manager_process import REPO_ROOT, ManagerProcess, stop_at_cleanup
from tests.test_e2e_manager import eventually

TYPES = ("sleep", "exec", "blender-render", "video-encoding")


class StandaloneEndToEndTests(unittest.TestCase):
    timeout = 90

    async def start_manager(self) -> ManagerProcess:
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        manager = ManagerProcess({"cancel_task_fetch_max_interval_seconds": 0.5}, self.workdir)
        stop_at_cleanup(self, manager)
        await manager.start()
        self.client = JobClient(manager.url, reactor, timeout=5)
        self.addCleanup(lambda: defer.ensureDeferred(self.client.close()))
        return manager

    def workers(self, manager, work_seconds=0.05, **kwargs) -> list[SimulatedWorker]:
        workers = [SimulatedWorker(manager.url, generation=generation, types=TYPES,
                                   nickname=f"sim-{generation}", work_seconds=work_seconds,
                                   may_i_run_interval=0.2, **kwargs)
                   for generation in (GENERATION_2_0, GENERATION_2_X)]
        loops = [defer.ensureDeferred(worker.loop(after_task=0.05, after_nothing=0.1,
                                                  after_error=0.2, register_retry=0.2))
                 for worker in workers]

        stopped = []

        async def stop():
            if stopped:
                return
            stopped.append(True)
            for worker in workers:
                worker.stop()
            await defer.gatherResults(loops)
            for worker in workers:
                await worker.close()

        self.addCleanup(lambda: defer.ensureDeferred(stop()))
        return stop

    async def cli(self, manager, *args: str) -> tuple[int, str, str]:
        out, err, code = await utils.getProcessOutputAndValue(
            sys.executable, ["-m", "flamenco.jobs_cli", "--manager", manager.url, *args],
            env=dict(os.environ, PYTHONPATH=REPO_ROOT), path=REPO_ROOT)
        return code, out.decode(), err.decode()

    def job_file(self, doc: dict) -> str:
        path = os.path.join(self.workdir, "job.yaml")
        with open(path, "w", encoding="utf-8") as stream:
            yaml.safe_dump(doc, stream)
        return path

    async def job_status(self, job_id: str, wanted: str):
        async def reached():
            return (await self.client.job(job_id))["status"] == wanted
        await eventually(reached, timeout=20)

    async def test_exec_job_survives_a_kill_9_and_completes(self):
        manager = await self.start_manager()
        path = self.job_file({"name": "exec", "type": "exec",
                              "settings": {"cmds": [f"echo {n}" for n in range(6)]}})
        code, out, err = await self.cli(manager, "submit", path)
        self.assertEqual(code, 0, err)
        job_id = out.split()[1]
        stop_workers = self.workers(manager, work_seconds=0.2)

        async def some_completed():
            counts = (await self.client.job(job_id))["task_counts"]
            return counts.get("completed", 0) >= 2 and counts
        before = await eventually(some_completed, timeout=20)
        # The simulated Workers do not retry a lost update as the real ones do: they stop
        # (signing off re-queues their running tasks) before the Manager is killed.
        await stop_workers()
        await manager.kill()
        await manager.start()
        after = (await self.client.job(job_id))["task_counts"]
        self.assertGreaterEqual(after.get("completed", 0), before["completed"])
        self.workers(manager)
        await self.job_status(job_id, "completed")
        job = await self.client.job(job_id)
        self.assertEqual(job["task_counts"], {"completed": 6})
        code, out, _ = await self.cli(manager, "tasks", job_id)
        self.assertEqual([line.split()[1] for line in out.splitlines()], ["completed"] * 6)

    async def test_render_job_with_video_runs_to_completion_with_submit_wait(self):
        manager = await self.start_manager()
        self.workers(manager)
        path = self.job_file({"name": "shot", "type": "blender-render", "settings": {
            "filepath": "/shared/shot.blend", "frames": "1-12", "chunk_size": 4,
            "render_output": "/render/shot/####", "video_output": "/render/shot.mp4"}})
        code, out, err = await self.cli(manager, "submit", path, "--wait", "--poll", "0.2")
        self.assertEqual(code, 0, err)
        self.assertIn("4 tasks", out)
        self.assertTrue(out.rstrip().endswith("completed"), out)
        self.assertIn("4/4 tasks completed", err)
        job = await self.client.job(out.split()[1])
        video = job["tasks"][-1]
        self.assertEqual(video["commands"][0]["name"], "create_video")
        # The video task ran last: after every render task it depends on.
        self.assertEqual(set(video["parents"]), {task["id"] for task in job["tasks"][:-1]})

    async def test_cancel_mid_way(self):
        manager = await self.start_manager()
        self.workers(manager, work_seconds=30)
        job = await self.client.submit({"name": "long", "type": "sleep",
                                        "settings": {"n_tasks": 4, "seconds": 30}})

        async def two_running():
            return (await self.client.job(job["id"]))["task_counts"].get("active", 0) == 2
        await eventually(two_running, timeout=20)
        code, out, err = await self.cli(manager, "cancel", job["id"])
        self.assertEqual((code, out.split()[-1]), (0, "cancel-requested"), err)
        await self.job_status(job["id"], "canceled")
        self.assertEqual((await self.client.job(job["id"]))["task_counts"], {"canceled": 4})

    async def test_failed_job_is_requeued_and_completes(self):
        manager = await self.start_manager()
        worker = SimulatedWorker(manager.url, generation=GENERATION_2_X, types=TYPES)
        self.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        await worker.register()
        job = await self.client.submit({"name": "flaky", "type": "sleep",
                                        "settings": {"n_tasks": 3, "seconds": 0}})
        task = await worker.ask_for_task()
        await worker.send_update(task["_id"], task_status="failed", activity="exit status 1")
        await self.job_status(job["id"], "failed")
        code, out, err = await self.cli(manager, "submit", self.job_file(
            {"name": "x", "type": "sleep", "settings": {"n_tasks": 0}}))
        self.assertEqual(code, 2)
        self.assertIn("settings.n_tasks: must be at least 1, not 0", err)
        code, out, err = await self.cli(manager, "requeue", job["id"])
        self.assertEqual(code, 0, err)
        self.assertIn("re-queued 3 tasks", out)
        for _ in range(3):
            self.assertEqual((await worker.run_task(await worker.ask_for_task())).result,
                             "completed")
        await self.job_status(job["id"], "completed")
