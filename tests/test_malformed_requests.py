"""Each malformed request the fuzz run of issue 8 found answered 500 (or with an empty 400),
now a 4xx with a JSON error that changes nothing; and what goes upstream stays in range."""

from twisted.trial.unittest import TestCase

from flamenco.passwords import PREHASHED
from tests.factories import task_doc
from tests.inprocess import InProcessManager

REGISTRATION = b'{"secret": "s", "platform": "linux", "nickname": %s, "supported_job_types": ["sleep"]}'
ECHO = {"name": "echo", "settings": {"message": "hello"}}


class Farm:
    def __init__(self, testcase):
        self.testcase = testcase
        self.m = InProcessManager(testcase)

    async def start(self):
        await self.m.start()
        self.task = task_doc(commands=[ECHO, ECHO, ECHO])
        await self.m.store.store_server_tasks([self.task], self.m.manager.updates.now())
        self.auth = await self.m.register()
        assert (await self.m.request("POST", "/task", auth=self.auth)).code == 200
        return self

    async def snapshot(self):
        store = self.m.store
        return (await store.list_workers(), await store.queued_updates(1000),
                await store.get_task(self.task["_id"]))

    async def refused(self, method, path, body, *, auth=True, content_type=b"application/json",
                      code=400, message=""):
        before = await self.snapshot()
        response = await self.m.request(method, path, body=body,
                                        auth=self.auth if auth else None,
                                        headers={b"Content-Type": content_type})
        self.testcase.assertEqual(response.code, code, (path, body[:80], response.body[:200]))
        self.testcase.assertEqual(response.headers.getRawHeaders(b"content-type"),
                                  [b"application/json"])
        self.testcase.assertIn(message, response.json["error"])
        self.testcase.assertEqual(await self.snapshot(), before, (path, body[:80]))
        return response

    def update_path(self):
        return f"/tasks/{self.task['_id']}/update"


class WhyCasesTests(TestCase):
    async def test_deep_nesting_is_400(self):
        farm = await Farm(self).start()
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
                     b'{"log": "x", "metrics": ' + b"[" * 40 + b"]" * 40 + b"}"):
            await farm.refused("POST", farm.update_path(), body, message="nested deeper")
            await farm.refused("POST", "/register-worker", body, auth=False,
                               message="nested deeper")

    async def test_nan_and_infinity_are_400(self):
        farm = await Farm(self).start()
        for constant in (b"NaN", b"Infinity", b"-Infinity"):
            for field in (b"current_command_idx", b"task_progress_percentage",
                          b"command_progress_percentage"):
                await farm.refused("POST", farm.update_path(), b'{"%s": %s}' % (field, constant),
                                   message="is not a JSON number")
        await farm.refused("POST", farm.update_path(), b'{"current_command_idx": 1e999}',
                           message="too large to be finite")

    async def test_integers_beyond_64_bits_are_400_before_conversion(self):
        farm = await Farm(self).start()
        for digits in (b"9" * 5000, b"1" * 130, b"9223372036854775808", str(10**100).encode()):
            await farm.refused("POST", farm.update_path(),
                               b'{"current_command_idx": %s}' % digits, message="64-bit range")
            await farm.refused("POST", farm.update_path(),
                               b'{"metrics": {"timing": {"render": %s}}}' % digits,
                               message="64-bit range")
        await farm.refused("POST", farm.update_path(), b'{"current_command_idx": 1e300}',
                           message="must be in 0..")

    async def test_lone_surrogates_and_invalid_utf8_are_400(self):
        farm = await Farm(self).start()
        await farm.refused("POST", "/register-worker", REGISTRATION % b'"\\ud800"', auth=False,
                           message="lone UTF-16 surrogate")
        await farm.refused("POST", farm.update_path(), b'{"log": "a\\udfffb"}',
                           message="lone UTF-16 surrogate")
        await farm.refused("POST", farm.update_path(), b'{"\\ud800": 1}',
                           message="lone UTF-16 surrogate")
        await farm.refused("POST", farm.update_path(), b'{"log": "\xed\xa0\x80"}',
                           message="not valid UTF-8")

    async def test_multipart_and_other_content_types_get_a_json_error(self):
        farm = await Farm(self).start()
        boundary = b"----fuzz"
        multipart = (b"------fuzz\r\nContent-Disposition: form-data; name=\"log\"\r\n\r\nx\r\n"
                     b"------fuzz--\r\n")
        for content_type, body in (
            (b"multipart/form-data; boundary=" + boundary, multipart),
            (b"multipart/form-data; boundary=" + boundary, b"not multipart at all"),
            (b"multipart/form-data", b"--x"),
            (b"application/x-www-form-urlencoded", b"log=x&task_status=active"),
        ):
            await farm.refused("POST", farm.update_path(), body, content_type=content_type,
                               message="not valid JSON")
            await farm.refused("POST", "/register-worker", body, content_type=content_type,
                               auth=False, message="not valid JSON")

    async def test_json_under_any_content_type_is_read(self):
        farm = await Farm(self).start()
        response = await farm.m.request("POST", farm.update_path(), auth=farm.auth,
                                        body=b'{"activity": "rendering"}',
                                        headers={b"Content-Type": b"text/plain"})
        self.assertEqual(response.code, 204)


