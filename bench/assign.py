"""How many `/task` assignments per second does the Manager hand out?

For each size (default 1k, 10k, 100k queued tasks, with parent links and several job/task
types) the store is filled *before* the Manager starts; the Manager then runs as the real
`twistd flamenco-manager` child process (bcrypt cost 10, as in production) on loopback, and
`--workers` simulated 2.x workers in this process, pre-registered and authenticated once
(the Manager caches verified credentials), loop for `--seconds` (or until `/task` answers
204, when the queue has run dry; the 1k queue does that well before 10 s):

    POST /task  -> 200 + task        (counted as one assignment)
    POST /tasks/{id}/update  {"task_status": "completed"}   (so the next /task gets a new task)

For the ceiling, the same client runs the same `POST /task` loop against a bare Klein endpoint
in another tiny child process that returns a fixed task document; ratio = assignments/s divided
by the bare requests/s (one assignment costs two requests, so 0.5 is the ideal).

    .venv/bin/python bench/assign.py [--sizes 1000,10000,100000] [--workers 16] [--seconds 10]
                                     [--store mongodb://host:port/db] [--sync full,normal]
                                     [--probe-out PATH]

`--sync` runs each size once per `database_sync` setting of the embedded store (default: full
only), which shows what syncing every group commit to disk costs.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from twisted.internet import defer, task  # noqa: E402

from flamenco.config import parse_config  # noqa: E402
from flamenco.ids import new_object_id  # noqa: E402
from flamenco.store import store_for  # noqa: E402
from flamenco.testing.worker import GENERATION_2_X, SimulatedWorker  # noqa: E402
from bench.probe import ProbedManagerProcess  # noqa: E402
from tests.manager_process import ManagerProcess  # noqa: E402

#: (job_type, task_type, command) — several kinds of work, as a render farm has them.
KINDS = [
    ("blender-render", "blender-render", "blender_render"),
    ("blender-render", "file-management", "move_out_of_way"),
    ("blender-render", "exr-merge", "exr_merge"),
    ("sleep", None, "sleep"),
    ("video-encoding", "video-encoding", "create_video"),
]
WORKER_TYPES = ("blender-render", "file-management", "exr-merge", "sleep", "video-encoding")
TASKS_PER_JOB = 100
PARENT_SHARE = 0.2
LOAD_CHUNK = 5000


def make_tasks(count: int, seed: int = 1) -> list[dict]:
    """`count` queued tasks in jobs of 100; about a fifth have a parent earlier in their job."""
    rng = random.Random(seed)
    docs: list[dict] = []
    job = new_object_id()
    job_priority = 50
    for number in range(count):
        if number % TASKS_PER_JOB == 0:
            job, job_priority = new_object_id(), rng.randint(1, 100)
        job_type, task_type, command = KINDS[rng.randrange(len(KINDS))]
        doc = {
            "_id": new_object_id(),
            "_etag": f"etag-{number}",
            "job": job,
            "manager": "5a1f0c3e9f1b2c0d4e5f6a70",
            "project": "5a0b00000000000000000001",
            "user": "5a0b00000000000000000002",
            "name": f"{command}-{number}",
            "status": "claimed-by-manager" if rng.random() < 0.8 else "queued",
            "priority": rng.randint(0, 100),
            "job_priority": job_priority,
            "job_type": job_type,
            "commands": [{"name": command, "settings": {
                "blender_cmd": "{blender} --factory-startup", "filepath": "/shared/shot.blend",
                "frames": f"{number}..{number + 9}", "render_output": "/render/shot/######"}}],
        }
        if task_type:
            doc["task_type"] = task_type
        if number % TASKS_PER_JOB and rng.random() < PARENT_SHARE:
            doc["parents"] = [docs[number - 1 - rng.randrange(number % TASKS_PER_JOB)]["_id"]]
        docs.append(doc)
    return docs


async def fill_store(database_url: str, docs: list[dict]) -> float:
    """Empty the store's tasks and queue, load `docs`; returns the seconds it took."""
    config, _ = parse_config({"database_url": database_url})
    store = store_for(config)
    started = time.perf_counter()
    await store.open()
    try:
        await store.erase_tasks()
        await store.purge_queue()
        now = datetime.now(timezone.utc)
        for start in range(0, len(docs), LOAD_CHUNK):
            await store.store_server_tasks(docs[start:start + LOAD_CHUNK], now)
    finally:
        await store.close()
    return time.perf_counter() - started


