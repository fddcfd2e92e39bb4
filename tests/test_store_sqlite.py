"""The Store contract on the embedded SQLite store, plus what only SQLite has."""

import os
import re
import sqlite3
import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.store.interface import StoreUnavailable
from flamenco.store.sqlite import SQLiteStore
from flamenco.store.sqlite_connection import schema_scripts
from flamenco.store.sqlite_rows import ACTIVE_SQL, SCHEDULABLE_SQL
from flamenco.documents import TaskUpdate
from flamenco.ids import new_object_id
from tests.factories import JOB_ID, T0, task_doc, update, worker
from tests.store_contract import FarmContract, StoreContract


class SQLiteStoreContractTests(StoreContract, FarmContract, TestCase):
    async def make_store(self):
        store = SQLiteStore(os.path.join(self.mktemp() + ".sqlite"))
        await store.open()
        return store

    async def reopen(self, store):
        await store.close()
        again = SQLiteStore(store.path)
        await again.open()
        self.addCleanup(again.close)
        return again


class SQLiteStoreTests(TestCase):
    def path(self):
        return os.path.abspath(self.mktemp() + ".sqlite")

    async def test_schema_version_and_wal_mode(self):
        path = self.path()
        store = SQLiteStore(path)
        await store.open()
        await store.close()
        db = sqlite3.connect(path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], schema_scripts()[-1][0])
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    async def test_reopening_keeps_data_and_does_not_reapply_schema(self):
        path = self.path()
        store = SQLiteStore(path)
        await store.open()
        u = update("5a1f0e229f1b2c0d4e5f6a73", task_status="active")
        await store.queue_update(u)
        await store.close()
        store = SQLiteStore(path)
        await store.open()
        self.addCleanup(store.close)
        self.assertEqual(await store.queued_updates(5), [u])

    async def _plans_of_claims(self, store, claimant):
        """The query plan of every statement `claim_task` issues, as the store issued it."""
        statements = []
        store.connection.db.set_trace_callback(statements.append)
        try:
            task = await store.claim_task(claimant, T0)
        finally:
            store.connection.db.set_trace_callback(None)
        plans = {}
        for statement in statements:
            if statement.split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE"):
                rows = store.connection.db.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
                plans[statement] = " | ".join(row[-1] for row in rows)
        return task, plans

    async def test_claims_seek_the_schedulable_index_and_scan_no_table(self):
        store = SQLiteStore(self.path())
        await store.open()
        self.addCleanup(store.close)
        await store.store_server_tasks(
            [task_doc(job_type="sleep") for _ in range(3)] + [task_doc(job_type="render")], T0)
        plain = worker(types=("sleep", "render"))
        # A Worker with a failure on record gets the query with the farm part's exclusions.
        failed = worker(types=("sleep",))
        first = await store.claim_task(worker(types=("sleep",)), T0)
        await store.farm.record_failure(first.id, failed.id, "w", JOB_ID, "sleep", T0)
        for claimant in (plain, failed):
            task, plans = await self._plans_of_claims(store, claimant)
            self.assertIsNotNone(task)
            seeks = [plan for plan in plans.values() if "USING INDEX tasks_schedulable" in plan]
            self.assertTrue(seeks, plans)
            for plan in seeks:
                self.assertNotIn("TEMP B-TREE", plan)  # the index gives the hand-out order
            for statement, plan in plans.items():
                self.assertNotRegex(plan, r"\bSCAN (tasks|task_\w+|blocklist)\b(?! USING)",
                                    statement)

    async def test_an_update_and_its_log_mark_commit_together(self):
        # A kill between two commits would let the Worker's re-send be queued a second time.
        from flamenco.store.farm import LogMark

        store = SQLiteStore(self.path())
        await store.open()
        self.addCleanup(store.close)
        doc = task_doc()
        await store.store_server_tasks([doc], T0)
        statements: list[str] = []
        store.connection.db.set_trace_callback(statements.append)
        try:
            await store.queue_update(update(doc["_id"], log="line"),
                                     log_mark=LogMark(JOB_ID, 5, "d"))
        finally:
            store.connection.db.set_trace_callback(None)
        commits = [i for i, sql in enumerate(statements) if sql.startswith("COMMIT")]
        insert_update = next(i for i, sql in enumerate(statements)
                             if sql.startswith("INSERT INTO task_updates"))
        insert_mark = next(i for i, sql in enumerate(statements)
                           if sql.startswith("INSERT INTO task_logs"))
        self.assertEqual(len(commits), 1, statements)
        self.assertLess(max(insert_update, insert_mark), commits[0])

    async def test_schema_index_conditions_are_the_statuses_of_flamenco_statuses(self):
        # A partial index is used only by queries repeating its condition term for term: the
        # schema file's condition must read as the store's queries do.
        store = SQLiteStore(self.path())
        await store.open()
        self.addCleanup(store.close)
        index_sql = dict(store.connection.db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"))
        schedulable = " ".join(index_sql["tasks_schedulable"].split())
        self.assertTrue(schedulable.endswith(" WHERE " + SCHEDULABLE_SQL), schedulable)
        listed = re.search(r"status IN \(([^)]*)\)", schedulable).group(1)
        self.assertEqual(tuple(re.findall(r"'([^']*)'", listed)), statuses.SCHEDULABLE)
        active = " ".join(index_sql["tasks_active_by_ping"].split())
        self.assertTrue(active.endswith(" WHERE " + ACTIVE_SQL), active)
        self.assertIn(f"'{statuses.ACTIVE}'", ACTIVE_SQL)

    def test_every_status_the_schema_names_is_a_task_status(self):
        named = set()
        for _, script in schema_scripts():
            for listed in re.findall(r"status\s+IN\s*\(([^)]*)\)", script, re.IGNORECASE):
                named.update(re.findall(r"'([^']*)'", listed))
            named.update(re.findall(r"status\s*!?=\s*'([^']*)'", script, re.IGNORECASE))
        self.assertIn(statuses.COMPLETED, named)  # (the parent-count triggers)
        self.assertLessEqual(named, statuses.TASK_STATUSES)

    async def test_closed_database_fails_with_store_unavailable(self):
        store = SQLiteStore(self.path())
        await store.open()
        await store.close()
        failure = self.failureResultOf(store.count_tasks(), StoreUnavailable)
        self.assertIn("not open", str(failure.value))

    async def test_writes_of_one_reactor_iteration_share_one_commit(self):
        path = self.path()
        store = SQLiteStore(path)
        await store.open()
        self.addCleanup(store.close)
        other = sqlite3.connect(path)
        self.addCleanup(other.close)
        updates = [update("5a1f0e229f1b2c0d4e5f6a73", activity=f"step {n}") for n in range(3)]
        pending = [store.queue_update(u) for u in updates]
        # Not yet committed: no answer yet, and another connection sees nothing.
        self.assertEqual([d.called for d in pending], [False] * 3)
        self.assertEqual(other.execute("SELECT count(*) FROM task_updates").fetchone()[0], 0)
        await defer.gatherResults(pending)
        self.assertEqual(other.execute("SELECT count(*) FROM task_updates").fetchone()[0], 3)
        self.assertEqual(store.connection.db.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL

    async def test_a_failed_write_in_a_batch_leaves_the_others(self):
        store = SQLiteStore(self.path())
        await store.open()
        self.addCleanup(store.close)
        first = store.queue_update(update("5a1f0e229f1b2c0d4e5f6a73"))
        duplicate = TaskUpdate(id=new_object_id(), task_id="5a1f0e229f1b2c0d4e5f6a74",
                               received_on_manager=T0)
        second = store.queue_update(duplicate)
        again = store.queue_update(duplicate)  # same _id: refused, the rest of the batch stays
        await defer.gatherResults([first, second])
        self.failureResultOf(again, StoreUnavailable)
        self.assertEqual(await store.count_queued_updates(), 2)

    async def test_normal_sync_commits_each_write_at_once(self):
        store = SQLiteStore(self.path(), sync="normal")
        await store.open()
        self.addCleanup(store.close)
        self.assertTrue(store.queue_update(update("5a1f0e229f1b2c0d4e5f6a73")).called)
        synchronous = store.connection.db.execute("PRAGMA synchronous").fetchone()[0]
        self.assertEqual(synchronous, 1)  # NORMAL

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from(["sleep", "render"]),
                  st.sampled_from(statuses.SCHEDULABLE + (statuses.COMPLETED, statuses.ACTIVE))),
        max_size=12,
    ))
    def test_claims_follow_protocol_order(self, rows):
        # Without group commit SQLite's Deferreds have fired on return, so hypothesis can
        # drive them synchronously.
        self.successResultOf(defer.ensureDeferred(self._claim_order(rows)))

    async def _claim_order(self, rows):
        store = SQLiteStore(":memory:", sync="normal")
        await store.open()
        docs = [task_doc(job_priority=jp, priority=p, job_type=kind, status=status)
                for jp, p, kind, status in rows]
        await store.store_server_tasks(docs, T0)
        expected = sorted(
            (d for d in docs if d["status"] in statuses.SCHEDULABLE and d["job_type"] == "sleep"),
            key=lambda d: (-d["job_priority"], -d["priority"], d["_id"]),
        )
        claimed = []
        while (task := await store.claim_task(worker(types=("sleep",)), T0)) is not None:
            claimed.append(task.id)
        await store.close()
        self.assertEqual(claimed, [d["_id"] for d in expected])


