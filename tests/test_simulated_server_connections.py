"""The simulated Server's connection modes, seen from a plain socket (what is on the wire)."""

import base64
import contextlib
import gzip
import io
import re
import socket
import time

from twisted.internet import threads
from twisted.trial import unittest

from flamenco.testing import serve_for_test
from flamenco.testing.connections import (CLOSE_AFTER_ERROR, CLOSE_BEFORE_BODY, HTTP_1_0,
                                          IDLE_TIMEOUT, KEEP_ALIVE, ServerConnections)
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET, main

AUTH = "Basic " + base64.b64encode(DEFAULT_MANAGER_SECRET.encode() + b":").decode()
PUSH = f"/api/flamenco/managers/{DEFAULT_MANAGER_ID}/task-update-batch"


def request(path=PUSH, body=b"[]", auth=AUTH, extra="", send_body=True) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: server\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}")
    if auth:
        head += f"Authorization: {auth}\r\n"
    return (head + "\r\n").encode() + (body if send_body else b"")


def converse(port: int, *steps, linger: float = 2.0) -> tuple[bytes, bool]:
    """Send each step (bytes, or a pause in seconds), then read until the Server closes or
    `linger` seconds pass. Returns (everything read, closed by the Server)."""
    with socket.create_connection(("127.0.0.1", port), timeout=linger) as sock:
        for step in steps:
            if isinstance(step, bytes):
                sock.sendall(step)
            else:
                time.sleep(step)
        received = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return received, True
                received += chunk
        except socket.timeout:
            return received, False


def answers(received: bytes) -> list[bytes]:
    """The status lines in what was read."""
    return re.findall(rb"HTTP/1\.[01] \d{3} [^\r]*", received)


class ConnectionModeTests(unittest.TestCase):
    def serve(self, mode, **options):
        server = serve_for_test(self, connection_mode=mode, **options)
        return server, server._port.getHost().port

    def talk(self, port, *steps, linger=0.4):
        return threads.deferToThread(converse, port, *steps, linger=linger)

    async def test_keep_alive_answers_every_request_on_one_connection(self):
        _, port = self.serve(KEEP_ALIVE)
        received, closed = await self.talk(port, request(), request(auth=""), request())
        self.assertEqual([a[9:12] for a in answers(received)], [b"200", b"401", b"200"])
        self.assertFalse(closed)

    async def test_http10_answers_one_request_and_closes_without_saying_so(self):
        server, port = self.serve(HTTP_1_0)
        received, closed = await self.talk(port, request(), request())
        self.assertEqual(answers(received), [b"HTTP/1.0 200 OK"])
        self.assertTrue(closed)
        self.assertNotIn(b"connection: close", received.lower())
        self.assertEqual(len(server.pushed_batches), 1, "the second request was never read")

    async def test_close_after_error_closes_after_an_error_answer_only(self):
        _, port = self.serve(CLOSE_AFTER_ERROR)
        received, closed = await self.talk(port, request(), request(auth=""), request())
        self.assertEqual([a[9:12] for a in answers(received)], [b"200", b"401"])
        self.assertTrue(closed)
        self.assertNotIn(b"connection: close", received.lower())

    async def test_close_before_body_answers_from_the_headers(self):
        server, port = self.serve(CLOSE_BEFORE_BODY, accept_gzip=False)
        body = gzip.compress(b"[]")
        # Only the headers go out; the answer comes anyway, and the Server closes.
        received, closed = await self.talk(
            port, request(body=body, extra="Content-Encoding: gzip\r\n", send_body=False))
        self.assertEqual(answers(received), [b"HTTP/1.1 415 Unsupported Media Type"])
        self.assertIn(b"connection: close", received.lower())
        self.assertTrue(closed)
        received, _ = await self.talk(port, request(auth="", send_body=False))
        self.assertEqual(answers(received), [b"HTTP/1.1 401 Unauthorized"])
        self.assertEqual([route for route, _ in server.requests], ["refused before the body"] * 2)
        # What is not refused by its headers is served as usual, on a kept connection.
        received, closed = await self.talk(port, request(), request())
        self.assertEqual(len(answers(received)), 2)
        self.assertFalse(closed)

    async def test_idle_timeout_closes_an_idle_connection(self):
        _, port = self.serve(IDLE_TIMEOUT, idle_timeout=0.2)
        received, closed = await self.talk(port, request(), 0.1, request(), linger=3)
        self.assertEqual(len(answers(received)), 2, "a connection in use stays open")
        self.assertTrue(closed)

    def test_an_unknown_mode_is_refused(self):
        self.assertRaises(ValueError, ServerConnections, None, "pipelined", lambda *a: None)

    def test_the_command_line_knows_the_modes(self):
        with contextlib.redirect_stderr(io.StringIO()) as errors:
            self.assertRaises(SystemExit, main, ["--connection-mode", "pipelined"])
        self.assertIn("close-before-body", errors.getvalue())
