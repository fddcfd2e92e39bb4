"""`twistd flamenco-manager` as a subprocess: --version, config errors, cleanslate, purgequeue."""

import os
import sys

from twisted.internet import reactor
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from flamenco.store.sqlite import SQLiteStore
from flamenco.upstream import DEPSGRAPH_TIMESTAMP
from tests.factories import T0, task_doc, update
from tests.util import async_test

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Collect(ProcessProtocol):
    def __init__(self, stdin: bytes):
        self.stdin = stdin
        self.out = b""
        self.err = b""
        self.done = Deferred()

    def connectionMade(self):
        self.transport.write(self.stdin)
        self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        self.done.callback((reason.value.exitCode, self.out.decode(), self.err.decode()))


def twistd(testcase, *args, stdin=b""):
    """Run `twistd --nodaemon --pidfile= flamenco-manager ARGS`; fires (exit code, out, err).

    A process still running when the test ends (it failed or timed out) is killed.
    """
    protocol = _Collect(stdin)
    env = dict(os.environ, PYTHONPATH=REPO)
    argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
            "--nodaemon", "--pidfile=", "flamenco-manager", *args]
    process = reactor.spawnProcess(protocol, sys.executable, argv, env=env, path=REPO)

    def kill_if_running():
        if process.pid is not None:
            process.signalProcess("KILL")
            return protocol.done

    testcase.addCleanup(kill_if_running)
    return protocol.done


class CommandLineTests(TestCase):
    @async_test
    async def test_version(self):
        code, out, _ = await twistd(self, "--version")
        self.assertEqual((code, out.strip()), (0, "flamenco-manager 2.1.0"))

    @async_test
    async def test_config_error_is_one_line_naming_the_key(self):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("task_update_push_max_count: -3\n")
        code, _, err = await twistd(self, "--config", path)
        self.assertNotEqual(code, 0)
        self.assertEqual(err.strip().splitlines(),
                         ["flamenco-manager: task_update_push_max_count: must be more than zero, not -3"])

    @async_test
    async def test_missing_config_file(self):
        code, _, err = await twistd(self, "--config", "/nonexistent/flamenco.yaml")
        self.assertNotEqual(code, 0)
        self.assertIn("cannot read configuration file /nonexistent/flamenco.yaml", err)


class MaintenanceTests(TestCase):
    async def prepared(self):
        db = os.path.abspath(self.mktemp() + ".sqlite")
        store = SQLiteStore(db)
        await store.open()
        await store.store_server_tasks([task_doc(), task_doc()], T0)
        await store.set_setting(DEPSGRAPH_TIMESTAMP, "2018-01-10T09:15:02.481000+00:00")
        await store.queue_update(update(task_doc()["_id"], activity="x"))
        await store.close()
        config = os.path.abspath(self.mktemp() + ".yaml")
        with open(config, "w") as f:
            f.write(f"database_url: sqlite:{db}\n")
        return db, config

    async def contents(self, db):
        store = SQLiteStore(db)
        await store.open()
        try:
            return (await store.count_tasks(), await store.get_setting(DEPSGRAPH_TIMESTAMP),
                    await store.count_queued_updates())
        finally:
            await store.close()

    @async_test
    async def test_cleanslate_erases_tasks_and_timestamp_only(self):
        db, config = await self.prepared()
        code, out, err = await twistd(self, "--config", config, "--cleanslate", "--yes")
        self.assertEqual(code, 0, err)
        self.assertIn("cleanslate: erased 2 local tasks", out)
        self.assertEqual(await self.contents(db), (0, None, 1))

    @async_test
    async def test_purgequeue_erases_queued_updates_only(self):
        db, config = await self.prepared()
        code, out, err = await twistd(self, "--config", config, "--purgequeue", stdin=b"yes\n")
        self.assertEqual(code, 0, err)
        self.assertIn("purgequeue: erased 1 queued task updates", out)
        self.assertEqual(await self.contents(db),
                         (2, "2018-01-10T09:15:02.481000+00:00", 0))

    @async_test
    async def test_declining_the_confirmation_changes_nothing(self):
        db, config = await self.prepared()
        code, _, err = await twistd(self, "--config", config, "--cleanslate", stdin=b"no\n")
        self.assertNotEqual(code, 0)
        self.assertIn("aborted, nothing was changed", err)
        self.assertEqual(await self.contents(db), (2, "2018-01-10T09:15:02.481000+00:00", 1))

    @async_test
    async def test_failing_job_exits_non_zero(self):
        config = os.path.abspath(self.mktemp() + ".yaml")
        with open(config, "w") as f:
            f.write("database_url: sqlite:/nonexistent-dir/flamenco.sqlite\n")
        code, _, err = await twistd(self, "--config", config, "--purgequeue", "--yes")
        self.assertEqual(code, 1)
        self.assertIn("flamenco-manager: SQLite error: unable to open database file", err)
