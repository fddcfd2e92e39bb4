"""`twistd flamenco-manager` as a subprocess: --version, config errors, start-up failures,
TLS. (`--cleanslate` and `--purgequeue`: tests/test_maintenance.py.)"""

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.child_process import run_python


def twistd(testcase, *args, stdin=b""):
    """Run `twistd --nodaemon --pidfile= flamenco-manager ARGS`; fires (exit code, out, err).

    A process still running when the test ends (it failed or timed out) is killed.
    """
    return run_python(testcase, "-c", "from twisted.scripts.twistd import run; run()",
                      "--nodaemon", "--pidfile=", "flamenco-manager", *args, stdin=stdin)


class CommandLineTests(TestCase):
    async def test_version(self):
        code, out, _ = await twistd(self, "--version")
        self.assertEqual((code, out.strip()), (0, "flamenco-manager 2.1.0"))

    async def test_config_error_is_one_line_naming_the_key(self):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write("task_update_push_max_count: -3\n")
        code, _, err = await twistd(self, "--config", path)
        self.assertNotEqual(code, 0)
        self.assertEqual(err.strip().splitlines(),
                         ["flamenco-manager: task_update_push_max_count: "
                          "must be more than zero, not -3"])

    async def test_missing_config_file(self):
        code, _, err = await twistd(self, "--config", "/nonexistent/flamenco.yaml")
        self.assertNotEqual(code, 0)
        self.assertIn("cannot read configuration file /nonexistent/flamenco.yaml", err)


def _self_signed(folder: str) -> tuple[str, str]:
    """A throw-away key and certificate for localhost, as PEM files."""
    from datetime import datetime, timedelta, timezone

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_path, cert_path = os.path.join(folder, "key.pem"), os.path.join(folder, "cert.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class TLSTests(TestCase):
    async def test_workers_port_speaks_https_when_key_and_certificate_are_set(self):
        import ssl
        import urllib.request

        from twisted.internet import task, threads

        from tests.manager_process import free_port

        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        key, cert = _self_signed(folder)
        port = free_port()
        config = os.path.join(folder, "manager.yaml")
        with open(config, "w") as f:
            f.write(f"listen: 127.0.0.1:{port}\ndatabase_url: sqlite:{folder}/m.sqlite\n"
                    f"tlskey: {key}\ntlscert: {cert}\n")
        ended = twistd(self, "--config", config)
        context = ssl.create_default_context(cafile=cert)
        context.check_hostname = False

        def get_status():
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/", context=context,
                                        timeout=2) as response:
                return response.status, response.read()

        for _ in range(200):
            self.assertFalse(ended.called, "the Manager exited")
            try:
                code, body = await threads.deferToThread(get_status)
                break
            except OSError:
                await task.deferLater(reactor, 0.1, lambda: None)
        else:
            self.fail("no HTTPS answer within 20 s")
        self.assertEqual(code, 200)
        self.assertIn(b'"nr_of_tasks": 0', body)


class StartupFailureTests(TestCase):
    """Each failure: exactly one line on standard error naming the setting, exit status 1."""

    def write_config(self, text: str) -> str:
        from tests.manager_process import free_port

        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        path = os.path.join(self.folder, "manager.yaml")
        with open(path, "w") as f:
            f.write(f"listen: 127.0.0.1:{free_port()}\n"
                    f"database_url: sqlite:{self.folder}/m.sqlite\n" + text)
        return path

    async def assert_fails_with(self, config: str, line: str):
        code, out, err = await twistd(self, "--config", config)
        self.assertEqual((code, err.splitlines()), (1, [line]), out)
        self.assertNotIn("Traceback", out)

    async def test_port_in_use(self):
        import socket

        from tests.manager_process import free_port

        port = free_port()
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        config = self.write_config(f"listen: 127.0.0.1:{port}\n")
        await self.assert_fails_with(
            config, f"flamenco-manager: listen: cannot listen on 127.0.0.1:{port}: "
                    "Address already in use")

    async def test_tls_key_missing(self):
        config = self.write_config("tlskey: /nonexistent/key.pem\ntlscert: /nonexistent/cert.pem\n")
        await self.assert_fails_with(
            config, "flamenco-manager: tlskey: cannot read /nonexistent/key.pem: "
                    "No such file or directory")

    async def test_tls_certificate_unreadable(self):
        config = self.write_config("")
        key, _ = _self_signed(self.folder)
        with open(config, "a") as f:
            f.write(f"tlskey: {key}\ntlscert: {self.folder}\n")
        await self.assert_fails_with(
            config, f"flamenco-manager: tlscert: cannot read {self.folder}: Is a directory")

    async def test_tls_certificate_not_pem(self):
        config = self.write_config("")
        key, _ = _self_signed(self.folder)
        with open(config, "a") as f:
            f.write(f"tlskey: {key}\ntlscert: {config}\n")
        await self.assert_fails_with(
            config, f"flamenco-manager: tlscert: {config} is not a PEM certificate")

    async def test_tls_key_not_matching_the_certificate(self):
        config = self.write_config("")
        other = os.path.join(self.folder, "other")
        os.makedirs(other)
        key, _ = _self_signed(other)
        _, cert = _self_signed(self.folder)
        with open(config, "a") as f:
            f.write(f"tlskey: {key}\ntlscert: {cert}\n")
        await self.assert_fails_with(
            config, f"flamenco-manager: tlskey/tlscert: the key in {key} does not match the "
                    f"certificate in {cert}")

    async def test_database_path_unopenable(self):
        config = self.write_config("database_url: sqlite:/nonexistent-dir/m.sqlite\n")
        await self.assert_fails_with(
            config, "flamenco-manager: database_url: cannot open sqlite:/nonexistent-dir/m.sqlite:"
                    " unable to open database file")

    async def test_database_file_is_not_a_database(self):
        config = self.write_config("")
        with open(config, "a") as f:
            f.write(f"database_url: sqlite:{config}\n")
        await self.assert_fails_with(
            config, f"flamenco-manager: database_url: cannot open sqlite:{config}: "
                    "file is not a database")

    async def test_mongodb_unreachable_past_the_startup_deadline(self):
        from tests.manager_process import free_port

        port = free_port()  # closed: nothing listens there
        config = self.write_config(f"database_url: mongodb://127.0.0.1:{port}/fm\n"
                                   "database_startup_timeout: 1s\n")
        await self.assert_fails_with(
            config, f"flamenco-manager: database_url: mongodb://127.0.0.1:{port}/fm did not open "
                    "within database_startup_timeout_seconds (1 s)")
