"""The Site serving the Worker API: no per-request log unless an access log is asked for."""

from __future__ import annotations

import sys

from twisted.web.resource import IResource
from twisted.web.server import Site

#: `--access-log -`: the combined log lines go to standard output.
STDOUT = "-"


class _StandardOutput:
    """The real standard output (twistd has redirected `sys.stdout` into the log)."""

    def write(self, text: str) -> None:
        sys.__stdout__.write(text)
        sys.__stdout__.flush()

    def close(self) -> None:
        sys.__stdout__.flush()


def _quoted(value: bytes | str | None) -> str:
    text = value.decode("latin-1") if isinstance(value, bytes) else (value or "")
    return '"' + (text or "-").replace("\\", "\\\\").replace('"', '\\"') + '"'


def combined_log_line(timestamp: str, request) -> str:
    """Apache's combined log format, which log tools parse: the client address unquoted
    (Twisted's own formatter quotes it), user `-`, `"request"`, status, bytes, referrer, agent."""
    host = getattr(request.getClientAddress(), "host", "-") or "-"
    first_line = b" ".join([request.method, request.uri, request.clientproto])
    length = str(request.sentLength) if request.sentLength else "-"
    return (f"{host} - - {timestamp} {_quoted(first_line)} {request.code} {length} "
            f"{_quoted(request.getHeader(b'referer'))} {_quoted(request.getHeader(b'user-agent'))}")


class ManagerSite(Site):
    """`access_log`: empty for none, a file name (appended to), or `-` for standard output;
    lines in the combined log format. Twisted's default, one info log event per request,
    is never written."""

    noisy = False
    displayTracebacks = False

    def __init__(self, resource: IResource, access_log: str = ""):
        path = access_log if access_log and access_log != STDOUT else None
        super().__init__(resource, logPath=path, logFormatter=combined_log_line)
        self.access_log = access_log

    def startFactory(self) -> None:
        super().startFactory()
        if self.access_log == STDOUT:
            self.logFile = _StandardOutput()

    def log(self, request) -> None:
        if self.access_log:
            super().log(request)
