"""Registration, authentication and sign-on/off over real HTTP."""

import time

import bcrypt
import jwt
from twisted.trial.unittest import TestCase

from flamenco import statuses
from tests.factories import task_doc
from tests.inprocess import InProcessManager

PSK = "farm-pre-shared-key-of-32-bytes-or-more"
REGISTRATION = {"secret": "q3J9Zx", "platform": "linux", "nickname": "render-01",
                "supported_job_types": ["sleep", "blender-render"]}


class RegistrationTests(TestCase):
    async def manager(self, **config):
        return await InProcessManager(self, **config).start()

    async def test_2_0_registration_echoes_job_types_and_hides_the_secret(self):
        m = await self.manager()
        response = await m.request("POST", "/register-worker", json_body=REGISTRATION)
        self.assertEqual(response.code, 200)
        doc = response.json
        self.assertEqual(
            {k: doc[k] for k in ("nickname", "platform", "status", "time_cost", "address")},
            {"nickname": "render-01", "platform": "linux", "status": "", "time_cost": 0,
             "address": "127.0.0.1"},
        )
        self.assertEqual(doc["supported_job_types"], ["sleep", "blender-render"])
        self.assertNotIn("secret", response.body.decode())
        worker = await m.store.get_worker(doc["_id"])
        self.assertTrue(bcrypt.checkpw(b"q3J9Zx", worker.secret_hash))
        self.assertFalse(worker.is_2x)

    async def test_2x_registration_uses_task_types(self):
        m = await self.manager()
        body = dict(REGISTRATION)
        del body["supported_job_types"]
        body["supported_task_types"] = ["exr-merge"]
        response = await m.request("POST", "/register-worker", json_body=body)
        self.assertEqual(response.json["supported_task_types"], ["exr-merge"])
        worker = await m.store.get_worker(response.json["_id"])
        self.assertEqual((worker.supported_types, worker.is_2x), (("exr-merge",), True))

    async def test_bad_registrations_are_refused_and_store_nothing(self):
        m = await self.manager()
        cases = [
            (b"{not json", "not valid JSON"),
            (b"[1, 2]", "must be a JSON object"),
            (b'{"platform": "linux", "nickname": "x"}', "'secret' is required"),
            (b'{"secret": 5, "platform": "linux", "nickname": "x"}', "'secret' must be a string"),
            (b'{"secret": "s", "platform": "linux", "nickname": "x",'
             b' "supported_job_types": "sleep"}',
             "list of strings"),
        ]
        for body, message in cases:
            response = await m.request("POST", "/register-worker", body=body)
            self.assertEqual(response.code, 400, body)
            self.assertIn(message, response.json["error"])
        self.assertEqual(await m.store.count_workers(), 0)

    async def test_registration_secret_requires_a_valid_hs256_token(self):
        m = await self.manager(worker_registration_secret=PSK)
        missing = await m.request("POST", "/register-worker", json_body=REGISTRATION)
        self.assertEqual((missing.code, missing.json["error"]),
                         (403, "Missing Bearer token for registration"))
        wrong = jwt.encode({"iat": time.time(), "exp": time.time() + 900}, PSK + "-other", "HS256")
        bad = await m.request("POST", "/register-worker", json_body=REGISTRATION,
                              headers={b"Authorization": f"Bearer {wrong}".encode()})
        self.assertEqual((bad.code, bad.json["error"]),
                         (403, "Invalid Bearer token for registration"))
        self.assertEqual(await m.store.count_workers(), 0)
        good = jwt.encode({"iat": time.time(), "exp": time.time() + 900}, PSK, "HS256")
        ok = await m.request("POST", "/register-worker", json_body=REGISTRATION,
                             headers={b"Authorization": f"Bearer {good}".encode()})
        self.assertEqual(ok.code, 200)


class AuthenticationTests(TestCase):
    async def test_every_credential_failure_is_401_with_a_challenge(self):
        m = await InProcessManager(self).start()
        worker_id, secret = await m.register()
        cases = [
            None,
            ("not-an-object-id", secret),
            ("5a1f0d119f1b2c0d4e5f6a71", secret),
            (worker_id, "wrong"),
        ]
        for auth in cases:
            for method, path in [("POST", "/task"), ("GET", "/may-i-run/nonsense"),
                                 ("POST", "/tasks/5a1f0d119f1b2c0d4e5f6a71/update")]:
                response = await m.request(method, path, auth=auth, json_body={})
                self.assertEqual(response.code, 401, (auth, path))
                self.assertEqual(response.headers.getRawHeaders("WWW-Authenticate"),
                                 ['Basic realm="Flamenco Manager"'])
                self.assertEqual(response.json["error"], "401 Unauthorized")
        self.assertEqual(await m.store.count_queued_updates(), 0)

    async def test_verified_secret_is_cached_but_a_wrong_one_still_fails(self):
        m = await InProcessManager(self).start()
        worker_id, secret = await m.register()
        for _ in range(3):
            self.assertEqual((await m.request("POST", "/task", auth=(worker_id, secret))).code, 204)
        self.assertEqual((await m.request("POST", "/task", auth=(worker_id, "x"))).code, 401)
        self.assertEqual((await m.request("POST", "/task", auth=(worker_id, secret))).code, 204)

    async def test_uppercase_worker_id_is_accepted(self):
        m = await InProcessManager(self).start()
        worker_id, secret = await m.register()
        response = await m.request("POST", "/task", auth=(worker_id.upper(), secret))
        self.assertEqual(response.code, 204)


