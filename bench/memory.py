"""The Manager's resident memory with N connected Workers and M queued tasks.

The store is filled with `--tasks` queued tasks (as in `bench/assign.py`) before the `twistd`
Manager starts (stand-alone, bcrypt cost 4 so that registering thousands of Workers is cheap);
then `--workers` simulated 2.x Workers register, each on its own kept-alive connection, make one
authenticated request, take a task with `POST /task` and send one update, a few at a time, and
stay connected. The Manager's RSS is printed after start, after the registrations and after the
assignments, and again after `--hold` seconds with everyone connected:

    .venv/bin/python bench/memory.py [--workers 4000] [--tasks 100000] [--hold 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from twisted.internet import defer, task  # noqa: E402

from bench.assign import WORKER_TYPES, fill_store, make_tasks  # noqa: E402
from bench.farm import ProcessMeter  # noqa: E402
from flamenco.testing.worker import GENERATION_2_X, SimulatedWorker  # noqa: E402
from tests.manager_process import ManagerProcess  # noqa: E402

AT_ONCE = 50


async def in_groups(workers, step) -> int:
    """`step(worker)` for every worker, AT_ONCE at a time, each tried up to three times
    (the machine may be busy); returns how many failed every time."""
    failed = 0

    async def patient(worker):
        nonlocal failed
        for _ in range(3):
            try:
                return await step(worker)
            except Exception:  # a timeout on a busy machine: try again
                continue
        failed += 1

    for start in range(0, len(workers), AT_ONCE):
        await defer.gatherResults([defer.ensureDeferred(patient(w))
                                   for w in workers[start:start + AT_ONCE]])
    return failed


async def run(options) -> None:
    from twisted.internet import reactor

    scratch = tempfile.mkdtemp(prefix="flamenco-memory-")
    workers: list[SimulatedWorker] = []
    try:
        database_url = "sqlite:" + os.path.join(scratch, "flamenco-manager.sqlite")
        load = await fill_store(database_url, make_tasks(options.tasks))
        print(f"{options.tasks:,} tasks loaded in {load:.0f} s", flush=True)
        manager = ManagerProcess({"database_url": database_url, "worker_secret_bcrypt_cost": 4},
                                 scratch, verbose=False, start_timeout=120)
        await manager.start()
        meter = ProcessMeter(manager.process.pid)
        rows = [("started", meter.sample_rss())]
        workers = [SimulatedWorker(manager.url, generation=GENERATION_2_X, nickname=f"m-{n:04d}",
                                   types=WORKER_TYPES) for n in range(options.workers)]
        started = time.perf_counter()

        async def register(worker):
            if not worker.worker_id:
                await worker.register()
            await worker.status_change()

        failed = await in_groups(workers, register)
        rows.append((f"{options.workers - failed:,} Workers registered, connected",
                     meter.sample_rss()))
        assigned = []

        async def take(worker):
            doc = await worker.ask_for_task()
            if isinstance(doc, dict):
                assigned.append(doc["_id"])
                await worker.send_update(doc["_id"], activity="rendering", log="frame 1\n")

        await in_groups(workers, take)
        rows.append((f"{len(assigned):,} tasks active, one update each", meter.sample_rss()))
        await task.deferLater(reactor, options.hold, lambda: None)
        rows.append((f"{options.hold:.0f} s later, all still connected", meter.sample_rss()))
        print(f"\n{options.workers:,} Workers, {options.tasks:,} queued tasks (SQLite); "
              f"{time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.1f} on "
              f"{os.cpu_count()} cores")
        width = max(len(what) for what, _ in rows)
        for what, rss in rows:
            print(f"{what.ljust(width)}  {rss:6.1f} MiB resident")
        print(f"{'maximum seen'.ljust(width)}  {meter.max_rss_mib:6.1f} MiB")
        await manager.stop(timeout=60)
    finally:
        for worker in workers:
            await worker.close()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--hold", type=float, default=30.0)
    options = parser.parse_args(argv)
    task.react(lambda reactor: defer.ensureDeferred(run(options)))


if __name__ == "__main__":
    main()
