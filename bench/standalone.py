"""Stand-alone mode: how fast does a Manager with no Server dispatch the tasks of a submitted job?

For each size a `sleep` job of that many tasks is submitted through the job API to the real
`twistd flamenco-manager` child process (no `flamenco` configured, a fresh SQLite file); then
`--workers` simulated 2.x workers in this process loop `POST /task` + one `completed` update
(as `bench/assign.py` does) until the queue is empty, and the job is polled until the
Manager has derived its status `completed`:

    .venv/bin/python bench/standalone.py [--sizes 1000,10000] [--workers 16] [--sync full]

Printed: submission time (validate, compile, store the tasks), tasks dispatched per second,
and how long after the last update the job showed `completed` (the once-a-second job round).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (REPO_ROOT, os.path.dirname(os.path.abspath(__file__))):
    if path not in sys.path:
        sys.path.insert(0, path)

from twisted.internet import defer, task  # noqa: E402

from assign import WORKER_TYPES, assign_and_complete, close_all, drive  # noqa: E402
from flamenco.jobs_client import JobClient  # noqa: E402
from flamenco.testing.worker import GENERATION_2_X, SimulatedWorker  # noqa: E402
from tests.manager_process import ManagerProcess  # noqa: E402


async def registered_workers(url: str, count: int) -> list[SimulatedWorker]:
    """Registered and authenticated once each, one after the other (bcrypt runs before the
    clock starts, without timing out on a busy machine)."""
    workers = [SimulatedWorker(url, generation=GENERATION_2_X, nickname=f"bench-{n:02d}",
                               types=WORKER_TYPES, timeout=30) for n in range(count)]
    for worker in workers:
        await worker.register()
        await worker.status_change()
    return workers


async def bench_size(reactor, size: int, workers_count: int, workdir: str, sync: str) -> dict:
    database_url = "sqlite:" + os.path.join(workdir, "flamenco-manager.sqlite")
    manager = ManagerProcess({"database_url": database_url, "database_sync": sync}, workdir,
                             verbose=False, start_timeout=60)
    await manager.start()
    client = JobClient(manager.url, reactor, timeout=300)
    try:
        workers = await registered_workers(manager.url, workers_count)
        try:
            started = time.perf_counter()
            job = await client.submit({"name": f"bench {size}", "type": "sleep",
                                       "settings": {"n_tasks": size, "seconds": 0}})
            submit_seconds = time.perf_counter() - started
            dispatched, _, seconds = await drive(workers, 3600, assign_and_complete)
        finally:
            await close_all(workers)
        drained = time.perf_counter()
        while (await client.job(job["id"]))["status"] != "completed":
            await task.deferLater(reactor, 0.05, lambda: None)
        settled = time.perf_counter() - drained
    finally:
        await client.close()
        await manager.stop()
    return {"size": size, "sync": sync, "submit": submit_seconds, "dispatched": dispatched,
            "seconds": seconds, "settled": settled}


def print_table(rows: list[dict]) -> None:
    header = ("sync", "job tasks", "submit s", "dispatched", "seconds", "tasks/s",
              "job completed after s")
    lines = [header] + [
        (row["sync"], f"{row['size']:,}", f"{row['submit']:.2f}", f"{row['dispatched']:,}",
         f"{row['seconds']:.1f}", f"{row['dispatched'] / row['seconds']:,.0f}",
         f"{row['settled']:.2f}")
        for row in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for number, line in enumerate(lines):
        print("  ".join(cell.rjust(width) if column else cell.ljust(width)
                        for column, (cell, width) in enumerate(zip(line, widths, strict=True))))
        if number == 0:
            print("  ".join("-" * width for width in widths))


async def run(reactor, options) -> None:
    scratch = tempfile.mkdtemp(prefix="flamenco-bench-standalone-")
    try:
        rows = []
        for size in [int(size) for size in options.sizes.split(",") if size]:
            for sync in options.sync.split(","):
                workdir = os.path.join(scratch, f"size-{size}-{sync}")
                os.makedirs(workdir)
                rows.append(await bench_size(reactor, size, options.workers, workdir, sync))
        print()
        print(f"stand-alone Manager (SQLite), {options.workers} concurrent 2.x workers; one "
              "dispatch = POST /task + one update (completed)")
        print_table(rows)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--sync", default="full", help="database_sync settings, e.g. full,normal")
    options = parser.parse_args(argv)
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, options)))


if __name__ == "__main__":
    main()