class LongSecretTests(TestCase):
    """Secrets over bcrypt's 72 bytes are pre-hashed, not refused (see flamenco/passwords.py)."""

    async def test_an_80_byte_secret_registers_and_authenticates(self):
        m = await InProcessManager(self).start()
        worker_id, secret = await m.register(secret="k" * 80)
        stored = await m.store.get_worker(worker_id)
        self.assertTrue(stored.secret_hash.startswith(PREHASHED))
        self.assertEqual((await m.request("POST", "/task", auth=(worker_id, secret))).code, 204)
        m.manager.workers.credentials.forget(worker_id)
        wrong = await m.request("POST", "/task", auth=(worker_id, "k" * 79 + "j"))
        self.assertEqual((wrong.code, wrong.json["error"]), (401, "401 Unauthorized"))

    async def test_existing_plain_bcrypt_secrets_keep_working(self):
        import bcrypt

        m = await InProcessManager(self).start()
        worker_id, _ = await m.register()
        await m.store.update_worker(worker_id, secret_hash=bcrypt.hashpw(b"old", bcrypt.gensalt(4)))
        m.manager.workers.credentials.forget(worker_id)
        self.assertEqual((await m.request("POST", "/task", auth=(worker_id, "old"))).code, 204)
        self.assertEqual((await m.request("POST", "/task", auth=(worker_id, "o1d"))).code, 401)


class UpstreamLimitTests(TestCase):
    async def sent(self, farm, body):
        response = await farm.m.request("POST", farm.update_path(), auth=farm.auth, json_body=body)
        self.assertEqual(response.code, 204, response.body)
        return (await farm.m.store.queued_updates(1000))[-1].to_upstream()

    async def test_command_index_beyond_the_tasks_commands_goes_up_as_zero(self):
        farm = await Farm(self).start()
        self.assertEqual((await self.sent(farm, {"current_command_idx": 2}))["current_command_idx"], 2)
        doc = await self.sent(farm, {"current_command_idx": 3, "activity": "still here"})
        self.assertEqual((doc["current_command_idx"], doc["current_command_index"],
                          doc["activity"]), (0, 0, "still here"))

    async def test_metrics_that_are_not_bounded_finite_numbers_are_dropped(self):
        farm = await Farm(self).start()
        good = {"timing": {"render": 1.5, "upload": 2}}
        self.assertEqual((await self.sent(farm, {"metrics": good}))["metrics"], good)
        for bad in ({"timing": {"render": "fast"}}, {"timing": {"render": True}},
                    {"timing": [1.0]}, {"n": {str(i): i for i in range(300)}},
                    {"a": {"b": {"c": {"d": {"e": 1}}}}}, {"k" * 300: 1}):
            doc = await self.sent(farm, {"metrics": bad, "log": "kept"})
            self.assertNotIn("metrics", doc)
            self.assertEqual(doc["log"], "kept")
