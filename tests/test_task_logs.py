"""Task log files (PROTOCOL §6.7, §3.13): exactly once, rotation, serving, upstream form."""

import gzip
import os

from twisted.trial.unittest import TestCase

from flamenco.documents import TaskUpdate
from flamenco.task_logs import log_tail
from flamenco.upstream.log_upload import upstream_form
from tests.factories import T0, task_doc
from tests.inprocess import InProcessManager


class LogFarm:
    def __init__(self, testcase, **config):
        self.root = os.path.abspath(testcase.mktemp())
        self.m = InProcessManager(testcase, task_logs_path=self.root, **config)
        self.doc = task_doc()

    async def start(self):
        await self.m.start()
        await self.m.store.store_server_tasks([self.doc], self.m.manager.updates.now())
        self.worker = await self.m.register(generation="2.x")
        response = await self.m.request("POST", "/task", auth=self.worker)
        assert response.code == 200
        return self

    @property
    def path(self):
        return self.m.manager.task_logs.path(self.doc["job"], self.doc["_id"])

    async def send(self, **body):
        response = await self.m.request("POST", f"/tasks/{self.doc['_id']}/update",
                                        auth=self.worker, json_body=body)
        assert response.code == 204, response.body
        return response

    def text(self):
        with open(self.path, encoding="utf-8") as stream:
            return stream.read()


class LogFileTests(TestCase):
    async def test_every_update_is_appended_once_in_order(self):
        farm = await LogFarm(self).start()
        job = farm.doc["job"]
        self.assertEqual(farm.path, os.path.join(farm.root, f"job-{job[:4]}", job,
                                                 f"task-{farm.doc['_id']}.txt"))
        await farm.send(task_status="active", log="line 1\nline 2")
        await farm.send(log="line 3\n")
        lines = farm.text().splitlines()
        self.assertIn("Manager assigned task", lines[0])
        self.assertEqual(lines[1:], ["line 1", "line 2", "line 3"])

    async def test_a_resent_update_is_accepted_once(self):
        farm = await LogFarm(self).start()
        body = {"task_status": "active", "activity": "rendering", "log": "frame 1 done"}
        await farm.send(**body)
        queued = await farm.m.store.count_queued_updates()
        await farm.send(**body)  # the worker did not get our 204 and sends it again
        self.assertEqual(farm.text().count("frame 1 done"), 1)
        self.assertEqual(await farm.m.store.count_queued_updates(), queued)
        await farm.send(log="frame 2 done")
        await farm.send(**body)  # not the last one: a new update (workers never do this)
        self.assertEqual(farm.text().count("frame 1 done"), 2)

    async def test_what_an_interrupted_attempt_left_in_the_file_is_cut_off(self):
        farm = await LogFarm(self).start()
        await farm.send(log="accepted")
        with open(farm.path, "ab") as stream:  # appended, then killed before the update was
            stream.write(b"half an upd")       # queued: the worker got no 204
        await farm.send(log="half an update")  # ... and sends it again
        self.assertTrue(farm.text().endswith("accepted\nhalf an update\n"))
        self.assertEqual(farm.text().count("half an upd"), 1)

    async def test_a_log_without_a_known_job_gets_no_file(self):
        farm = await LogFarm(self).start()
        await farm.m.manager.updates.queue("5a1f0e229f1b2c0d4e5f6a99", log="unknown task")
        self.assertEqual(os.listdir(farm.root), [f"job-{farm.doc['job'][:4]}"])

    async def test_handing_the_task_out_again_rotates_the_log(self):
        farm = await LogFarm(self).start()
        await farm.send(log="first run")
        for run in ("second run", "third run"):
            response = await farm.m.request("POST", f"/tasks/{farm.doc['_id']}/return",
                                            auth=farm.worker)
            self.assertEqual(response.code, 204)
            self.assertEqual((await farm.m.request("POST", "/task", auth=farm.worker)).code,
                             200)
            await farm.send(log=run)
        self.assertNotIn("second run", farm.text())
        self.assertIn("third run", farm.text())
        await farm.m.manager.task_logs.when_compressed()
        with gzip.open(farm.path + ".1.gz", "rt") as stream:
            self.assertIn("second run", stream.read())
        with gzip.open(farm.path + ".2.gz", "rt") as stream:
            first = stream.read()
        self.assertIn("first run", first)
        self.assertIn("re-queued task", first)


