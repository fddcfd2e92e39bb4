"""The real `twistd flamenco-manager` as a child process, for end-to-end tests and benchmarks.

    manager = ManagerProcess({"task_timeout_grace_seconds": 0}, workdir)
    await manager.start()          # returns once `GET /` answers 200
    ... talk HTTP to manager.url ...
    await manager.kill()           # SIGKILL, like `kill -9`
    await manager.start()          # same port, same database
    await manager.stop()           # SIGTERM, then waits for the exit

`listen` (a free loopback port) and `database_url` (a SQLite file in `workdir`) are filled in
unless the configuration names them. The child's output goes to `workdir/manager-N.log`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import treq
import yaml
from twisted.internet import defer, task
from twisted.web.client import Agent, HTTPConnectionPool

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWISTD = "from twisted.scripts.twistd import run; run()"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ManagerProcessError(Exception):
    pass


class ManagerProcess:
    def __init__(self, config: dict, workdir: str, *, start_timeout: float = 20.0,
                 verbose: bool = True, args: tuple[str, ...] = (), reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.config = dict(config)
        self.config.setdefault("listen", f"127.0.0.1:{free_port()}")
        self.config.setdefault(
            "database_url", "sqlite:" + os.path.join(self.workdir, "flamenco-manager.sqlite"))
        self.port = int(str(self.config["listen"]).rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}/"
        self.config_path = os.path.join(self.workdir, "flamenco-manager.yaml")
        self.start_timeout = start_timeout
        self.verbose = verbose
        self.args = tuple(args)
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.log_path = ""

    @property
    def sqlite_path(self) -> str | None:
        url = self.config["database_url"]
        return url[len("sqlite:"):] if url.startswith("sqlite:") else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        args = [sys.executable, "-c", TWISTD, "--nodaemon", "--pidfile=", "flamenco-manager",
                "--config", self.config_path]
        if self.verbose:
            args.append("--verbose")
        return args + list(self.args)

    async def start(self) -> None:
        """Start the process and wait until `GET /` answers 200 (the store is open)."""
        if self.running:
            raise ManagerProcessError("the Manager is already running")
        with open(self.config_path, "w", encoding="utf-8") as stream:
            yaml.safe_dump(self.config, stream)
        self.starts += 1
        self.log_path = os.path.join(self.workdir, f"manager-{self.starts}.log")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [REPO_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        with open(self.log_path, "wb") as output:
            self.process = subprocess.Popen(
                self.command(), cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT,
            )
        try:
            await self._wait_until_ready()
        except BaseException:
            await self.kill()
            raise

    async def _wait_until_ready(self) -> None:
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        agent = Agent(self.reactor, pool=pool)
        deadline = self.reactor.seconds() + self.start_timeout
        try:
            while True:
                if self.process.poll() is not None:
                    raise ManagerProcessError(
                        f"the Manager exited with {self.process.returncode}:\n{self.output()}")
                try:
                    response = await treq.get(self.url, agent=agent).addTimeout(5, self.reactor)
                    await response.content()
                    if response.code == 200:
                        return
                except Exception:
                    pass
                if self.reactor.seconds() > deadline:
                    raise ManagerProcessError(
                        f"the Manager did not answer GET / within {self.start_timeout} s:\n"
                        f"{self.output()}")
                await task.deferLater(self.reactor, 0.05, lambda: None)
        finally:
            await pool.closeCachedConnections()

    def output(self) -> str:
        """What the current (or last) process wrote so far."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as stream:
            return stream.read()

    async def _wait_for_exit(self, timeout: float) -> bool:
        deadline = self.reactor.seconds() + timeout
        while self.process.poll() is None:
            if self.reactor.seconds() > deadline:
                return False
            await task.deferLater(self.reactor, 0.02, lambda: None)
        return True

    async def kill(self) -> None:
        """SIGKILL (like `kill -9`) and wait until the process is gone."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            await self._wait_for_exit(30)

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a clean shutdown); SIGKILL if it has not exited within `timeout`."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            if not await self._wait_for_exit(timeout):
                await self.kill()
        return self.process.returncode


def stop_at_cleanup(testcase, manager: ManagerProcess) -> None:
    """Make sure a trial test leaves no Manager process behind."""
    testcase.addCleanup(lambda: defer.ensureDeferred(manager.stop()))
