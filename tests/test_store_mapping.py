"""The mapping both stores share (the contract suite checks it through both stores)."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.store.mapping import (
    WORKER_FIELDS, LocalTask, check_worker_changes, hand_out_key, merge_server_task,
    worker_fields, worker_from_values, worker_values,
)
from tests.factories import T0, task_doc, worker


class MergeServerTaskTests(TestCase):
    def test_a_new_task_takes_the_servers_status_and_derives_type_and_priorities(self):
        doc = dict(task_doc(status=statuses.QUEUED, job_type="sleep", task_type="render",
                            priority=7, job_priority=3), activity="waiting", worker_id="x")
        merged = merge_server_task(doc, None, unacknowledged=False)
        self.assertEqual((merged.status, merged.activity, merged.worker),
                         (statuses.QUEUED, "waiting", ""))
        self.assertEqual((merged.schedule_type, merged.job_priority, merged.priority),
                         ("render", 3, 7))
        for key in ("status", "activity", "worker", "worker_id"):
            self.assertNotIn(key, merged.server_doc)
        self.assertEqual(merged.server_doc["_id"], doc["_id"])

    def test_a_locally_active_task_outlives_a_waiting_server_copy(self):
        local = LocalTask(statuses.ACTIVE, "rendering", "w1 (render-01)", "etag-1")
        merged = merge_server_task(task_doc(status=statuses.QUEUED, etag="etag-2"), local,
                                   unacknowledged=False)
        self.assertEqual((merged.status, merged.activity, merged.worker),
                         (statuses.ACTIVE, "rendering", "w1 (render-01)"))

    def test_queued_updates_keep_the_local_copy_until_the_server_changes_its_own(self):
        local = LocalTask(statuses.COMPLETED, "done", "w1", "etag-1")
        lagging = task_doc(status=statuses.ACTIVE, etag="etag-1")
        self.assertEqual(merge_server_task(lagging, local, unacknowledged=True).status,
                         statuses.COMPLETED)
        self.assertEqual(merge_server_task(lagging, local, unacknowledged=False).status,
                         statuses.ACTIVE)
        requeued = task_doc(status=statuses.QUEUED, etag="etag-2")
        self.assertEqual(merge_server_task(requeued, local, unacknowledged=True).status,
                         statuses.QUEUED)

    def test_an_empty_activity_or_worker_keeps_the_local_one(self):
        local = LocalTask(statuses.QUEUED, "was here", "w1", "etag-1")
        merged = merge_server_task(task_doc(status=statuses.CANCEL_REQUESTED), local,
                                   unacknowledged=False)
        self.assertEqual((merged.status, merged.activity, merged.worker),
                         (statuses.CANCEL_REQUESTED, "was here", "w1"))

    def test_type_falls_back_to_the_job_type(self):
        self.assertEqual(merge_server_task(task_doc(job_type="sleep"), None,
                                           unacknowledged=False).schedule_type, "sleep")


class HandOutOrderTests(TestCase):
    @given(st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5),
                              st.text("0123456789abcdef", min_size=24, max_size=24))))
    def test_job_priority_then_priority_highest_first_then_oldest_id(self, rows):
        ordered = sorted(rows, key=lambda row: hand_out_key(*row))
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            self.assertGreaterEqual((earlier[0], earlier[1]), (later[0], later[1]))
            if earlier[:2] == later[:2]:
                self.assertLessEqual(earlier[2], later[2])


class WorkerValuesTests(TestCase):
    def test_round_trip_of_every_field(self):
        original = worker(types=("sleep", "render"), last_activity=T0, lazy_status_request=True,
                          approved=False, status_requested="asleep")
        values = worker_values(worker_fields(original))
        self.assertEqual(set(values), set(WORKER_FIELDS))
        self.assertEqual(values["supported_types"], ["sleep", "render"])
        self.assertEqual(values["last_activity"], T0.timestamp())
        self.assertEqual(worker_from_values(values), original)

    def test_a_worker_stored_before_approval_existed_is_approved(self):
        values = worker_values(worker_fields(worker(approved=False)))
        del values["approved"]
        self.assertTrue(worker_from_values(values).approved)

    def test_only_existing_fields_but_the_id_may_change(self):
        check_worker_changes({"nickname": "x", "secret_hash": b"y"})
        self.assertRaises(TypeError, check_worker_changes, {"id": "x"})
        self.assertRaises(TypeError, check_worker_changes, {"colour": "red"})
