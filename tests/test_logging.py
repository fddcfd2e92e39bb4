"""What the real `twistd flamenco-manager` logs: JSON lines, no access log unless asked for,
no factory chatter, operator actions, worker status changes and --debug decisions.

Each test runs the Manager as a child process against the simulated Server (in this process)
and one simulated Worker that runs a one-task job, all over loopback HTTP.
"""

from __future__ import annotations

import json
import os
import re

import treq
from twisted.trial import unittest

from flamenco.testing import serve_for_test
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET
from flamenco.testing.worker import GENERATION_2_X, SimulatedWorker
from tests.manager_process import ManagerProcess, stop_at_cleanup

FAST = {
    "download_task_sleep_seconds": 2,
    "task_update_push_max_interval_seconds": 0.5,
    "cancel_task_fetch_max_interval_seconds": 0.5,
    "task_timeout_grace_seconds": 600,
}
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
COMBINED = re.compile(r'(?P<host>[0-9a-f.:]+) - - \[[^\]]+\] "(?P<request>[^"]*)" (?P<code>\d{3}) '
                      r'(?P<bytes>\d+|-) "(?P<referrer>[^"]*)" "(?P<agent>[^"]*)"')


class ManagerLogTests(unittest.TestCase):
    timeout = 60

    async def run_farm(self, *args: str) -> ManagerProcess:
        """Start the Manager with `args`, run a one-task job with one Worker, use an operator
        endpoint, stop the Manager (SIGTERM) and return it."""
        server = serve_for_test(self)
        _, (task_id,) = server.create_job([{"name": "only", "task_type": "sleep", "commands": [
            {"name": "echo", "settings": {"message": "hi"}}]}])
        workdir = os.path.abspath(self.mktemp())
        config = dict(FAST, flamenco=server.url, manager_id=DEFAULT_MANAGER_ID,
                      manager_secret=DEFAULT_MANAGER_SECRET, own_url="http://127.0.0.1:1/")
        manager = ManagerProcess(config, workdir, verbose=False, args=args)
        stop_at_cleanup(self, manager)
        await manager.start()
        await server.wait_for(lambda s: s.task_status(task_id) == "claimed-by-manager", 20)
        worker = SimulatedWorker(manager.url, generation=GENERATION_2_X, nickname="logw",
                                 types=("sleep",), work_seconds=0.05)
        self.addCleanup(worker.close)
        await worker.register()
        await worker.sign_on()
        doc = await worker.ask_for_task()
        await worker.run_task(doc)
        self.assertIsNone(await worker.ask_for_task())
        answer = await treq.post(manager.url + "kick", headers={"User-Agent": "operator/1.0"},
                                 persistent=False)
        await answer.content()
        self.assertEqual(answer.code, 200)
        await server.wait_for(lambda s: s.task_status(task_id) == "completed", 20)
        self.worker_id = worker.worker_id
        self.task_id = task_id
        await manager.stop()
        return manager

    async def test_json_lines_with_the_fields_log_shippers_expect(self):
        manager = await self.run_farm("--json", "--debug")
        lines = manager.output().splitlines()
        self.assertGreater(len(lines), 10)
        events = []
        for line in lines:
            event = json.loads(line)  # every line is one JSON object
            self.assertIsInstance(event, dict, line)
            self.assertRegex(event["time"], ISO_UTC)
            self.assertIn(event["level"], ("debug", "info", "warn", "error", "critical"), line)
            self.assertIsInstance(event["logger"], str)
            self.assertIsInstance(event["message"], str)
            self.assertNotIn("log_format", event)
            events.append(event)

        def find(text):
            found = [event for event in events if text in event["message"]]
            self.assertTrue(found, f"no log line with {text!r}:\n" + "\n".join(lines))
            return found[0]

        listening = find("listening on")
        self.assertEqual((listening["logger"], listening["level"], listening["port"]),
                         ("flamenco.tap", "info", manager.port))
        status = find(f"({self.worker_id}) status ")
        self.assertEqual((status["level"], status["id"], status["new"]),
                         ("info", self.worker_id, "starting"))
        self.assertEqual(find("operator asked for a task download")["level"], "info")
        claimed = find(f"claimed task {self.task_id}")
        self.assertEqual((claimed["level"], claimed["logger"]), ("debug", "flamenco.scheduler"))
        self.assertEqual(find("no runnable task of types")["level"], "debug")
        pushes = [event for event in events if event["message"].startswith("pushed ")]
        self.assertTrue([push for push in pushes if push["sent"] > 0 and push["level"] == "debug"
                         and push["handled"] == push["sent"]], pushes)
        self.assertFalse([event for event in events if "Starting factory" in event["message"]])

    async def test_access_log_file_in_combined_format_and_none_in_the_verbose_log(self):
        path = os.path.abspath(self.mktemp() + ".log")
        manager = await self.run_farm("--verbose", "--access-log", path)
        output = manager.output()
        self.assertNotIn('"POST /task', output)
        self.assertNotIn('"GET /', output)
        self.assertNotIn("Starting factory", output)
        self.assertNotIn("Stopping factory", output)
        self.assertIn("operator asked for a task download now", output)
        with open(path, encoding="utf-8") as stream:
            lines = stream.read().splitlines()
        parsed = [COMBINED.fullmatch(line) for line in lines]
        self.assertTrue(all(parsed), lines)
        requests = [(m["host"], m["request"], m["code"], m["agent"]) for m in parsed]
        self.assertIn(("127.0.0.1", "POST /kick HTTP/1.1", "200", "operator/1.0"), requests)
        self.assertIn(("127.0.0.1", "POST /register-worker HTTP/1.1", "200"),
                      [r[:3] for r in requests])

    async def test_access_log_to_standard_output(self):
        manager = await self.run_farm("--access-log", "-")
        lines = [COMBINED.fullmatch(line) for line in manager.output().splitlines()]
        self.assertIn("POST /kick HTTP/1.1", [m["request"] for m in lines if m])


