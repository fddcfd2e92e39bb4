"""Running a program of this checkout as a child process in a test: exit status and output."""

import os
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Collect(ProcessProtocol):
    def __init__(self, stdin: bytes | None):
        self.stdin = stdin  # None: the child's standard input is not a pipe of ours
        self.out = b""
        self.err = b""
        self.done: Deferred = Deferred()

    def connectionMade(self):
        if self.stdin is not None:
            self.transport.write(self.stdin)
            self.transport.closeStdin()

    def outReceived(self, data):
        self.out += data

    def errReceived(self, data):
        self.err += data

    def processEnded(self, reason):
        self.done.callback((reason.value.exitCode, self.out.decode(), self.err.decode()))


def run_python(testcase, *args: str, stdin: bytes | None = b"",
               child_fds: dict | None = None) -> Deferred:
    """`python ARGS` with this checkout on PYTHONPATH; fires (exit status, stdout, stderr).

    `stdin` is written to a pipe and closed; None leaves standard input to `child_fds`. A
    process still running when the test ends (it failed or timed out) is killed.
    """
    protocol = _Collect(stdin)
    env = dict(os.environ, PYTHONPATH=REPO)
    process = reactor.spawnProcess(protocol, sys.executable, [sys.executable, *args], env=env,
                                   path=REPO, childFDs=child_fds)

    def kill_if_running():
        if process.pid is not None:
            process.signalProcess("KILL")
            return protocol.done

    testcase.addCleanup(kill_if_running)
    return protocol.done
