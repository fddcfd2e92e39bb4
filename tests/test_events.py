"""`GET /events` (Server-Sent Events) over real HTTP, and the bus behind it."""

import json

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from flamenco.events import EventBus
from flamenco.standalone.local_updates import LocalUpdates
from flamenco.testing.worker import GENERATION_2_0, SimulatedWorker
from tests.factories import task_doc
from tests.inprocess import InProcessManager


class EventReader(Protocol):
    """An open `/events` connection over plain HTTP/1.0 (so the stream is not chunked),
    parsed into (id, type, data) as bytes arrive."""

    def __init__(self, testcase, m, last_event_id=None):
        self.testcase = testcase
        self.m = m
        self.last_event_id = last_event_id
        self.events: list[tuple[int, str, dict]] = []
        self.head = b""
        self._buffer = b""
        self._in_body = False
        self._waiters: list[tuple] = []
        self.closed = defer.Deferred()

    async def open(self):
        port = int(self.m.url.rsplit(":", 1)[1])
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), self)
        extra = b""
        if self.last_event_id is not None:
            extra = b"Last-Event-ID: %d\r\n" % self.last_event_id
        self.transport.write(b"GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n")
        self.testcase.addCleanup(self.close)
        await self.wait_for(lambda events: self._in_body)
        return self

    @property
    def status_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode()

    def header(self, name: str) -> str:
        for line in self.head.decode().split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return ""

    def close(self):
        if self.transport is not None and self.transport.connected:
            self.transport.loseConnection()
        return self.closed

    def connectionLost(self, reason):
        if not self.closed.called:
            self.closed.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if not self._in_body and b"\r\n\r\n" in self._buffer:
            self.head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            self._in_body = True
        while self._in_body and b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            fields = {}
            for line in block.decode().splitlines():
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            if "event" in fields:
                self.events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
        for waiter in list(self._waiters):
            condition, deferred = waiter
            if condition(self.events):
                self._waiters.remove(waiter)
                deferred.callback(self.events)

    def wait_for(self, condition, timeout=10.0):
        if condition(self.events):
            return defer.succeed(self.events)
        deferred = defer.Deferred()
        self._waiters.append((condition, deferred))
        deferred.addTimeout(timeout, reactor)
        return deferred


def of_type(kind, count=1):
    return lambda events: sum(1 for _, t, _ in events if t == kind) >= count


class EventStreamTests(TestCase):
    async def test_changes_arrive_with_ids_and_a_reconnect_replays_what_was_missed(self):
        m = await InProcessManager(self).start()
        reader = await EventReader(self, m).open()
        self.assertIn(" 200 ", reader.status_line)
        self.assertEqual(reader.header("content-type"), "text/event-stream; charset=utf-8")
        await reader.wait_for(of_type("hello"))
        worker_id, _ = await m.register(nickname="alpha")
        events = await reader.wait_for(of_type("worker"))
        worker_event = [e for e in events if e[1] == "worker"][0]
        self.assertEqual((worker_event[2]["id"], worker_event[2]["nickname"]), (worker_id, "alpha"))
        self.assertNotIn("secret_hash", worker_event[2])
        last_seen = events[-1][0]
        await reader.close()

        # Missed while disconnected: a second worker and a task download.
        second_id, _ = await m.register(nickname="beta")
        await m.manager.store.store_server_tasks([task_doc()], m.manager.updates.now())
        again = await EventReader(self, m, last_event_id=last_seen).open()
        replayed = await again.wait_for(of_type("tasks-downloaded"))
        self.assertEqual([t for _, t, _ in replayed], ["worker", "tasks-downloaded"])
        self.assertEqual(replayed[0][2]["id"], second_id)
        ids = [event_id for event_id, _, _ in replayed]
        self.assertEqual(ids, list(range(last_seen + 1, last_seen + 3)))

        # And then it goes on live.
        await m.request("POST", f"/api/workers/{worker_id}/actions", json_body={"action": "sleep"})
        live = await again.wait_for(of_type("worker", 2))
        self.assertEqual(live[-1][2], {"id": worker_id, "status_requested": "asleep",
                                       "lazy_status_request": False})
        self.assertEqual(live[-1][0], ids[-1] + 1)

    async def test_a_client_too_far_behind_gets_a_reset_first(self):
        m = await InProcessManager(self).start()
        bus = m.manager.operator.bus
        first = bus.publish("task", {"id": "a"}).id
        for number in range(1100):
            bus.publish("task", {"id": str(number)})
        reader = await EventReader(self, m, last_event_id=first).open()
        events = await reader.wait_for(lambda events: len(events) >= 1001)
        self.assertEqual(events[0][1], "reset")
        kept = list(range(bus.last_id - 999, bus.last_id + 1))
        self.assertEqual([e[0] for e in events[1:]], kept)

    async def test_a_client_that_stops_reading_is_disconnected_not_buffered_for(self):
        m = await InProcessManager(self).start()
        bus = m.manager.operator.bus
        others = bus.subscriber_count  # the Manager's own (task activity, metrics)
        reader = await EventReader(self, m).open()
        await reader.wait_for(of_type("hello"))
        reader.transport.pauseProducing()  # stop reading: the socket buffers fill up
        self.assertEqual(bus.subscriber_count, others + 1)
        line = "x" * 16000
        for number in range(2000):  # up to 32 MB, more than loopback socket buffers hold
            bus.publish("task", {"id": str(number % 10), "log": line})
            if number % 100 == 0:
                await deferLater(reactor, 0.01, lambda: None)  # let the sockets move
        self.assertEqual(bus.subscriber_count, others + 1, "30 s are allowed to catch up")
        m.clock.advance(31)
        bus.publish("task", {"id": "0", "log": line})
        for _ in range(100):
            if bus.subscriber_count == others:
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(bus.subscriber_count, others, "the stuck client was let go")
        reader.transport.resumeProducing()
        await reader.closed  # aborted by the Manager, which did not wait for it to read

    async def test_task_updates_carry_their_log_lines(self):
        doc = task_doc()
        m = await InProcessManager(self).start()
        await m.manager.store.store_server_tasks([doc], m.manager.updates.now())
        auth = await m.register()
        reader = await EventReader(self, m).open()
        self.assertEqual((await m.request("POST", "/task", auth=auth)).code, 200)
        await m.request("POST", f"/tasks/{doc['_id']}/update", auth=auth,
                        json_body={"activity": "frame 3", "log": "rendering frame 3\n"})
        events = await reader.wait_for(
            lambda events: any("log" in e[2] and "frame 3" in e[2]["log"] for e in events))
        task_events = [e[2] for e in events if e[1] == "task" and e[2]["id"] == doc["_id"]]
        self.assertEqual(task_events[0]["status"], "active")
        self.assertEqual(task_events[-1]["activity"], "frame 3")