async def drive(workers: list[SimulatedWorker], seconds: float, cycle) -> tuple[int, int, float]:
    """Run `cycle(worker)` in a loop on every worker for `seconds`: (counted, requests, elapsed)."""
    from twisted.internet import reactor

    totals = {"counted": 0, "requests": 0}
    deadline = reactor.seconds() + seconds

    async def one(worker):
        while reactor.seconds() < deadline:
            counted, requests = await cycle(worker)
            totals["counted"] += counted
            totals["requests"] += requests
            if not counted:
                return  # the queue is empty (for this worker)

    started = time.perf_counter()
    await defer.gatherResults([defer.ensureDeferred(one(w)) for w in workers],
                              consumeErrors=True)
    return totals["counted"], totals["requests"], time.perf_counter() - started


async def assign_and_complete(worker: SimulatedWorker) -> tuple[int, int]:
    doc = await worker.ask_for_task()
    if not isinstance(doc, dict):
        return 0, 1
    code = await worker.send_update(doc["_id"], task_status="completed")
    if code != 204:
        raise RuntimeError(f"update of {doc['_id']} answered {code}")
    return 1, 2


async def registered_workers(url: str, count: int) -> list[SimulatedWorker]:
    workers = [SimulatedWorker(url, generation=GENERATION_2_X, nickname=f"bench-{n:02d}",
                               types=WORKER_TYPES) for n in range(count)]
    for worker in workers:
        await worker.register()
    # One authenticated request each, so bcrypt runs before the clock starts.
    await defer.gatherResults([defer.ensureDeferred(w.status_change()) for w in workers])
    return workers


async def close_all(workers) -> None:
    await defer.gatherResults([defer.ensureDeferred(w.close()) for w in workers])


async def bench_manager(database_url: str, size: int, workers_count: int, seconds: float,
                        workdir: str, sync: str, probe_out: str = "") -> dict:
    docs = make_tasks(size)
    load_seconds = await fill_store(database_url, docs)
    config = {"database_url": database_url, "database_sync": sync}
    manager: ManagerProcess
    if probe_out:
        manager = ProbedManagerProcess(config, workdir, verbose=False, start_timeout=60,
                                       probe="cpu", out=f"{probe_out}-{size}-{sync}")
    else:
        manager = ManagerProcess(config, workdir, verbose=False, start_timeout=60)
    await manager.start()
    try:
        workers = await registered_workers(manager.url, workers_count)
        try:
            if probe_out:
                manager.toggle_profile()
            assignments, requests, elapsed = await drive(workers, seconds, assign_and_complete)
            if probe_out:
                manager.toggle_profile()
        finally:
            await close_all(workers)
    finally:
        await manager.stop()
    return {"size": size, "assignments": assignments, "requests": requests,
            "seconds": elapsed, "load_seconds": load_seconds, "sync": sync}


# -- the bare Klein ceiling ---------------------------------------------------------------------

BARE_TASK = make_tasks(1)[0]