class SignOnOffTests(TestCase):
    async def test_sign_on_updates_nickname_and_types(self):
        m = await InProcessManager(self).start()
        worker_id, secret = await m.register(generation="2.x", types=("sleep",))
        response = await m.request(
            "POST", "/sign-on", auth=(worker_id, secret),
            json_body={"supported_task_types": ["sleep", "exr-merge"], "nickname": "render-02"},
        )
        self.assertEqual(response.code, 204)
        worker = await m.store.get_worker(worker_id)
        self.assertEqual((worker.nickname, worker.supported_types, worker.status),
                         ("render-02", ("sleep", "exr-merge"), statuses.W_STARTING))
        bad = await m.request("POST", "/sign-on", auth=(worker_id, secret), body=b"{oops")
        self.assertEqual(bad.code, 400)

    async def test_sign_off_requeues_active_tasks_with_2_0_texts(self):
        m = await InProcessManager(self).start()
        doc = task_doc()
        await m.store.store_server_tasks([doc], m.manager.updates.now())
        worker_id, secret = await m.register(nickname="render-01")
        self.assertEqual((await m.request("POST", "/task", auth=(worker_id, secret))).code, 200)
        before = await m.store.count_queued_updates()
        response = await m.request("POST", "/sign-off", auth=(worker_id, secret))
        self.assertEqual(response.code, 204)
        queued = await m.store.queued_updates(10)
        self.assertEqual(len(queued), before + 1)
        requeue = queued[-1]
        self.assertEqual((requeue.task_status, requeue.worker), ("claimed-by-manager", "-"))
        self.assertEqual(requeue.activity,
                         "Re-queued task after worker 127.0.0.1 (render-01) signed off")
        self.assertIn(": Manager re-queued task after worker 127.0.0.1 (render-01) signed off",
                      requeue.log)
        self.assertEqual((await m.store.get_task(doc["_id"])).status, "claimed-by-manager")
        self.assertEqual((await m.store.get_worker(worker_id)).status, statuses.W_DOWN)

    async def test_sign_off_of_2x_worker_uses_unassign_texts_and_offline(self):
        m = await InProcessManager(self).start()
        await m.store.store_server_tasks([task_doc()], m.manager.updates.now())
        worker_id, secret = await m.register(generation="2.x")
        await m.request("POST", "/task", auth=(worker_id, secret))
        await m.request("POST", "/sign-off", auth=(worker_id, secret))
        requeue = (await m.store.queued_updates(10))[-1]
        self.assertEqual(
            requeue.activity,
            "Re-queued task after unassigning from worker 127.0.0.1 (render-01): worker signed off",
        )
        self.assertEqual((await m.store.get_worker(worker_id)).status, statuses.W_OFFLINE)

    async def test_sleeping_worker_is_sent_back_to_sleep_after_sign_off(self):
        m = await InProcessManager(self).start()
        worker_id, secret = await m.register(generation="2.x")
        await m.request("POST", "/ack-status-change/asleep", auth=(worker_id, secret))
        await m.request("POST", "/sign-off", auth=(worker_id, secret))
        worker = await m.store.get_worker(worker_id)
        self.assertEqual((worker.status, worker.status_requested, worker.lazy_status_request),
                         (statuses.W_OFFLINE, statuses.W_ASLEEP, False))


class DualStackTests(TestCase):
    async def test_ipv4_clients_of_an_ipv6_port_are_named_by_their_ipv4_address(self):
        from twisted.internet import reactor
        from twisted.web.server import Site

        m = InProcessManager(self)
        await m.start()
        port = reactor.listenTCP(0, Site(m.manager.resource), interface="::")
        self.addCleanup(port.stopListening)
        m.url = f"http://127.0.0.1:{port.getHost().port}"
        response = await m.request("POST", "/register-worker", json_body=REGISTRATION)
        self.assertEqual(response.json["address"], "127.0.0.1")


class SeenTests(TestCase):
    async def test_last_activity_is_written_at_most_every_few_seconds(self):
        m = await InProcessManager(self).start()
        auth = await m.register()
        await m.request("POST", "/task", auth=auth)
        first = (await m.store.get_worker(auth[0])).last_activity
        self.assertEqual(first, m.manager.updates.now())
        m.clock.advance(4)
        await m.request("POST", "/task", auth=auth)
        self.assertEqual((await m.store.get_worker(auth[0])).last_activity, first)
        m.clock.advance(1)
        await m.request("POST", "/task", auth=auth)
        self.assertEqual((await m.store.get_worker(auth[0])).last_activity,
                         m.manager.updates.now())

    async def test_a_short_worker_timeout_records_activity_more_often(self):
        # With a 1.5 s Worker timeout, 5 s of lag would time out Workers that are busy.
        m = await InProcessManager(self, active_worker_timeout_interval_seconds=1.5,
                                   active_task_timeout_interval_seconds=1.5).start()
        auth = await m.register()
        await m.request("POST", "/task", auth=auth)
        m.clock.advance(0.5)
        await m.request("POST", "/task", auth=auth)
        self.assertEqual((await m.store.get_worker(auth[0])).last_activity,
                         m.manager.updates.now())

    async def test_a_user_agent_of_flamenco_worker_marks_a_2x_worker(self):
        m = await InProcessManager(self).start()
        auth = await m.register(generation="2.0")
        await m.request("POST", "/task", auth=auth,
                        headers={b"User-Agent": b"Flamenco-Worker/2.5"})
        worker = await m.store.get_worker(auth[0])
        self.assertEqual((worker.is_2x, worker.software), (True, "Flamenco-Worker/2.5"))