class JobEventTests(TestCase):
    """Stand-alone mode: every new job and every job status or priority change is a `job`
    event, whichever part made it (the API, or the rounds that derive status from tasks)."""

    async def test_submitting_and_status_changes_arrive_as_job_events(self):
        m = await InProcessManager(self).start()
        rounds = next(s for s in m.manager.services if isinstance(s, LocalUpdates))
        reader = await EventReader(self, m).open()
        submitted = await m.request("POST", "/api/jobs", json_body={
            "name": "smoke", "type": "sleep", "settings": {"n_tasks": 2, "seconds": 1}})
        self.assertEqual(submitted.code, 201, submitted.body)
        job_id = submitted.json["id"]

        def job_events(events):
            return [data for _, kind, data in events if kind == "job" and data["id"] == job_id]

        events = await reader.wait_for(lambda events: job_events(events))
        first = job_events(events)[0]
        self.assertEqual((first["name"], first["type"], first["status"], first["priority"]),
                         ("smoke", "sleep", "queued", 50))

        # A Worker starts a task: the rounds derive "active" and say so.
        worker = SimulatedWorker(m.url, generation=GENERATION_2_0, types=("sleep",))
        self.addCleanup(worker.close)
        await worker.register()
        task = await worker.ask_for_task()
        await worker.send_update(task["_id"], task_status="active", activity="going")
        await rounds.inspect()
        events = await reader.wait_for(lambda events: len(job_events(events)) >= 2)
        self.assertEqual(job_events(events)[1]["status"], "active")

        # Steering through the API: priority, then cancel.
        await m.request("POST", f"/api/jobs/{job_id}/priority", json_body={"priority": 70})
        events = await reader.wait_for(lambda events: len(job_events(events)) >= 3)
        self.assertEqual(job_events(events)[2]["priority"], 70)
        self.assertEqual((await m.request("POST", f"/api/jobs/{job_id}/cancel")).code, 200)
        events = await reader.wait_for(
            lambda events: any(e.get("status") == "cancel-requested" for e in job_events(events)))
        self.assertNotIn("canceled", [e.get("status") for e in job_events(events)],
                         "its running task has not stopped yet")


class EventBusTests(TestCase):
    def test_ids_increase_and_the_buffer_is_bounded(self):
        bus = EventBus(capacity=3)
        seen = []
        unsubscribe = bus.subscribe(seen.append)
        for number in range(5):
            bus.publish("x", {"n": number})
        self.assertEqual([e.id for e in seen], [1, 2, 3, 4, 5])
        self.assertEqual(bus.since(3), ([seen[3], seen[4]], False))
        missed, lost = bus.since(1)
        self.assertEqual(([e.id for e in missed], lost), ([3, 4, 5], True))
        self.assertEqual(bus.since(5), ([], False))
        unsubscribe()
        bus.publish("x", {})
        self.assertEqual(len(seen), 5)

    def test_a_failing_subscriber_does_not_stop_the_others(self):
        bus = EventBus()
        seen = []
        bus.subscribe(lambda event: 1 / 0)
        bus.subscribe(seen.append)
        bus.publish("x", {})
        self.assertEqual(len(seen), 1)
        self.flushLoggedErrors(ZeroDivisionError)