def serve_bare_klein() -> None:
    """Child-process mode: `POST /task` answers a fixed task document; prints the port."""
    import json

    from klein import Klein
    from twisted.internet import reactor
    from twisted.web.server import Site

    app = Klein()
    body = json.dumps(dict(BARE_TASK, status="active")).encode() + b"\n"

    @app.route("/task", methods=["POST"])
    def assign(request):
        request.setHeader(b"Content-Type", b"application/json")
        return body

    @app.route("/", methods=["GET"])
    def status(request):
        request.setHeader(b"Content-Type", b"application/json")
        return b"{}\n"

    port = reactor.listenTCP(0, Site(app.resource()), interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


async def bench_bare_klein(workers_count: int, seconds: float) -> tuple[int, float]:
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-bare-klein"],
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        port = int(child.stdout.readline())
        url = f"http://127.0.0.1:{port}/"
        workers = [SimulatedWorker(url, generation=GENERATION_2_X, nickname=f"bare-{n:02d}",
                                   worker_id=new_object_id(), secret="s" * 64)
                   for n in range(workers_count)]

        async def ask(worker):
            doc = await worker.ask_for_task()
            return (1 if isinstance(doc, dict) else 0), 1

        try:
            await defer.gatherResults([defer.ensureDeferred(ask(w)) for w in workers])
            answered, _, elapsed = await drive(workers, seconds, ask)
        finally:
            await close_all(workers)
        return answered, elapsed
    finally:
        child.terminate()
        child.wait()


# -- main ---------------------------------------------------------------------------------------

def print_table(store_name: str, rows: list[dict], bare_rate: float) -> None:
    header = ("store", "sync", "queued tasks", "assignments", "seconds", "assignments/s",
              "bare-Klein req/s", "ratio")
    lines = [header]
    for row in rows:
        rate = row["assignments"] / row["seconds"]
        sync = "j:true" if store_name == "mongodb" else row["sync"]
        lines.append((store_name, sync, f"{row['size']:,}", f"{row['assignments']:,}",
                      f"{row['seconds']:.1f}", f"{rate:,.0f}", f"{bare_rate:,.0f}",
                      f"{rate / bare_rate:.2f}"))
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    for number, line in enumerate(lines):
        print("  ".join(cell.rjust(width) if column else cell.ljust(width)
                        for column, (cell, width) in enumerate(zip(line, widths, strict=True))))
        if number == 0:
            print("  ".join("-" * width for width in widths))


async def run(options) -> None:
    sizes = [int(size) for size in options.sizes.split(",") if size]
    scratch = tempfile.mkdtemp(prefix="flamenco-bench-")
    try:
        answered, elapsed = await bench_bare_klein(options.workers, options.seconds)
        bare_rate = answered / elapsed
        print(f"bare Klein: {answered:,} requests in {elapsed:.1f} s", file=sys.stderr)
        rows = []
        syncs = ["full"] if options.store else options.sync.split(",")
        for size in sizes:
            for sync in syncs:
                workdir = os.path.join(scratch, f"size-{size}-{sync}")
                os.makedirs(workdir)
                if options.store:
                    database_url = options.store
                else:
                    database_url = "sqlite:" + os.path.join(workdir, "flamenco-manager.sqlite")
                row = await bench_manager(database_url, size, options.workers, options.seconds,
                                          workdir, sync, options.probe_out)
                print(f"{size:,} tasks ({sync}): loaded in {row['load_seconds']:.1f} s, "
                      f"{row['assignments']:,} assignments, {row['requests']:,} requests "
                      f"in {row['seconds']:.1f} s", file=sys.stderr)
                rows.append(row)
        store_name = "mongodb" if options.store.startswith("mongodb://") else "sqlite"
        print()
        print(f"{options.workers} concurrent workers; one assignment = POST /task + one update "
              f"(completed); bare Klein = POST /task only")
        print_table(store_name, rows, bare_rate)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--store", default="",
                        help="mongodb://host:port/db (default: a fresh SQLite file per size)")
    parser.add_argument("--sync", default="full",
                        help="database_sync settings to compare, e.g. full,normal (SQLite only)")
    parser.add_argument("--probe-out", default="",
                        help="profile the Manager while it assigns (bench/probe.py), written to"
                             " PROBE_OUT-SIZE-SYNC.profile.txt")
    parser.add_argument("--serve-bare-klein", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve_bare_klein:
        serve_bare_klein()
        return
    task.react(lambda reactor: defer.ensureDeferred(run(options)))


if __name__ == "__main__":
    main()
