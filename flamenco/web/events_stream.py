"""`GET /events`: the event bus as Server-Sent Events (text/event-stream).

Every event carries its `id`; a client reconnecting with `Last-Event-ID` first gets what it
missed from the bus's buffer (or a `reset` event when that is gone). A comment line every
`keepalive` seconds keeps proxies from closing an idle stream.

A client that stops reading (its socket buffers full, so Twisted pauses the stream) is
disconnected when it stays so for `stuck_seconds` or `max_behind` events, instead of being
buffered for without bound; a browser reconnects by itself and catches up from the buffer.
"""

from __future__ import annotations

import json
from typing import cast

from twisted.internet import task
from twisted.internet.interfaces import IPushProducer, ITCPTransport
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from flamenco.events import Event, EventBus


def encode_event(event: Event) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode("utf-8")


def _last_event_id(request: IRequest) -> int | None:
    raw = request.getHeader(b"last-event-id")
    if raw is None:
        values = request.args.get(b"last_event_id")
        raw = values[-1] if values else None
    if raw is None:
        return None
    try:
        return max(0, int(raw))
    except ValueError:
        return None


@implementer(IPushProducer)
class _Client:
    """One connected client: writes events, and drops the connection when it is stuck."""

    def __init__(self, request: Request, clock, stuck_seconds: float, max_behind: int):
        self.request = request
        self.clock = clock
        self.stuck_seconds = stuck_seconds
        self.max_behind = max_behind
        self.paused_at: float | None = None
        self.written_while_paused = 0

    def send(self, event: Event) -> None:
        if self.paused_at is not None:
            self.written_while_paused += 1
            if (self.written_while_paused > self.max_behind
                    or self.clock.seconds() - self.paused_at > self.stuck_seconds):
                # loseConnection would wait for the client to read what is buffered.
                cast(ITCPTransport, self.request.channel.transport).abortConnection()
                return
        self.request.write(encode_event(event))

    def pauseProducing(self) -> None:
        if self.paused_at is None:
            self.paused_at = self.clock.seconds()

    def resumeProducing(self) -> None:
        self.paused_at = None
        self.written_while_paused = 0

    def stopProducing(self) -> None:
        self.pauseProducing()


class EventStream(Resource):
    isLeaf = True

    def __init__(self, bus: EventBus, clock, keepalive: float = 15.0,
                 stuck_seconds: float = 30.0, max_behind: int = 10_000):
        super().__init__()
        self.bus = bus
        self.clock = clock
        self.keepalive = keepalive
        self.stuck_seconds = stuck_seconds
        self.max_behind = max_behind

    def render_GET(self, request: Request):
        request.setHeader(b"Content-Type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        request.setHeader(b"X-Accel-Buffering", b"no")
        request.write(b"retry: 2000\n\n")
        last_seen = _last_event_id(request)
        if last_seen is not None:
            missed, lost = self.bus.since(last_seen)
            if lost:
                request.write(encode_event(Event(self.bus.last_id, "reset", {})))
            for event in missed:
                request.write(encode_event(event))
        else:
            request.write(encode_event(Event(self.bus.last_id, "hello", {})))

        client = _Client(request, self.clock, self.stuck_seconds, self.max_behind)
        request.registerProducer(client, True)
        unsubscribe = self.bus.subscribe(client.send)
        ping = task.LoopingCall(request.write, b": keep-alive\n\n")
        ping.clock = self.clock
        ping.start(self.keepalive, now=False)

        def gone(_):
            unsubscribe()
            if ping.running:
                ping.stop()

        request.notifyFinish().addBoth(gone)
        return NOT_DONE_YET
