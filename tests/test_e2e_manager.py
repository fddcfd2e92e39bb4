"""End to end: the real `twistd flamenco-manager` process, driven over HTTP by simulated workers.

Each test starts the plugin as a child process on a free loopback port, with a SQLite file in a
temporary directory (no Server configured), tasks loaded into that file before the start.
Waiting for another process is done by polling with a bounded deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import treq
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from twisted.web.client import Agent, HTTPConnectionPool

from flamenco.store.sqlite import SQLiteStore
from flamenco.testing.worker import GENERATION_2_0, GENERATION_2_X, SimulatedWorker, StatusRequest
from tests.factories import T0, task_doc
from tests.manager_process import REPO_ROOT, ManagerProcess, stop_at_cleanup

#: T1 must run first; T2 waits for it (parent link); T3 is low priority.
T1 = task_doc(name="move-existing-frames", job_type="blender-render", task_type="file-management",
              priority=60, commands=[{"name": "move_out_of_way", "settings": {"src": "/r"}}])
T2 = task_doc(name="blender-render-1-10", job_type="blender-render", task_type="blender-render",
              priority=50, parents=[T1["_id"]],
              commands=[{"name": "blender_render", "settings": {"frames": "1..10"}},
                        {"name": "exr_merge", "settings": {}}])
T3 = task_doc(name="sleep-a-while", job_type="sleep", priority=10,
              commands=[{"name": "sleep", "settings": {"time_in_seconds": 1}}])
TYPES = ("sleep", "blender-render", "file-management")


async def load_tasks(path: str, docs) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.store_server_tasks(list(docs), T0)
    finally:
        await store.close()


async def read_store(path: str, reader):
    """Open the SQLite file (possibly while the Manager runs: WAL), read, close."""
    store = SQLiteStore(path)
    await store.open()
    try:
        return await reader(store)
    finally:
        await store.close()


async def eventually(check, timeout: float = 10.0, interval: float = 0.1):
    """Poll `check()` (async) until it returns something true; fail after `timeout` seconds."""
    deadline = reactor.seconds() + timeout
    while True:
        result = await check()
        if result:
            return result
        if reactor.seconds() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await task.deferLater(reactor, interval, lambda: None)


class EndToEndTest(unittest.TestCase):
    timeout = 60

    async def start_manager(self, tasks=(T1, T2, T3), **config) -> ManagerProcess:
        workdir = self.mktemp()
        os.makedirs(workdir)
        manager = ManagerProcess(config, workdir)
        await load_tasks(manager.sqlite_path, tasks)
        stop_at_cleanup(self, manager)
        await manager.start()
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=self.pool)
        self.addCleanup(self.pool.closeCachedConnections)
        return manager

    def worker(self, manager: ManagerProcess, generation: str, **kwargs) -> SimulatedWorker:
        kwargs.setdefault("types", TYPES)
        worker = SimulatedWorker(manager.url, generation=generation, **kwargs)
        self.addCleanup(lambda: defer.ensureDeferred(worker.close()))
        return worker

    async def operator_requests(self, manager, worker_id: str, status: str, lazy: bool = False):
        response = await treq.post(
            f"{manager.url}worker-action/{worker_id}", agent=self.agent,
            data={"action": "set-status", "status": status, "lazy": "true" if lazy else "false"})
        await response.content()
        self.assertEqual(response.code, 204)

    async def status_report(self, manager) -> dict:
        response = await treq.get(manager.url, agent=self.agent)
        self.assertEqual(response.code, 200)
        return await response.json()

    async def stopped_store(self, manager, reader):
        """Stop the Manager cleanly, then read its SQLite file."""
        # twistd re-raises the SIGTERM after its clean shutdown, so the status is -15.
        self.assertIn(await manager.stop(), (0, -signal.SIGTERM))
        self.assertIn("Server Shut Down.", manager.output())
        return await read_store(manager.sqlite_path, reader)


class WorkerLifeCycleTests(EndToEndTest):
    async def test_2_0_worker(self):
        manager = await self.start_manager()
        self.assertEqual((await self.status_report(manager))["nr_of_tasks"], 3)
        worker = self.worker(manager, GENERATION_2_0, nickname="render-01")
        await worker.register()

        first = await worker.ask_for_task()
        self.assertEqual((first["_id"], first["status"]), (T1["_id"], "active"))
        self.assertEqual((await worker.run_task(first)).result, "completed")

        second = await worker.ask_for_task()  # T2's parent is completed now
        self.assertEqual(second["_id"], T2["_id"])
        self.assertEqual(second["commands"], T2["commands"])
        self.assertEqual(await worker.send_update(T2["_id"], task_status="active",
                                                  activity="starting blender_render"), 204)
        self.assertEqual(await worker.may_i_run(T2["_id"]), {"may_keep_running": True})
        self.assertIn(await worker.sign_off(), (200, 204))
        record = await read_store(manager.sqlite_path,
                                  lambda store: store.get_worker(worker.worker_id))
        self.assertEqual((record.status, record.current_task), ("down", None))

        # Signing off re-queued T2: the next worker gets it before T3, and the signed-off
        # worker's leftover process is told to stop.
        other = self.worker(manager, GENERATION_2_0, nickname="render-02")
        await other.register()
        self.assertEqual((await other.ask_for_task())["_id"], T2["_id"])
        self.assertEqual(await worker.may_i_run(T2["_id"]), {
            "may_keep_running": False,
            "reason": f"task {T2['_id']} reassigned to another worker",
        })

        updates = await self.stopped_store(manager, lambda store: store.queued_updates(1000))
        t1 = [u for u in updates if u.task_id == T1["_id"]]
        self.assertEqual([u.task_status for u in t1 if u.task_status][0], "active")
        self.assertEqual(t1[-1].task_status, "completed")
        requeue = [u for u in updates if u.task_id == T2["_id"] and u.worker == "-"]
        self.assertEqual(len(requeue), 1)
        self.assertEqual(requeue[0].task_status, "claimed-by-manager")
        self.assertIn("signed off", requeue[0].activity)

    async def test_2_x_worker(self):
        manager = await self.start_manager()
        worker = self.worker(manager, GENERATION_2_X, nickname="render-01")
        await worker.register()
        self.assertEqual((await worker.sign_on()).code, 204)  # as after a restart

        first = await worker.ask_for_task()
        self.assertEqual(first["_id"], T1["_id"])
        self.assertEqual((await worker.run_task(first)).result, "completed")
        second = await worker.ask_for_task()
        self.assertEqual(second["_id"], T2["_id"])
        self.assertEqual(await worker.send_update(T2["_id"], task_status="active"), 204)
        self.assertEqual(await worker.may_i_run(T2["_id"]), {"may_keep_running": True})

        # The operator sends it to sleep (immediately): it stops and returns T2.
        await self.operator_requests(manager, worker.worker_id, "asleep")
        self.assertEqual(await worker.may_i_run(T2["_id"]), {
            "may_keep_running": False,
            "reason": "worker status change to asleep requested",
            "status_requested": "asleep",
        })
        self.assertEqual(await worker.send_update(T2["_id"], log="stopped running this task"),
                         204)
        self.assertEqual(await worker.return_task(T2["_id"]), 204)
        self.assertEqual(await worker.ask_for_task(), StatusRequest("asleep"))
        self.assertEqual(await worker.ack_status_change("asleep"), 204)
        self.assertIsNone(await worker.status_change())

        await self.operator_requests(manager, worker.worker_id, "awake", lazy=True)
        self.assertEqual(await worker.status_change(), "awake")
        self.assertEqual(await worker.ack_status_change("awake"), 204)
        again = await worker.ask_for_task()
        self.assertEqual(again["_id"], T2["_id"])  # the returned task, before T3
        self.assertEqual(await worker.send_update(T2["_id"], task_status="active"), 204)
        self.assertEqual(await worker.sign_off(), 204)

        async def read(store):
            return (await store.get_task(T2["_id"]), await store.get_worker(worker.worker_id),
                    await store.queued_updates(1000))

        t2, record, updates = await self.stopped_store(manager, read)
        self.assertEqual(t2.status, "claimed-by-manager")
        self.assertEqual((record.status, record.status_requested), ("offline", ""))
        self.assertEqual(record.software, "Flamenco-Worker/2.5")
        reasons = [u.activity.rsplit(": ", 1)[-1] for u in updates
                   if u.task_id == T2["_id"] and u.worker == "-"]
        self.assertEqual(reasons, ["returned by worker", "worker signed off"])


class CrashTests(EndToEndTest):
    async def test_update_answered_204_survives_kill_9(self):
        manager = await self.start_manager()
        worker = self.worker(manager, GENERATION_2_X)
        await worker.register()
        doc = await worker.ask_for_task()
        marker = f"log line that must survive {os.getpid()}"
        self.assertEqual(await worker.send_update(doc["_id"], task_status="active", log=marker),
                         204)
        await manager.kill()
        self.assertEqual(manager.process.returncode, -signal.SIGKILL)

        await manager.start()
        self.assertGreaterEqual((await self.status_report(manager))["upstream_queue_size"], 3)
        # The worker's credentials and its binding to the task survived too.
        self.assertTrue((await worker.may_i_run(doc["_id"]))["may_keep_running"])
        await worker.close()
        updates = await self.stopped_store(manager, lambda store: store.queued_updates(1000))
        survived = [u for u in updates if u.log == marker]
        self.assertEqual(len(survived), 1)
        self.assertEqual((survived[0].task_id, survived[0].task_status), (doc["_id"], "active"))

    async def test_task_of_a_killed_worker_fails_by_timeout(self):
        task_doc_ = task_doc(job_type="sleep", commands=[
            {"name": "sleep", "settings": {"time_in_seconds": 60}}])
        manager = await self.start_manager(
            tasks=[task_doc_], task_timeout_grace_seconds=0,
            task_timeout_check_interval_seconds=0.2, active_task_timeout_interval_seconds=1)
        worker_log = open(os.path.join(manager.workdir, "worker.log"), "wb")
        self.addCleanup(worker_log.close)
        env = dict(os.environ, PYTHONPATH=REPO_ROOT)
        process = subprocess.Popen(
            [sys.executable, "-m", "flamenco.testing.worker", "--manager", manager.url,
             "--count", "1", "--generation", "2.0", "--types", "sleep", "--work-seconds", "60",
             "--may-i-run-interval", "0.1"],
            env=env, stdin=subprocess.DEVNULL, stdout=worker_log, stderr=subprocess.STDOUT)

        def kill_worker():
            if process.poll() is None:
                process.kill()
                process.wait()

        self.addCleanup(kill_worker)

        async def status():
            stored = await read_store(manager.sqlite_path,
                                      lambda store: store.get_task(task_doc_["_id"]))
            return stored.status

        async def active():
            return await status() == "active"

        await eventually(active)
        # While the worker polls may-i-run, the task outlives the 1 s timeout.
        stays_active = reactor.seconds() + 2.0
        while reactor.seconds() < stays_active:
            self.assertEqual(await status(), "active")
            await task.deferLater(reactor, 0.2, lambda: None)

        kill_worker()

        async def failed():
            return await status() == "failed"

        await eventually(failed, timeout=10)
        timed_out = await read_store(manager.sqlite_path,
                                     lambda store: store.get_task(task_doc_["_id"]))
        self.assertTrue(timed_out.doc.get("activity", "").startswith("Task timed out on worker"))
