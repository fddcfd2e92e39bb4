"""How many events per second does `/events` carry to many connected dashboards?

    .venv/bin/python bench/events.py [--clients 1,10,50] [--rates 250,500,1000,2000,4000]
                                     [--seconds 3]

The Manager's resource tree is served in this process on loopback; the SSE clients run in a
child process (so the two share the machine's cores as a Manager and browsers would). For each
number of clients and each offered rate, task events shaped like a Worker's update (a
Blender log line) are published on the event bus for `--seconds`; a rate is sustained when
every client received every event no later than one second after the last was published.
Also prints the dashboard's page weight (what a browser downloads to show /app/).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from importlib import resources

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from twisted.internet import defer, protocol, reactor, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol  # noqa: E402
from twisted.web.server import Site  # noqa: E402

from flamenco.config import Config  # noqa: E402
from flamenco.manager import build_manager  # noqa: E402
from flamenco.store.sqlite import SQLiteStore  # noqa: E402

LOG_LINE = ("Fra:12 Mem:312.55M (Peak 372.55M) | Time:00:04.12 | Remaining:00:51.09 | "
            "Mem:104.18M, Peak:156.27M | Scene, RenderLayer | Path Tracing Tile 17/135\n")


# -- the client side (child process) -------------------------------------------------------------
class _Counter(protocol.Protocol):
    def __init__(self, stats):
        self.stats = stats
        self.count = 0
        self.tail = b""
        self.subscribed = defer.Deferred()

    def connectionMade(self):
        self.transport.write(b"GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")

    def dataReceived(self, data):
        data = self.tail + data
        if not self.subscribed.called and b"\nevent: hello\n" in data:
            self.subscribed.callback(None)
        self.count += data.count(b"\nevent: task\n")
        self.tail = data[-16:]
        self.stats["last"] = time.monotonic()


def run_clients(port: int, clients: int, seconds: float) -> None:
    stats: dict = {"last": None}
    counters = [_Counter(stats) for _ in range(clients)]

    async def main():
        for counter in counters:
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), counter)
        for counter in counters:  # the Manager sends `hello` once the client is subscribed
            await counter.subscribed
        stats["last"] = None
        print("ready", flush=True)
        deadline = time.monotonic() + seconds + 30
        while time.monotonic() < deadline:
            await task.deferLater(reactor, 0.2, lambda: None)
            if stats["last"] is not None and time.monotonic() - stats["last"] > 1.5:
                break
        print(json.dumps({"counts": [c.count for c in counters], "last": stats["last"]}),
              flush=True)

    defer.ensureDeferred(main()).addBoth(lambda _: reactor.stop())
    reactor.run()


# -- the Manager side ----------------------------------------------------------------------------
class _Child(protocol.ProcessProtocol):
    def __init__(self):
        self.ready = defer.Deferred()
        self.done = defer.Deferred()
        self.out = b""

    def outReceived(self, data):
        self.out += data
        if b"ready\n" in self.out and not self.ready.called:
            self.ready.callback(None)

    def processEnded(self, reason):
        self.done.callback(self.out)


async def one_round(port: int, bus, clients: int, rate: int, seconds: float) -> tuple[float, bool]:
    child = _Child()
    reactor.spawnProcess(child, sys.executable,
                         [sys.executable, __file__, "--client", str(port), str(clients),
                          str(seconds)], env=dict(os.environ))
    await child.ready
    tick = 0.01
    per_tick = rate * tick
    published = 0
    started = time.monotonic()
    while (now := time.monotonic()) - started < seconds:
        due = int((now - started) * rate) - published
        for _ in range(max(0, due)):
            published += 1
            bus.publish("task", {"id": "5a1f0e229f1b2c0d4e5f6a73", "progress": published % 100,
                                 "activity": f"Rendering frame {published}", "log": LOG_LINE})
        await task.deferLater(reactor, tick if per_tick < 1 else tick / 2, lambda: None)
    ended = time.monotonic()
    result = json.loads((await child.done).decode().splitlines()[-1])
    received = min(result["counts"])
    delivered = received / (max(result["last"] or ended, ended) - started)
    kept_up = received == published and (result["last"] or 0) - ended <= 1.0
    return delivered, kept_up


async def bench(args) -> None:
    folder = tempfile.mkdtemp(prefix="flamenco-bench-events-")
    store = SQLiteStore(os.path.join(folder, "m.sqlite"))
    await store.open()
    manager = build_manager(Config(), store, reactor, bcrypt_rounds=4)
    port = reactor.listenTCP(0, Site(manager.resource), interface="127.0.0.1")
    bus = manager.operator.bus
    print(f"{'clients':>7}  {'offered ev/s':>12}  {'delivered ev/s per client':>26}  sustained")
    best: dict[int, int] = {}
    for clients in args.clients:
        for rate in args.rates:
            delivered, kept_up = await one_round(port.getHost().port, bus, clients, rate,
                                                 args.seconds)
            print(f"{clients:>7}  {rate:>12}  {delivered:>26.0f}  {'yes' if kept_up else 'no'}")
            if kept_up:
                best[clients] = rate
            else:
                break
    print()
    for clients in args.clients:
        print(f"{clients} clients: sustained up to {best.get(clients, 0)} events/s each "
              f"({best.get(clients, 0) * clients} event deliveries/s)")
    await port.stopListening()
    await store.close()
    print()
    page_weight()


def page_weight() -> None:
    folder = resources.files("flamenco.web") / "static"
    rows = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        raw = entry.read_bytes()
        rows.append((entry.name, len(raw), len(gzip.compress(raw, 6))))
    print(f"{'dashboard file':<16} {'bytes':>8} {'gzipped':>8}")
    for name, size, packed in rows:
        print(f"{name:<16} {size:>8} {packed:>8}")
    print(f"{'total':<16} {sum(r[1] for r in rows):>8} {sum(r[2] for r in rows):>8}"
          f"   ({len(rows)} requests, no third-party code)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        run_clients(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,10,50",
                        type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--rates", default="250,500,1000,2000,4000,8000",
                        type=lambda text: [int(n) for n in text.split(",")])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    defer.ensureDeferred(bench(args)).addBoth(lambda result: (reactor.stop(), result)[1])
    reactor.run()


if __name__ == "__main__":
    main()
