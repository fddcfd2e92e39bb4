"""A tiny Flamenco Server on Python's standard `http.server`, run in a thread on loopback.

Not our own simulator: the stdlib speaks HTTP/1.0 (one request per connection, closed after
the answer, without a `Connection: close` header), as small WSGI servers and some proxies do.
It knows just enough of PROTOCOL §6 for the client: notifications (204), an empty depsgraph
(204), and pushes (every update acknowledged). Like a Server without gzip support it parses the
raw body as JSON, so a gzip body gets `400` unless `accept_gzip` is set.

With `http11=True` it keeps connections open (HTTP/1.1) unless `close_after_answer` is set:
then it closes each one after the answer, with `Connection: close` ("announced") or without
saying so ("silently"), as some proxies do. With
`drop_requests` set it reads a request and closes the connection without answering.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twisted.internet import threads


class _Handler(BaseHTTPRequestHandler):
    server: _StdlibHTTPServer

    def setup(self):
        if self.server.http11:
            self.protocol_version = "HTTP/1.1"
        super().setup()

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def _dropped(self) -> bool:
        if self.server.drop_requests:
            self.server.dropped += 1
            self.close_connection = True
        return self.server.drop_requests

    def _answer(self, code: int, doc=None) -> None:
        body = b"" if doc is None else json.dumps(doc).encode("utf-8")
        # Noted before answering: the client may look as soon as the answer arrives.
        self.server.answered.append((self.command, self.path, code))
        self.send_response(code)
        if self.server.close_after_answer == "announced":
            self.send_header("Connection", "close")
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.close_after_answer:
            self.close_connection = True

    def do_GET(self):
        if self._dropped():
            return
        if self.path.split("?")[0].endswith("/depsgraph"):
            self._answer(204)
        else:
            self._answer(404, {"_status": "ERR", "_error": {"code": 404, "message": "Not found"}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._dropped():
            return
        compressed = (self.headers.get("Content-Encoding") or "").lower() == "gzip"
        if compressed and self.server.accept_gzip:
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._answer(400, {"_status": "ERR", "_error": {
                "code": 400, "message": "The browser (or proxy) sent a request that this "
                                        "server could not understand."}})
            return
        if self.path.endswith("/task-update-batch"):
            self.server.pushes.append({"count": len(body or []), "gzip": compressed})
            self._answer(200, {"modified_count": len(body or []),
                               "handled_update_ids": [u["_id"] for u in body or []]})
        else:
            self._answer(204)


class _StdlibHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, accept_gzip: bool, http11: bool):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accept_gzip = accept_gzip
        self.http11 = http11
        self.close_after_answer: str | None = None  # "announced" or "silently"
        self.drop_requests = False
        self.dropped = 0
        self.pushes: list[dict] = []  # {"count", "gzip"} of every accepted push
        self.answered: list[tuple[str, str, int]] = []  # (method, path, code)


class StdlibServer:
    """Start with `serve_stdlib_for_test`; `url`, `pushes`, `answered`; the options are
    attributes of `httpd` (read by the server thread at each request)."""

    def __init__(self, accept_gzip: bool = False, http11: bool = False):
        self.httpd = _StdlibHTTPServer(accept_gzip, http11)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def pushes(self) -> list[dict]:
        return self.httpd.pushes

    @property
    def answered(self) -> list[tuple[str, str, int]]:
        return self.httpd.answered

    def stop(self):
        """Fires once the server thread has stopped (shutdown() blocks: run it in a thread)."""

        def shut():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()

        return threads.deferToThread(shut)


def serve_stdlib_for_test(testcase, accept_gzip: bool = False,
                          http11: bool = False) -> StdlibServer:
    server = StdlibServer(accept_gzip, http11)
    server.thread.start()
    testcase.addCleanup(server.stop)
    return server