class JsonLineTests(unittest.TestCase):
    """`json_line` on events made by a real Logger."""

    def capture(self, emit) -> dict:
        from twisted.logger import Logger

        events = []
        emit(Logger(namespace="flamenco.example", observer=events.append))
        (event,) = events
        return event

    def test_failure_has_its_traceback_and_odd_values_their_text(self):
        from flamenco.logs import json_line

        def emit(logger):
            try:
                1 / 0
            except ZeroDivisionError:
                logger.failure("sweep of {count} tasks failed", count=3, where=object)

        line = json_line(self.capture(emit))
        self.assertTrue(line.endswith("\n") and "\n" not in line[:-1], "one line")
        event = json.loads(line)
        self.assertEqual((event["level"], event["logger"], event["message"], event["count"]),
                         ("critical", "flamenco.example", "sweep of 3 tasks failed", 3))
        self.assertIn("ZeroDivisionError", event["traceback"])
        self.assertEqual(event["where"], "<class 'object'>")

    def test_factory_chatter_is_dropped_at_every_level(self):
        from twisted.internet.protocol import Factory
        from twisted.logger import LogLevel

        from flamenco import logs

        written = []

        class Stream:
            def write(self, text):
                written.append(text)

            def flush(self):
                pass

        self.addCleanup(logs.choose, LogLevel.warn, False)
        logs.choose(LogLevel.debug, True)
        observer = logs.observer(Stream())
        factory = Factory()
        observer(self.capture(lambda logger: logger.info("Starting factory {factory!r}",
                                                         factory=factory)))
        observer(self.capture(lambda logger: logger.info("kept {n}", n=1)))
        self.assertEqual([json.loads(text)["message"] for text in written], ["kept 1"])

    def test_txmongo_reconnection_error_is_noise_other_errors_are_not(self):
        from twisted.logger import globalLogPublisher
        from twisted.python import log as legacy

        from flamenco import logs

        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        legacy.err(str("TxMongo lost connection to MongoDB."))  # as txmongo's protocol.fail()
        legacy.err(str("not master"))
        self.assertEqual([logs.is_noise(event) for event in events], [True, False])
