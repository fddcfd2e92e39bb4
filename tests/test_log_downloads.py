"""What `/logfile` sends (PROTOCOL §3.13), from real log files, without HTTP."""

import gzip
import os

from twisted.trial.unittest import TestCase

from flamenco.errors import UnknownTask
from flamenco.log_downloads import WHOLE_BELOW, LogDownloads
from flamenco.task_logs import TaskLogs
from tests.factories import JOB_ID

TASK_ID = "5a1f0e229f1b2c0d4e5f6a73"


class LogDownloadTests(TestCase):
    def setUp(self):
        self.logs = TaskLogs(None, self.mktemp())
        self.downloads = LogDownloads(self.logs)
        self.path = self.logs.path(JOB_ID, TASK_ID)
        os.makedirs(os.path.dirname(self.path))

    def write(self, lines: int, width: int = 60) -> bytes:
        data = b"".join(b"%04d " % n + b"x" * width + b"\n" for n in range(lines))
        with open(self.path, "wb") as stream:
            stream.write(data)
        return data

    def test_a_short_log_is_sent_whole(self):
        data = self.write(10)
        found = self.downloads.download(JOB_ID, TASK_ID, None, "Mozilla/5.0")
        self.assertEqual((found.body, found.gzipped, found.name),
                         (data, False, os.path.basename(self.path)))

    def test_a_long_log_is_cut_in_the_middle_at_a_line_start(self):
        data = self.write(400)
        self.assertGreater(len(data), WHOLE_BELOW)
        body = self.downloads.download(JOB_ID, TASK_ID, None, "Mozilla/5.0").body
        head, marker, tail = body.partition(b"\n\n[... ")
        self.assertTrue(data.startswith(head))
        tail = tail[tail.index(b"...]\n\n") + len(b"...]\n\n"):]
        self.assertTrue(data.endswith(tail))
        self.assertRegex(tail[:5].decode(), r"^\d{4} $")
        self.assertIn(b"bytes skipped", body)

    def test_wget_and_curl_get_a_long_log_whole(self):
        data = self.write(400)
        for agent in ("curl/8.5", "Wget/1.21"):
            self.assertEqual(self.downloads.download(JOB_ID, TASK_ID, None, agent).body, data)

    def test_the_tail_is_the_last_lines(self):
        data = self.write(400)
        tail = self.downloads.download(JOB_ID, TASK_ID, 2, "curl/8.5").body
        self.assertEqual(tail, b"".join(data.splitlines(keepends=True)[-2:]))

    def test_a_gzipped_log_is_sent_packed(self):
        with gzip.open(self.path + ".gz", "wb") as stream:
            stream.write(b"packed\n")
        found = self.downloads.download(JOB_ID, TASK_ID, 5, "curl/8.5")
        self.assertTrue(found.gzipped)
        self.assertEqual(gzip.decompress(found.body), b"packed\n")
        self.assertTrue(found.name.endswith(".gz"))

    def test_no_log_and_no_task_logs_are_unknown_tasks(self):
        with self.assertRaises(UnknownTask):
            self.downloads.download(JOB_ID, TASK_ID, None, "curl/8.5")
        with self.assertRaises(UnknownTask):
            LogDownloads(None).download(JOB_ID, TASK_ID, None, "curl/8.5")
