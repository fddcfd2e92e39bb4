"""The Store contract on the embedded SQLite store, plus what only SQLite has."""

import os
import sqlite3

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.store.interface import StoreUnavailable
from flamenco.store.sqlite import SQLiteStore, schema_scripts
from flamenco.documents import TaskUpdate
from flamenco.ids import new_object_id
from tests.factories import T0, task_doc, update, worker
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

    async def test_next_task_query_uses_the_schedulable_index(self):
        store = SQLiteStore(self.path())
        await store.open()
        self.addCleanup(store.close)
        plan = store._db.execute(
            "EXPLAIN QUERY PLAN SELECT id, job_priority, priority FROM tasks"
            " WHERE schedule_type = 'sleep' AND status IN ('queued', 'claimed-by-manager',"
            " 'soft-failed') AND unfinished_parents = 0"
            " ORDER BY job_priority DESC, priority DESC, id LIMIT 1"
        ).fetchall()
        detail = " ".join(row[-1] for row in plan)
        self.assertIn("tasks_schedulable", detail)
        self.assertNotIn("TEMP B-TREE", detail)

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
        self.assertEqual(store._db.execute("PRAGMA synchronous").fetchone()[0], 2)  # FULL

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
        self.assertEqual(store._db.execute("PRAGMA synchronous").fetchone()[0], 1)  # NORMAL

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
