"""Job status from task statuses (the Server's rules, PROTOCOL §6.6 / issue 13)."""

from twisted.trial import unittest

from flamenco.jobs.status import Verdict, derive_job_status


def derive(job, *tasks, **kwargs):
    return derive_job_status(job, tasks, **kwargs)


class DeriveJobStatusTests(unittest.TestCase):
    def test_waiting_job_stays_queued(self):
        self.assertEqual(derive("queued", "queued", "claimed-by-manager"), Verdict("queued"))

    def test_first_active_task_makes_it_active(self):
        self.assertEqual(derive("queued", "active", "queued"), Verdict("active"))

    def test_a_completed_task_keeps_it_active(self):
        self.assertEqual(derive("active", "completed", "queued"), Verdict("active"))

    def test_all_completed(self):
        self.assertEqual(derive("active", "completed", "completed"), Verdict("completed"))

    def test_failed_share_over_threshold_fails_and_cancels_the_rest(self):
        tasks = ["failed", "failed"] + ["queued"] * 8
        self.assertEqual(derive("active", *tasks), Verdict("failed", cancel_rest=True))

    def test_failed_share_at_threshold_keeps_going(self):
        tasks = ["failed"] + ["completed"] * 4 + ["queued"] * 5
        self.assertEqual(derive("active", *tasks), Verdict("active"))

    def test_threshold_is_a_parameter(self):
        tasks = ["failed"] + ["queued"] * 9
        self.assertEqual(derive("active", *tasks, failed_threshold=0.5), Verdict("active"))

    def test_all_ended_with_a_failure_under_threshold_fails(self):
        tasks = ["failed"] + ["completed"] * 19
        self.assertEqual(derive("active", *tasks), Verdict("failed"))

    def test_soft_failed_is_not_failed(self):
        self.assertEqual(derive("active", "soft-failed", "completed"), Verdict("active"))

    def test_cancel_requested_until_every_task_ended(self):
        self.assertEqual(derive("cancel-requested", "cancel-requested", "canceled"),
                         Verdict("cancel-requested"))
        self.assertEqual(derive("cancel-requested", "completed", "canceled"),
                         Verdict("canceled"))

    def test_final_statuses_stay(self):
        for status in ("completed", "failed", "canceled"):
            self.assertEqual(derive(status, "active"), Verdict(status))

    def test_paused_stays_paused(self):
        self.assertEqual(derive("paused", "paused", "completed"), Verdict("paused"))

    def test_paused_job_whose_tasks_all_completed_completes(self):
        self.assertEqual(derive("paused", "completed"), Verdict("completed"))

    def test_no_tasks_keeps_the_status(self):
        self.assertEqual(derive("queued"), Verdict("queued"))
