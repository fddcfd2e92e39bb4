"""Who may use the operator API, dashboard and events: loopback only, or log in (real HTTP)."""

import json
import os
import socket

import bcrypt
from twisted.internet import reactor, threads
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.server import Site

from flamenco.operator_login import hash_password
from flamenco.web.access import is_local_peer
from tests.inprocess import InProcessManager, Response
from tests.test_tap import _self_signed, twistd

PASSWORD = "correct horse"
OPERATOR_PATHS = ("/api/workers", "/api/farm", "/as-json", "/app/", "/events")


def non_loopback_address() -> str:
    """An IPv4 address of this machine that is not loopback, or skip."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))  # no packet is sent; picks the outgoing interface
        address = probe.getsockname()[0]
    except OSError:
        address = ""
    finally:
        probe.close()
    if not address or is_local_peer(address):
        raise SkipTest("this machine has no non-loopback IPv4 address to test from")
    return address


async def no_redirects(m, method: str, path: str, *, body=None, headers=None) -> Response:
    """One request, with a redirect answered as such (treq would follow it)."""
    response = await m.http.request(method, m.url + path, data=body, headers=headers,
                                    allow_redirects=False)
    return Response(response.code, response.headers, await response.content())


def cookie_of(response) -> str:
    return (response.headers.getRawHeaders("set-cookie") or [""])[0]


class LocalPeerTests(TestCase):
    def test_loopback_addresses_are_local(self):
        for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
            self.assertTrue(is_local_peer(host), host)

    def test_everything_else_is_remote(self):
        for host in ("192.0.2.2", "10.0.0.21", "::ffff:10.0.0.1", "fd00::2", "", "localhost",
                     "not an address"):
            self.assertFalse(is_local_peer(host), host)


class NoPasswordTests(TestCase):
    async def test_loopback_gets_the_operator_area(self):
        m = await InProcessManager(self).start()
        for path in OPERATOR_PATHS[:4]:
            self.assertEqual((await m.request("GET", path)).code, 200, path)

    async def test_a_non_loopback_peer_gets_403_but_the_worker_endpoints(self):
        address = non_loopback_address()
        m = await InProcessManager(self).start()
        port = reactor.listenTCP(0, Site(m.manager.resource), interface=address)
        self.addCleanup(port.stopListening)
        base = f"http://{address}:{port.getHost().port}"
        for path in OPERATOR_PATHS:
            response = await m.http.get(base + path)
            body = await response.content()
            self.assertEqual(response.code, 403, path)
            self.assertIn("own machine", json.loads(body)["error"])
        status = await m.http.get(base + "/")
        self.assertEqual(status.code, 200)
        await status.content()

    async def test_cross_origin_post_is_refused_even_from_loopback(self):
        m = await InProcessManager(self).start()
        worker_id, _ = await m.register()
        refused = await m.request("POST", f"/api/workers/{worker_id}/actions",
                                  json_body={"action": "sleep"},
                                  headers={b"Origin": b"http://evil.example"})
        self.assertEqual(refused.code, 403)
        self.assertEqual((await m.store.get_worker(worker_id)).status_requested, "")
        same = await m.request("POST", f"/api/workers/{worker_id}/actions",
                               json_body={"action": "sleep"},
                               headers={b"Origin": m.url.encode()})
        self.assertEqual(same.code, 200)


    async def test_a_foreign_page_cannot_use_the_2x_operator_endpoints(self):
        m = await InProcessManager(self).start()
        worker_id, _ = await m.register()
        evil = {b"Origin": b"http://evil.example"}
        for path in (f"/worker-action/{worker_id}?action=set-status&status=asleep", "/kick",
                     "/timeout"):
            self.assertEqual((await m.request("POST", path, headers=evil)).code, 403, path)
        self.assertEqual((await m.store.get_worker(worker_id)).status_requested, "")
        plain = await m.request("POST",
                                f"/worker-action/{worker_id}?action=set-status&status=asleep")
        self.assertEqual(plain.code, 204, "curl and scripts send no Origin")


class PasswordTests(TestCase):
    async def start(self, **config):
        m = InProcessManager(self, admin_password=hash_password(PASSWORD, rounds=4), **config)
        return await m.start()

    async def log_in(self, m, password=PASSWORD, headers=None):
        return await m.request("POST", "/login", json_body={"password": password},
                               headers=headers)

    async def test_without_a_session_api_is_401_and_dashboard_redirects_to_login(self):
        m = await self.start()
        for path in ("/api/workers", "/as-json", "/events"):
            response = await m.request("GET", path)
            self.assertEqual(response.code, 401, path)
            self.assertIn("log in", response.json["error"])
        app = await no_redirects(m, "GET", "/app/")
        self.assertEqual((app.code, app.headers.getRawHeaders("location")), (302, ["/login"]))
        page = await m.request("GET", "/login")
        self.assertEqual(page.code, 200)
        self.assertIn(b'type="password"', page.body)

    async def test_login_sets_a_strict_http_only_cookie_that_opens_the_api(self):
        m = await self.start()
        self.assertEqual((await self.log_in(m, "wrong")).code, 401)
        response = await self.log_in(m)
        self.assertEqual(response.code, 200)
        cookie = cookie_of(response)
        self.assertTrue(cookie.startswith("flamenco_session="))
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=strict", cookie)
        self.assertNotIn("Secure", cookie, "plain HTTP: a Secure cookie would never come back")
        session = cookie.split(";")[0].encode()
        workers = await m.request("GET", "/api/workers", headers={b"Cookie": session})
        self.assertEqual(workers.code, 200)
        bogus = await m.request("GET", "/api/workers", headers={b"Cookie": b"flamenco_session=x"})
        self.assertEqual(bogus.code, 401)
        out = await no_redirects(m, "POST", "/logout", headers={b"Cookie": session})
        self.assertEqual(out.code, 303)
        again = await m.request("GET", "/api/workers", headers={b"Cookie": session})
        self.assertEqual(again.code, 401)

    async def test_a_form_login_redirects_to_the_dashboard(self):
        m = await self.start()
        response = await no_redirects(
            m, "POST", "/login", body=b"password=correct+horse",
            headers={b"Content-Type": b"application/x-www-form-urlencoded"})
        self.assertEqual((response.code, response.headers.getRawHeaders("location")),
                         (303, ["/app/"]))
        session = cookie_of(response).split(";")[0].encode()
        app = await m.request("GET", "/app/", headers={b"Cookie": session})
        self.assertEqual(app.code, 200)
        self.assertIn(b"<html", app.body.lower())

    async def test_a_session_works_from_any_address(self):
        address = non_loopback_address()
        m = await self.start()
        port = reactor.listenTCP(0, Site(m.manager.resource), interface=address)
        self.addCleanup(port.stopListening)
        base = f"http://{address}:{port.getHost().port}"
        response = await m.http.post(base + "/login", json={"password": PASSWORD})
        await response.content()
        session = cookie_of(response).split(";")[0].encode()
        workers = await m.http.get(base + "/api/workers", headers={b"Cookie": session})
        self.assertEqual(workers.code, 200)
        await workers.content()

    async def test_cross_origin_posts_are_refused_with_a_valid_session(self):
        m = await self.start()
        session = cookie_of(await self.log_in(m)).split(";")[0].encode()
        worker_id, _ = await m.register()
        refused = await m.request("POST", f"/api/workers/{worker_id}/actions",
                                  json_body={"action": "shutdown"},
                                  headers={b"Cookie": session, b"Origin": b"https://evil.example"})
        self.assertEqual(refused.code, 403)
        self.assertEqual((await m.store.get_worker(worker_id)).status_requested, "")
        login = await self.log_in(m, headers={b"Origin": b"http://evil.example"})
        self.assertEqual(login.code, 403)
        self.assertEqual(cookie_of(login), "")

    async def test_failed_logins_are_rate_limited_and_logged(self):
        m = await self.start()
        with capturedLogs() as events:
            for _ in range(5):
                self.assertEqual((await self.log_in(m, "guess")).code, 401)
            blocked = await self.log_in(m)
        self.assertEqual(blocked.code, 429)
        self.assertGreater(int(blocked.headers.getRawHeaders("retry-after")[0]), 0)
        self.assertEqual(cookie_of(blocked), "")
        messages = [formatEvent(event) for event in events]
        self.assertEqual(sum("failed operator login from 127.0.0.1" in t for t in messages), 5)
        m.clock.advance(61)
        self.assertEqual((await self.log_in(m)).code, 200)

    async def test_the_cookie_is_secure_under_tls(self):
        import ssl
        import urllib.request

        from twisted.internet.ssl import DefaultOpenSSLContextFactory

        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        key, cert = _self_signed(folder)
        m = await self.start(tlskey=key, tlscert=cert)
        port = reactor.listenSSL(0, Site(m.manager.resource),
                                 DefaultOpenSSLContextFactory(key, cert), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False

        def log_in():
            request = urllib.request.Request(
                f"https://127.0.0.1:{port.getHost().port}/login", method="POST",
                data=json.dumps({"password": PASSWORD}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, context=context, timeout=5) as response:
                return response.status, response.headers.get("Set-Cookie")

        code, cookie = await threads.deferToThread(log_in)
        self.assertEqual(code, 200)
        self.assertIn("Secure", cookie)
        self.assertIn("HttpOnly", cookie)


class HashPasswordTests(TestCase):
    async def test_hash_password_prints_a_bcrypt_hash_of_standard_input(self):
        code, out, _ = await twistd(self, "--hash-password", stdin=b"s3cret\n")
        self.assertEqual(code, 0)
        printed = out.strip()
        self.assertTrue(bcrypt.checkpw(b"s3cret", printed.encode()))

    def test_the_config_refuses_a_plain_password(self):
        from flamenco.config import ConfigError, parse_config

        with self.assertRaises(ConfigError) as caught:
            parse_config({"admin_password": "hunter2"})
        self.assertIn("admin_password", str(caught.exception))
        config, _ = parse_config({"admin_password": hash_password("x", rounds=4)})
        self.assertTrue(config.admin_password.startswith("$2b$"))
