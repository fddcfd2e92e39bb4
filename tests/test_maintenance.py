"""`flamenco-manager cleanslate|purgequeue` (and `twistd flamenco-manager --cleanslate`) as
subprocesses on a real SQLite file (and a MongoDB database): exact lines, exit statuses, and
what is left in the database."""

import os

from twisted.trial.unittest import TestCase

from flamenco.store.sqlite import SQLiteStore
from flamenco.upstream import DEPSGRAPH_TIMESTAMP
from tests.child_process import run_python
from tests.factories import T0, task_doc, update
from tests.mongo_fixture import database_url, fresh_name, fresh_store, server_url
from tests.test_tap import twistd

TIMESTAMP = "2018-01-10T09:15:02.481000+00:00"
UNTOUCHED = (2, TIMESTAMP, 1)


def command(testcase, *args, stdin=b"", terminal_input=None):
    """Run `flamenco-manager ARGS` (`python -m flamenco.jobs_cli`, this checkout); fires
    (exit status, stdout, stderr). With `terminal_input`, standard input is a pseudo-terminal
    holding those bytes, as when an operator types them."""
    child_fds: dict[int, int | str] = {1: "r", 2: "r"}
    if terminal_input is None:
        child_fds[0] = "w"
        return run_python(testcase, "-m", "flamenco.jobs_cli", *args, stdin=stdin,
                          child_fds=child_fds)
    controller, terminal = os.openpty()
    os.write(controller, terminal_input)
    child_fds[0] = terminal
    testcase.addCleanup(os.close, controller)
    done = run_python(testcase, "-m", "flamenco.jobs_cli", *args, stdin=None,
                      child_fds=child_fds)
    os.close(terminal)
    return done


class SQLiteMaintenanceTests(TestCase):
    async def prepared(self):
        self.db = os.path.abspath(self.mktemp() + ".sqlite")
        store = SQLiteStore(self.db)
        await store.open()
        await fill(store)
        await store.close()
        return self.config(f"database_url: sqlite:{self.db}\n")

    def config(self, text: str) -> str:
        path = os.path.abspath(self.mktemp() + ".yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    async def contents(self):
        store = SQLiteStore(self.db)
        await store.open()
        try:
            return await contents(store)
        finally:
            await store.close()

    async def test_cleanslate_erases_tasks_and_timestamp_only(self):
        config = await self.prepared()
        result = await command(self, "cleanslate", "--config", config, "--yes")
        self.assertEqual(result, (
            0, "cleanslate: erased 2 local tasks and the remembered depsgraph timestamp\n", ""))
        self.assertEqual(await self.contents(), (0, None, 1))

    async def test_purgequeue_erases_queued_updates_only(self):
        config = await self.prepared()
        result = await command(self, "purgequeue", "-c", config, "-y")
        self.assertEqual(result, (0, "purgequeue: erased 1 queued task updates\n", ""))
        self.assertEqual(await self.contents(), (2, TIMESTAMP, 0))

    async def test_confirmed_on_the_terminal(self):
        config = await self.prepared()
        code, out, err = await command(self, "purgequeue", "--config", config,
                                       terminal_input=b"yes\n")
        self.assertEqual((code, out), (0, "purgequeue: erased 1 queued task updates\n"))
        self.assertEqual(err, f"purgequeue: this erases all queued task updates (they are lost) "
                              f"in sqlite:{self.db}. Type 'yes' to go on: ")
        self.assertEqual(await self.contents(), (2, TIMESTAMP, 0))

    async def test_declined_on_the_terminal_changes_nothing(self):
        config = await self.prepared()
        code, out, err = await command(self, "cleanslate", "--config", config,
                                       terminal_input=b"no\n")
        self.assertEqual((code, out), (2, ""))
        # On a terminal the echoed answer ends the prompt's line; stderr here is a pipe.
        self.assertEqual(err, f"cleanslate: this erases all local tasks and the remembered "
                              f"depsgraph timestamp in sqlite:{self.db}. Type 'yes' to go on: "
                              "flamenco-manager: cleanslate: not confirmed, nothing was "
                              "changed\n")
        self.assertEqual(await self.contents(), UNTOUCHED)

    async def test_without_a_terminal_and_without_yes_it_refuses(self):
        config = await self.prepared()
        result = await command(self, "cleanslate", "--config", config, stdin=b"yes\n")
        self.assertEqual(result, (2, "", "flamenco-manager: cleanslate: standard input is not a "
                                         "terminal; give --yes to erase without confirmation\n"))
        self.assertEqual(await self.contents(), UNTOUCHED)

    async def test_database_that_cannot_be_opened_exits_1(self):
        config = self.config("database_url: sqlite:/nonexistent-dir/flamenco.sqlite\n")
        result = await command(self, "purgequeue", "--config", config, "--yes")
        self.assertEqual(result, (1, "", "flamenco-manager: database_url: cannot open "
                                         "sqlite:/nonexistent-dir/flamenco.sqlite: unable to "
                                         "open database file\n"))

    async def test_configuration_error_exits_1(self):
        config = self.config("task_update_push_max_count: -3\n")
        result = await command(self, "cleanslate", "--config", config, "--yes")
        self.assertEqual(result, (1, "", "flamenco-manager: task_update_push_max_count: must be "
                                         "more than zero, not -3\n"))

    async def test_twistd_spelling_runs_the_same_command(self):
        config = await self.prepared()
        result = await twistd(self, "--config", config, "--cleanslate", "--yes")
        self.assertEqual(result, (
            0, "cleanslate: erased 2 local tasks and the remembered depsgraph timestamp\n", ""))
        self.assertEqual(await self.contents(), (0, None, 1))

    async def test_twistd_spelling_refuses_without_a_terminal(self):
        config = await self.prepared()
        result = await twistd(self, "--config", config, "--purgequeue", stdin=b"yes\n")
        self.assertEqual(result, (2, "", "flamenco-manager: purgequeue: standard input is not a "
                                         "terminal; give --yes to erase without confirmation\n"))
        self.assertEqual(await self.contents(), UNTOUCHED)


class MongoMaintenanceTests(TestCase):
    async def test_cleanslate_and_purgequeue_on_mongodb(self):
        base, name = server_url(), fresh_name()
        store = await fresh_store(self, base, name)
        await fill(store)
        path = os.path.abspath(self.mktemp() + ".yaml")
        with open(path, "w") as f:
            f.write(f"database_url: {database_url(base, name)}\n")
        result = await command(self, "cleanslate", "--config", path, "--yes")
        self.assertEqual(result, (
            0, "cleanslate: erased 2 local tasks and the remembered depsgraph timestamp\n", ""))
        self.assertEqual(await contents(store), (0, None, 1))
        result = await command(self, "purgequeue", "--config", path, "--yes")
        self.assertEqual(result, (0, "purgequeue: erased 1 queued task updates\n", ""))
        self.assertEqual(await contents(store), (0, None, 0))


async def fill(store) -> None:
    """Two local tasks, a remembered depsgraph timestamp and one queued update."""
    await store.store_server_tasks([task_doc(), task_doc()], T0)
    await store.set_setting(DEPSGRAPH_TIMESTAMP, TIMESTAMP)
    await store.queue_update(update(task_doc()["_id"], activity="x"))


async def contents(store) -> tuple:
    return (await store.count_tasks(), await store.get_setting(DEPSGRAPH_TIMESTAMP),
            await store.count_queued_updates())
