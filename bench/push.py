"""How fast does the update pusher drain its queue to the simulated Server?

    .venv/bin/python bench/push.py [--updates 6000] [--lines 12] [--connection-mode MODE]
                                   [--inspect-interval 0.01]

For batch sizes 20 and 500, gzip on and off: fill a fresh SQLite queue with log-heavy updates
(Blender-like render progress lines), start the real `UpdatePusher` against the simulated Server
on loopback HTTP, and time until the Server has acknowledged all of them. Both ends run in this
one process (one CPU), so the figure is a lower bound for a Manager talking to a remote Server
over a fast link. Also prints the gzip ratio of one 500-update batch. `--connection-mode` picks
how the simulated Server treats connections (e.g. `http/1.0`: one request per connection, like
Python's `http.server`); failed pushes are counted. Each costs a back-off that starts at the
inspection interval: 0.01 s here by default, 1 s in the Manager (`--inspect-interval 1`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from twisted.internet import defer, task  # noqa: E402
from twisted.logger import globalLogPublisher  # noqa: E402

from flamenco.cancellation import CancelRequests  # noqa: E402
from flamenco.documents import TaskUpdate  # noqa: E402
from flamenco.ids import new_object_id  # noqa: E402
from flamenco.store.sqlite import SQLiteStore  # noqa: E402
from flamenco.testing.connections import KEEP_ALIVE, MODES  # noqa: E402
from flamenco.testing.server import SimulatedServer  # noqa: E402
from flamenco.timefmt import utc_now  # noqa: E402
from flamenco.updates import UpdateQueue  # noqa: E402
from flamenco.upstream.client import UpstreamClient  # noqa: E402
from flamenco.upstream.pusher import UpdatePusher  # noqa: E402


def render_log(rng: random.Random, frame: int, lines: int) -> str:
    out = []
    for i in range(lines):
        stamp = f"2018-01-10T09:{16 + i // 60:02d}:{i % 60:02d}.{rng.randrange(10**6):06d}+00:00"
        tile = rng.randrange(1, 136)
        mem = rng.uniform(200, 400)
        out.append(
            f"{stamp}: blender_render: Fra:{frame} Mem:{mem:.2f}M (Peak {mem + 60:.2f}M) | "
            f"Time:00:{i // 4:02d}.{rng.randrange(100):02d} | Remaining:00:{59 - i % 60:02d}."
            f"{rng.randrange(100):02d} | Mem:{mem / 3:.2f}M, Peak:{mem / 2:.2f}M | Scene, "
            f"RenderLayer | Path Tracing Tile {tile}/135"
        )
    return "\n".join(out)


def make_updates(count: int, task_ids: list[str], lines: int, now) -> list[TaskUpdate]:
    rng = random.Random(42)
    return [
        TaskUpdate(id=new_object_id(), task_id=task_ids[i % len(task_ids)],
                   received_on_manager=now, activity=f"Rendering frame {i}",
                   command_progress_percentage=i % 100, worker="10.0.0.21 (render-01)",
                   log=render_log(rng, i, lines))
        for i in range(count)
    ]


async def drain(reactor, batch: int, use_gzip: bool, count: int, lines: int,
                mode: str, inspect_interval: float) -> dict:
    from twisted.internet import reactor as real_reactor

    server = SimulatedServer(connection_mode=mode)
    _, task_ids = server.create_job([{"name": f"t{i}"} for i in range(50)],
                                    status="claimed-by-manager")
    server.listen(real_reactor)
    folder = tempfile.mkdtemp()
    store = SQLiteStore(os.path.join(folder, "bench.sqlite"))
    await store.open()
    for update in make_updates(count, task_ids, lines, utc_now(real_reactor)):
        await store.queue_update(update)
    client = UpstreamClient(server.url, server.manager_id, server.managers[server.manager_id],
                            gzip_bodies=use_gzip, timeout=60)
    pusher = UpdatePusher(client, store, CancelRequests(store, UpdateQueue(store, real_reactor)),
                          real_reactor, max_count=batch, max_interval=0.001,
                          cancel_interval=60, backoff_max=1, lease_holder="bench",
                          lease_seconds=60, inspect_interval=inspect_interval)
    failures = []

    def count_failures(event):
        if str(event.get("log_format", "")).startswith("pushing task updates failed"):
            failures.append(event)

    globalLogPublisher.addObserver(count_failures)
    started = time.perf_counter()
    pusher.startService()
    while await store.count_queued_updates():
        await task.deferLater(real_reactor, 0.01, lambda: None)
    elapsed = time.perf_counter() - started
    globalLogPublisher.removeObserver(count_failures)
    await defer.maybeDeferred(pusher.stopService)
    await client.close()
    await server.stop()
    await store.close()
    sent = sum(b["bytes"] for b in server.pushed_batches)
    return {"batch": batch, "gzip": use_gzip, "updates": count, "seconds": elapsed,
            "rate": count / elapsed, "pushes": len(server.pushed_batches), "bytes": sent,
            "failed": len(failures)}


async def main(reactor, count: int, lines: int, mode: str, inspect_interval: float):
    rng_now = utc_now(reactor)
    sample = [u.to_upstream() for u in make_updates(500, [new_object_id()], lines, rng_now)]
    raw = json.dumps(sample, separators=(",", ":")).encode()
    packed = gzip.compress(raw, compresslevel=6)
    rows = []
    for batch in (20, 500):
        for use_gzip in (True, False):
            rows.append(await drain(reactor, batch, use_gzip, count, lines, mode,
                                    inspect_interval))
    out = sys.stdout
    out.write(f"\n{count} queued updates, {lines} log lines each "
              f"({len(raw) / 500 / 1024:.1f} KiB per update as JSON), "
              f"connection mode {mode}, inspection every {inspect_interval:g} s\n\n")
    out.write("| batch | gzip | pushes | failed pushes | seconds | updates/s | MiB on the wire |\n")
    out.write("|------:|:----:|-------:|--------------:|--------:|----------:|----------------:|\n")
    for row in rows:
        out.write(f"| {row['batch']} | {'yes' if row['gzip'] else 'no'} | {row['pushes']} | "
                  f"{row['failed']} | {row['seconds']:.2f} | {row['rate']:.0f} | "
                  f"{row['bytes'] / 2**20:.1f} |\n")
    out.write(f"\ngzip (level 6) of one 500-update batch: {len(raw) / 2**20:.2f} MiB -> "
              f"{len(packed) / 2**20:.2f} MiB, ratio {len(raw) / len(packed):.1f}:1\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=6000)
    parser.add_argument("--lines", type=int, default=12)
    parser.add_argument("--connection-mode", choices=MODES, default=KEEP_ALIVE)
    parser.add_argument("--inspect-interval", type=float, default=0.01)
    args = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(
        main(reactor, args.updates, args.lines, args.connection_mode, args.inspect_interval)))
