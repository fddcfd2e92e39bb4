"""How the simulated Server treats its connections, the ways real Servers, WSGI servers and
proxies do; selected by `SimulatedServer(connection_mode=...)` or `--connection-mode`:

- `keep-alive`: persistent HTTP/1.1 connections (Twisted's own behaviour).
- `http/1.0`: like Python's `http.server`: every request is answered as HTTP/1.0, and the
  connection is closed after the answer without a `Connection: close` header; whatever else the
  client sends on it is never read.
- `close-after-error`: keep-alive, but the connection is closed after every error answer
  (status ≥ 400), without announcing it.
- `close-before-body`: a request refused by its headers alone (bad credentials: 401; a gzip
  body the Server does not accept: 415) is answered before its body is read, with
  `Connection: close`; the Server then closes its side and discards the rest of the request.
- `idle-timeout`: keep-alive, but an idle connection is closed after `idle_timeout` seconds
  (shorter than the Manager's push interval).

The listening factory also tracks the open connections, so that `SimulatedServer.stop()` can
close every one of them.
"""

from __future__ import annotations

import json
from typing import Callable

from twisted.internet import defer
from twisted.internet.interfaces import ITCPTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.http import RESPONSES, HTTPChannel
from twisted.web.server import Request, Site

KEEP_ALIVE = "keep-alive"
HTTP_1_0 = "http/1.0"
CLOSE_AFTER_ERROR = "close-after-error"
CLOSE_BEFORE_BODY = "close-before-body"
IDLE_TIMEOUT = "idle-timeout"
MODES = (KEEP_ALIVE, HTTP_1_0, CLOSE_AFTER_ERROR, CLOSE_BEFORE_BODY, IDLE_TIMEOUT)

#: Decides from a request's path and headers (lower-case names) alone: None, or (status, message).
Refusal = Callable[[str, dict], "tuple[int, str] | None"]


class _Request(Request):
    def finish(self):
        channel = self.channel
        super().finish()
        if (channel is not None and channel.transport is not None and self.code >= 400
                and getattr(channel.site, "connection_mode", KEEP_ALIVE) == CLOSE_AFTER_ERROR):
            channel.transport.loseConnection()


class _Channel(HTTPChannel):
    def timeoutConnection(self):
        self.site.idle_timeouts += 1
        super().timeoutConnection()


class _Site(Site):
    # Site types `protocol` as its HTTP/2-negotiating factory; any HTTPChannel class serves.
    protocol = _Channel  # type: ignore[assignment]

    def __init__(self, resource, mode: str, idle_timeout: float):
        if mode == IDLE_TIMEOUT:
            super().__init__(resource, requestFactory=_Request, timeout=idle_timeout)
        else:
            super().__init__(resource, requestFactory=_Request)
        self.connection_mode = mode
        self.idle_timeouts = 0  # connections closed for being idle (observation for tests)
        self.noisy = False
        self.displayTracebacks = False


def build_site(resource, mode: str, idle_timeout: float) -> _Site:
    return _Site(resource, mode, idle_timeout)


class _Connection(ProtocolWrapper):
    """One connection; in the modes that need it, it reads each request's head (request line
    and headers) before the HTTP server does, and counts its body by `Content-Length`."""

    factory: ServerConnections

    def __init__(self, factory, wrapped):
        super().__init__(factory, wrapped)
        self._head = b""
        self._body_left = 0  # bytes of the current request's body still to pass on
        self._opaque = False  # a chunked body: pass everything on from here
        self._discarding = False  # read and drop everything from here

    def dataReceived(self, data):
        if self.factory.mode not in (HTTP_1_0, CLOSE_BEFORE_BODY) or self._opaque:
            self.wrappedProtocol.dataReceived(data)
            return
        while data and not self._discarding:
            if self._body_left:
                chunk, data = data[:self._body_left], data[self._body_left:]
                self._body_left -= len(chunk)
                self.wrappedProtocol.dataReceived(chunk)
                if not self._body_left:
                    self._request_read()
                continue
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end + 4], self._head[end + 4:]
            self._head = b""
            self._start_request(head)
            if self._opaque:
                self.wrappedProtocol.dataReceived(data)
                return

    def _start_request(self, head: bytes) -> None:
        request_line, _, rest = head.partition(b"\r\n")
        headers = {}
        for line in rest.split(b"\r\n"):
            name, colon, value = line.partition(b":")
            if colon:
                headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        if self.factory.mode == CLOSE_BEFORE_BODY:
            target = request_line.split(b" ")[1] if request_line.count(b" ") >= 2 else b""
            refusal = self.factory.refusal(target.decode("latin-1"), headers)
            if refusal is not None:
                self._refuse(*refusal)
                return
        if self.factory.mode == HTTP_1_0:
            method, target, _version = request_line.split(b" ", 2)
            head = b" ".join((method, target, b"HTTP/1.0")) + b"\r\n" + rest
        self.wrappedProtocol.dataReceived(head)
        if "transfer-encoding" in headers:
            self._opaque = True
            return
        try:
            self._body_left = int(headers.get("content-length") or 0)
        except ValueError:
            self._opaque = True  # the HTTP server answers 400 to that itself
            return
        if not self._body_left:
            self._request_read()

    def _request_read(self) -> None:
        if self.factory.mode == HTTP_1_0:
            self._discarding = True  # one request per connection

    def _refuse(self, code: int, message: str) -> None:
        body = json.dumps({"_status": "ERR", "_error": {"code": code, "message": message}})
        body_bytes = body.encode("utf-8")
        transport = ITCPTransport(self.transport)
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s"
            % (code, RESPONSES.get(code, b"Refused"), len(body_bytes), body_bytes))
        self._discarding = True
        # Our side first (the answer then reaches the client whole, not cut by a reset);
        # the connection ends when the client closes its side.
        transport.loseWriteConnection()

    def connectionLost(self, reason):
        factory = self.factory
        super().connectionLost(reason)
        factory.all_lost()


class ServerConnections(WrappingFactory):
    """The listening factory: the connection mode, plus tracking of the open connections."""

    protocol = _Connection
    noisy = False

    def __init__(self, site: _Site, mode: str, refusal: Refusal):
        if mode not in MODES:
            raise ValueError(f"unknown connection mode {mode!r}; one of {', '.join(MODES)}")
        super().__init__(site)
        self.site = site
        self.mode = mode
        self.refusal = refusal
        self.opened = 0  # connections accepted (observation for tests)
        self._waiting: list[defer.Deferred] = []

    def registerProtocol(self, p) -> None:
        self.opened += 1
        super().registerProtocol(p)

    def all_lost(self) -> None:
        if not self.protocols:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def close_all(self) -> defer.Deferred:
        if not self.protocols:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append(d)
        for proto in list(self.protocols):
            proto.transport.abortConnection()
        return d
