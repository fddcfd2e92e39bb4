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
from tests.factories import T0, task_doc, update, worker
from tests.store_contract import FarmContract, StoreContract
from tests.util import async_test


class SQLiteStoreContractTests(StoreContract, FarmContract, TestCase):
    async def make_store(self):
        store = SQLiteStore(os.path.join(self.mktemp() + ".sqlite"))
        await store.open()
        return store


class SQLiteStoreTests(TestCase):
    def path(self):
        return os.path.abspath(self.mktemp() + ".sqlite")

    @async_test
    async def test_schema_version_and_wal_mode(self):
        path = self.path()
        store = SQLiteStore(path)
        await store.open()
        await store.close()
        db = sqlite3.connect(path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], schema_scripts()[-1][0])
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    @async_test
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

    @async_test
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

    @async_test
    async def test_closed_database_fails_with_store_unavailable(self):
        store = SQLiteStore(self.path())
        await store.open()
        await store.close()
        failure = self.failureResultOf(store.count_tasks(), StoreUnavailable)
        self.assertIn("not open", str(failure.value))

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.sampled_from(["sleep", "render"]),
                  st.sampled_from(statuses.SCHEDULABLE + (statuses.COMPLETED, statuses.ACTIVE))),
        max_size=12,
    ))
    def test_claims_follow_protocol_order(self, rows):
        # SQLite's Deferreds have fired on return, so hypothesis can drive them synchronously.
        self.successResultOf(defer.ensureDeferred(self._claim_order(rows)))

    async def _claim_order(self, rows):
        store = SQLiteStore(":memory:")
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
