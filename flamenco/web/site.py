"""The Site serving the Manager: Worker requests read as JSON whatever their Content-Type, and
no per-request log unless an access log is asked for."""

from __future__ import annotations

import json
import sys
from urllib.parse import unquote_to_bytes

from twisted.web.resource import IResource
from twisted.web.server import Request, Site


class WorkerRequest(Request):
    """A Request that leaves bodies alone and refuses non-UTF-8 URLs with a JSON error.

    twisted.web would parse form uploads into `args`, answering a malformed multipart body
    itself with an empty 400; every Worker body is JSON, whatever its Content-Type says, and is
    decoded (and refused with a JSON error) by the API. Klein answers a URL or Host that is not
    UTF-8 with an HTML 400 and logs a traceback; that is answered here first."""

    def __init__(self, *args, **kwargs):
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def process(self):
        try:
            unquote_to_bytes(self.path).decode("utf-8")
            self.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            self.setResponseCode(400)
            self.setHeader(b"Content-Type", b"application/json")
            self.write(json.dumps({"error": "the URL or Host is not valid UTF-8"}).encode() + b"\n")
            self.finish()
            return
        super().process()


#: `--access-log -`: the combined log lines go to standard output.
STDOUT = "-"


class _StandardOutput:
    """The real standard output (twistd has redirected `sys.stdout` into the log)."""

    def __init__(self) -> None:
        stream = sys.__stdout__
        if stream is None:
            raise RuntimeError("--access-log -: this process has no standard output")
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


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
    """Serves with WorkerRequest. `access_log`: empty for none, a file name (appended to), or
    `-` for standard output; lines in the combined log format. Twisted's default, one info log
    event per request, is never written."""

    noisy = False
    displayTracebacks = False

    def __init__(self, resource: IResource, access_log: str = ""):
        path = access_log if access_log and access_log != STDOUT else None
        super().__init__(resource, logPath=path, logFormatter=combined_log_line,
                         requestFactory=WorkerRequest)
        self.access_log = access_log

    def startFactory(self) -> None:
        super().startFactory()
        if self.access_log == STDOUT:
            self.logFile = _StandardOutput()

    def log(self, request) -> None:
        if self.access_log:
            super().log(request)