class LogEndpointTests(TestCase):
    async def test_logfile_whole_tail_and_errors(self):
        farm = await LogFarm(self).start()
        await farm.send(log="\n".join(f"line {n}" for n in range(1, 6)))
        url = f"/logfile/{farm.doc['job']}/{farm.doc['_id']}"
        whole = await farm.m.request("GET", url)
        self.assertEqual(whole.code, 200)
        self.assertEqual(whole.headers.getRawHeaders(b"content-type"),
                         [b"text/plain; charset=utf-8"])
        self.assertTrue(whole.body.endswith(b"line 4\nline 5\n"))
        tail = await farm.m.request("GET", url + "?tail=2")
        self.assertEqual(tail.body, b"line 4\nline 5\n")
        self.assertEqual((await farm.m.request("GET", url + "?tail=0")).body, b"")
        self.assertEqual((await farm.m.request("GET", url + "?tail=x")).code, 400)
        other = f"/logfile/{farm.doc['job']}/5a1f0e229f1b2c0d4e5f6a99"
        missing = await farm.m.request("GET", other)
        self.assertEqual(missing.code, 404)
        self.assertIn("error", missing.json)
        self.assertEqual((await farm.m.request("GET", "/logfile/x/y")).code, 404)

    async def test_long_logs_are_cut_in_the_middle_except_for_curl(self):
        farm = await LogFarm(self).start()
        for n in range(400):
            await farm.send(log=f"{n:04d} " + "x" * 60)
        url = f"/logfile/{farm.doc['job']}/{farm.doc['_id']}"
        cut = await farm.m.request("GET", url, headers={b"User-Agent": b"Mozilla/5.0"})
        self.assertIn(b"bytes skipped", cut.body)
        self.assertIn(b"0399 ", cut.body)
        self.assertLess(len(cut.body), 16 * 1024)
        whole = await farm.m.request("GET", url, headers={b"User-Agent": b"curl/8.5"})
        self.assertNotIn(b"bytes skipped", whole.body)
        self.assertEqual(whole.body.count(b"\n0"), 400)

    async def test_a_gzipped_log_is_sent_as_such(self):
        farm = await LogFarm(self).start()
        await farm.send(log="packed")
        data = await farm.m.manager.task_logs.gzipped_for_upload(farm.doc["job"],
                                                                 farm.doc["_id"])
        os.remove(farm.path)
        response = await farm.m.request("GET", f"/logfile/{farm.doc['job']}/{farm.doc['_id']}")
        self.assertEqual(response.code, 200)
        # (treq undoes the Content-Encoding: gzip by itself)
        self.assertEqual(response.body, gzip.decompress(data))
        self.assertIn(b"packed", response.body)
        self.assertEqual(response.headers.getRawHeaders(b"content-disposition"),
                         [f'attachment; filename="task-{farm.doc["_id"]}.txt.gz"'.encode()])


class UpstreamFormTests(TestCase):
    def test_log_tail_is_the_last_ten_trimmed_lines(self):
        text = "\n".join(f"line {n}" for n in range(15)) + "\n\n  "
        self.assertEqual(log_tail(text), "\n".join(f"line {n}" for n in range(5, 15)) + "\n")
        self.assertEqual(log_tail(" \n"), "")

    def test_2021_gets_log_tail_2017_the_full_log(self):
        update = TaskUpdate(id="5a1f10559f1b2c0d4e5f6a80", task_id="5a1f0e229f1b2c0d4e5f6a73",
                            received_on_manager=T0, log="a\nb", task_status="soft-failed",
                            failed_by_workers=[{"id": "5a1f0d119f1b2c0d4e5f6a71",
                                                "identifier": "w"}])
        for_2021 = upstream_form(update, send_log_tail=True, server_2017=False)
        self.assertEqual((for_2021.get("log"), for_2021["log_tail"]), (None, "a\nb\n"))
        self.assertEqual(len(for_2021["failed_by_workers"]), 1)
        for_2017 = upstream_form(update, send_log_tail=False, server_2017=True)
        self.assertEqual((for_2017["log"], "log_tail" in for_2017), ("a\nb", False))
        self.assertNotIn("failed_by_workers", for_2017)
