"""A tiny Flamenco Server on Python's standard `http.server`, run in a thread on loopback.

Not our own simulator: the stdlib speaks HTTP/1.0 (one request per connection, closed after
the answer, without a `Connection: close` header), as small WSGI servers and some proxies do.
It knows just enough of PROTOCOL §6 for the client: notifications (204), an empty depsgraph
(204), and pushes (every update acknowledged). Like a Server without gzip support it parses the
raw body as JSON, so a gzip body gets `400` unless `accept_gzip` is set.
"""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from twisted.internet import threads


class _Handler(BaseHTTPRequestHandler):
    server: _StdlibHTTPServer

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def _answer(self, code: int, doc=None) -> None:
        body = b"" if doc is None else json.dumps(doc).encode("utf-8")
        self.send_response(code)
        if doc is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.answered.append((self.command, self.path, code))

    def do_GET(self):
        if self.path.split("?")[0].endswith("/depsgraph"):
            self._answer(204)
        else:
            self._answer(404, {"_status": "ERR", "_error": {"code": 404, "message": "Not found"}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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

    def __init__(self, accept_gzip: bool):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.accept_gzip = accept_gzip
        self.pushes: list[dict] = []  # {"count", "gzip"} of every accepted push
        self.answered: list[tuple[str, str, int]] = []  # (method, path, code)


class StdlibServer:
    """Start with `serve_stdlib_for_test`; `url`, `pushes`, `answered`, `accept_gzip`."""

    def __init__(self, accept_gzip: bool = False):
        self.httpd = _StdlibHTTPServer(accept_gzip)
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

    @property
    def accept_gzip(self) -> bool:
        return self.httpd.accept_gzip

    @accept_gzip.setter
    def accept_gzip(self, value: bool) -> None:
        self.httpd.accept_gzip = value

    def stop(self):
        """Fires once the server thread has stopped (shutdown() blocks: run it in a thread)."""

        def shut():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()

        return threads.deferToThread(shut)


def serve_stdlib_for_test(testcase, accept_gzip: bool = False) -> StdlibServer:
    server = StdlibServer(accept_gzip)
    server.thread.start()
    testcase.addCleanup(server.stop)
    return server