class SQLiteUpgradeTests(TestCase):
    async def test_workers_of_a_version_1_database_are_approved_after_the_upgrade(self):
        path = os.path.abspath(self.mktemp() + ".sqlite")
        db = sqlite3.connect(path)
        db.executescript(schema_scripts()[0][1] + "\nPRAGMA user_version = 1;")
        db.execute("INSERT INTO workers (id, secret_hash) VALUES (?, ?)",
                   ("5a1f0e229f1b2c0d4e5f6a01", b"$2b$04$x"))
        db.commit()
        db.close()
        store = SQLiteStore(path)
        await store.open()
        self.addCleanup(store.close)
        self.assertTrue((await store.get_worker("5a1f0e229f1b2c0d4e5f6a01")).approved)


#: Run in a fresh interpreter: with the MongoDB driver unimportable, every module of flamenco/
#: but the MongoDB store's imports, and a SQLite store with its jobs part works.
_WITHOUT_MONGO_DRIVER = """
import importlib, os, pkgutil, sys, tempfile
from datetime import datetime, timezone

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("bson", "pymongo", "txmongo"):
            raise ImportError(name + " is not installed")

sys.meta_path.insert(0, Refuse())
import flamenco

for info in pkgutil.walk_packages(flamenco.__path__, "flamenco."):
    if "mongo" not in info.name.rsplit(".", 1)[-1]:
        importlib.import_module(info.name)

from flamenco.ids import new_object_id
from flamenco.store.jobs import job_store_for
from flamenco.store.sqlite import SQLiteStore

store = SQLiteStore(os.path.join(tempfile.mkdtemp(), "flamenco.sqlite"), sync="normal")
store.open()
now = datetime.now(timezone.utc)
task = {"_id": new_object_id(), "status": "queued", "job_type": "sleep", "commands": []}
store.store_server_tasks([task], now)
assert store.get_task(task["_id"]).result.status == "queued"
assert job_store_for(store).list_jobs().result == []
store.close()

from flamenco.config import Config, ConfigError
from flamenco.store import store_for
try:
    store_for(Config(database_url="mongodb://127.0.0.1:1/flamenco"))
except ConfigError as error:
    print(error)
else:
    raise AssertionError("a MongoDB store without its driver")
"""


class SQLiteWithoutMongoDriverTests(TestCase):
    def test_no_module_but_the_mongodb_stores_needs_the_driver(self):
        result = subprocess.run(
            [sys.executable, "-c", _WITHOUT_MONGO_DRIVER], capture_output=True, text=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)), check=False)
        self.assertEqual((result.returncode, result.stderr), (0, ""))
        # And a mongodb:// URL is one configuration line naming what to install.
        self.assertEqual(result.stdout, "database_url: a mongodb:// URL needs the MongoDB driver"
                         " (txmongo, pymongo), which is not installed:"
                         " pip install 'flamenco-manager[mongodb]'\n")
