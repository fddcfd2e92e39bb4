"""Where the MongoDB tests find a server, and fresh databases on it.

`FLAMENCO_TEST_MONGO_URL` (set by `eval "$(bash tests/mongo-server/start.sh)"`) names the
server. Without it the MongoDB tests skip, unless `FLAMENCO_REQUIRE_MONGO=1` (CI), when they
fail instead.
"""

import os
import uuid

from twisted.trial.unittest import SkipTest

from flamenco.store.mongo import MongoStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_SCRIPT = os.path.join(ROOT, "tests", "mongo-server", "start.sh")


def server_url() -> str:
    """The test server's base URL (`mongodb://host:port/`), or skip / fail."""
    url = os.environ.get("FLAMENCO_TEST_MONGO_URL", "").strip()
    if url:
        return url
    message = ("no MongoDB test server: FLAMENCO_TEST_MONGO_URL is unset "
               "(run: eval \"$(bash tests/mongo-server/start.sh)\")")
    if os.environ.get("FLAMENCO_REQUIRE_MONGO") == "1":
        raise AssertionError(message + "; FLAMENCO_REQUIRE_MONGO=1 forbids skipping")
    raise SkipTest(message)


def database_url(base: str, name: str) -> str:
    base = base.split("?", 1)[0].rstrip("/")
    return f"{base}/{name}"


def fresh_name(prefix: str = "fmtest") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


async def fresh_store(case, base: str | None = None, name: str | None = None, **kwargs):
    """An opened MongoStore on a new database, dropped and closed at the end of the test."""
    base = base or server_url()
    name = name or fresh_name()
    store = MongoStore(database_url(base, name), **kwargs)
    await store.open()

    async def drop():
        pool = store._pool
        if pool is not None:
            try:
                await pool.drop_database(name)
            finally:
                await store.close()

    case.addCleanup(drop)
    return store


class OwnServer:
    """A server of the test's own, started by `tests/mongo-server/start.sh`, that the test can
    kill and start again on the same port with the same data (connection-loss tests).

    start.sh has no option to reuse a port, so `restart()` runs the server's own command line
    (read from /proc before the kill) again; the relaunched process is this test's child."""

    def __init__(self):
        self.url = self.pid = self.dir = None
        self.argv: list[str] = []
        self._child = None

    async def start(self) -> "OwnServer":
        from twisted.internet import utils

        env = {key: value for key, value in os.environ.items()
               if not key.startswith("FLAMENCO_TEST_MONGO_")}
        out, err, code = await utils.getProcessOutputAndValue(
            "/bin/bash", [START_SCRIPT], env=env, path=ROOT)
        if code == 3:
            message = "no MongoDB server can be had: " + err.decode(errors="replace").strip()
            if os.environ.get("FLAMENCO_REQUIRE_MONGO") == "1":
                raise AssertionError(message)
            raise SkipTest(message)
        if code != 0:
            raise AssertionError(f"start.sh failed ({code}): {err.decode(errors='replace')}")
        exports = dict(
            line[len("export "):].split("=", 1)
            for line in out.decode().splitlines() if line.startswith("export ")
        )
        self.url = exports["FLAMENCO_TEST_MONGO_URL"]
        self.pid = int(exports["FLAMENCO_TEST_MONGO_PID"])
        self.dir = exports["FLAMENCO_TEST_MONGO_DIR"]
        with open(f"/proc/{self.pid}/cmdline", "rb") as cmdline:
            self.argv = [part.decode() for part in cmdline.read().split(b"\0") if part]
        return self

    async def kill(self) -> None:
        """SIGKILL, as a crash would, and wait until the process is gone."""
        import signal

        from twisted.internet import reactor, task

        os.kill(self.pid, signal.SIGKILL)
        for _ in range(200):
            if self._child is not None:
                if self._child.poll() is not None:
                    return
            elif not _alive(self.pid):
                return
            await task.deferLater(reactor, 0.02, lambda: None)
        raise AssertionError(f"server pid {self.pid} survived SIGKILL")

    def restart(self) -> None:
        import subprocess

        log_file = open(os.path.join(self.dir, "restarted.log"), "ab")
        try:
            self._child = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                env=dict(os.environ, FERRETDB_TELEMETRY="disable"))
        finally:
            log_file.close()
        self.pid = self._child.pid

    async def stop(self) -> None:
        from twisted.internet import utils

        if self.pid is None:
            return
        if self._child is not None and self._child.poll() is None:
            await self.kill()
        env = dict(os.environ, FLAMENCO_TEST_MONGO_PID=str(self.pid),
                   FLAMENCO_TEST_MONGO_DIR=self.dir)
        await utils.getProcessOutputAndValue("/bin/bash", [
            os.path.join(ROOT, "tests", "mongo-server", "stop.sh")], env=env, path=ROOT)
        self.pid = None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
