"""A whole farm on one machine: N simulated Workers against the twistd Manager and a Server.

The simulated Server runs as a child process with enough queued `sleep` tasks to keep every
Worker busy (or `--tasks`); the Manager is the real `twistd flamenco-manager` child process
(its default bcrypt cost, or `--bcrypt-cost`) relaying to it; the Workers are the project's own
`flamenco.testing` workers in this process, started one after another over `--ramp` seconds (a
registration storm when the ramp is short), then measured for `--seconds` more:

    .venv/bin/python bench/farm.py [--workers 1000] [--ramp 30] [--seconds 60]
                                   [--cadence realistic|stress] [--share-2-0 0.2]
                                   [--tasks N] [--bcrypt-cost 4] [--probe memory|cpu]

Cadence `realistic`: each task runs two commands of 5 s, so a Worker sends an update about every
2 s and a may-i-run every 5 s while it runs a 10 s task (what real Workers do). `stress`: the same
requests with 0.1 s commands. Printed: per endpoint and phase (ramp, steady) requests/s and
p50/p90/p99/max latency, errors by kind, tasks completed/s, and the Manager's CPU share and
resident memory. `--probe` runs the Manager under `bench/probe.py`: tracemalloc snapshots at
the start, the end of the ramp and the end (`memory`), or a cProfile of the steady phase
(`cpu`), written to `--probe-out`.memory.txt / .profile.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import treq  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET  # noqa: E402
from flamenco.testing.worker import (  # noqa: E402
    GENERATION_2_0, GENERATION_2_X, RequestTimeout, SimulatedWorker,
)
from bench.probe import ProbedManagerProcess  # noqa: E402
from tests.manager_process import ManagerProcess, free_port  # noqa: E402

CADENCES = {"realistic": 5.0, "stress": 0.1}  # seconds per command, two commands per task
TASKS_PER_JOB = 500
#: Path segments that are IDs or statuses, folded so that an endpoint is one row.
_ID = re.compile(r"/(?:[0-9a-f]{24}|asleep|awake|shutdown|testing|error)(?=/|$)")


class Recorder:
    """Latencies and errors per (phase, endpoint); the phase changes once the ramp is over."""

    def __init__(self):
        self.phase = "ramp"
        self.latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.errors: Counter = Counter()
        self.completed: Counter = Counter()
        self.phase_seconds: dict[str, float] = {}

    def endpoint(self, method: str, path: str) -> str:
        return f"{method} {_ID.sub('/{id}', '/' + path.lstrip('/'))}"

    def record(self, phase: str, endpoint: str, seconds: float, outcome: str) -> None:
        self.latencies[(phase, endpoint)].append(seconds)
        if outcome:
            self.errors[(phase, endpoint, outcome)] += 1


class MeasuredWorker(SimulatedWorker):
    recorder: Recorder

    async def request(self, method, path, doc=None, *, auth=True, data=None):
        phase, started = self.recorder.phase, time.perf_counter()
        endpoint = self.recorder.endpoint(method, path)
        try:
            answer = await super().request(method, path, doc, auth=auth, data=data)
        except RequestTimeout:
            self.recorder.record(phase, endpoint, time.perf_counter() - started, "timeout")
            raise
        except Exception as error:
            self.recorder.record(phase, endpoint, time.perf_counter() - started,
                                 type(error).__name__)
            raise
        outcome = f"HTTP {answer.code}" if answer.code >= 500 or answer.code == 429 else ""
        self.recorder.record(phase, endpoint, time.perf_counter() - started, outcome)
        return answer

    async def run_task(self, doc):
        outcome = await super().run_task(doc)
        if outcome.result == "completed":
            self.recorder.completed[self.recorder.phase] += 1
        return outcome


async def keep_working(worker: MeasuredWorker) -> None:
    """The worker's own loop; when a request error ends it mid-task, start over (sign on)."""
    while not worker._stopping:
        try:
            await worker.loop(after_task=0.5, after_nothing=2.0, after_error=2.0,
                              register_retry=5.0)
        except Exception as error:  # a timeout, a refused connection, an unexpected answer
            where = (worker.recorder.phase, "worker loop", type(error).__name__)
            worker.recorder.errors[where] += 1
            await task.deferLater(worker.reactor, 1.0, lambda: None)


class ProcessMeter:
    """CPU seconds and resident memory of a child process, from /proc."""

    def __init__(self, pid: int):
        self.pid = pid
        self.max_rss_mib = 0.0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def sample_rss(self) -> float:
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                    self.max_rss_mib = max(self.max_rss_mib, rss)
                    return rss
        return 0.0


class Probe:
    """Snapshots (memory) or a profile of the steady phase (cpu) inside the Manager."""

    def __init__(self, manager: ManagerProcess, kind: str):
        self.manager, self.kind = manager, kind

    def started(self) -> None:
        if self.kind == "memory":
            self.manager.snapshot()

    def ramp_over(self) -> None:
        if self.kind == "memory":
            self.manager.snapshot()
        elif self.kind == "cpu":
            self.manager.toggle_profile()

    def steady_over(self) -> None:
        if self.kind == "memory":
            self.manager.snapshot()
        elif self.kind == "cpu":
            self.manager.toggle_profile()


def start_server(port: int, workdir: str) -> subprocess.Popen:
    log = open(os.path.join(workdir, "server.log"), "w")
    return subprocess.Popen(
        [sys.executable, "-m", "flamenco.testing.server", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))


async def create_jobs(server_url: str, count: int, command_seconds: float) -> None:
    commands = [{"name": "sleep", "settings": {"time_in_seconds": command_seconds}}] * 2
    for start in range(0, count, TASKS_PER_JOB):
        tasks = [{"name": f"t{n}", "task_type": "sleep", "commands": commands}
                 for n in range(start, min(count, start + TASKS_PER_JOB))]
        response = await treq.post(server_url + "sim/jobs", json.dumps({"tasks": tasks}).encode(),
                                   persistent=False)
        if response.code != 201:
            raise RuntimeError(f"the simulated Server refused a job: {response.code}")
        await response.content()


async def wait_for_port(url: str, seconds: float) -> None:
    from twisted.internet import reactor

    deadline = reactor.seconds() + seconds
    while True:
        try:
            response = await treq.get(url + "sim/state", persistent=False)
            await response.content()
            return
        except Exception:
            if reactor.seconds() > deadline:
                raise
            await task.deferLater(reactor, 0.2, lambda: None)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def print_table(header: tuple, lines: list[tuple]) -> None:
    rows = [tuple(str(cell) for cell in header)] + [tuple(str(c) for c in line) for line in lines]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for number, row in enumerate(rows):
        print("  ".join(cell.rjust(width) if column > 1 else cell.ljust(width)
                        for column, (cell, width) in enumerate(zip(row, widths, strict=True))))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def report(options, recorder: Recorder, cpu: dict, meter: ProcessMeter,
           registered: dict) -> None:
    print(f"\n{options.workers} Workers ({options.share_2_0:.0%} 2.0), ramp {options.ramp:.0f} s,"
          f" steady {options.seconds:.0f} s, cadence {options.cadence}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    lines = []
    for (phase, endpoint), values in sorted(recorder.latencies.items()):
        seconds = recorder.phase_seconds[phase]
        lines.append((phase, endpoint, len(values), f"{len(values) / seconds:,.1f}",
                      *(f"{percentile(values, p) * 1000:,.0f}" for p in (0.5, 0.9, 0.99)),
                      f"{max(values) * 1000:,.0f}"))
    print_table(("phase", "endpoint", "requests", "req/s", "p50 ms", "p90 ms", "p99 ms",
                 "max ms"), lines)
    print()
    if recorder.errors:
        print_table(("phase", "endpoint", "error", "count"),
                    [(p, e, kind, n) for (p, e, kind), n in sorted(recorder.errors.items())])
    else:
        print("errors: none")
    print()

    def requests_in(phase: str) -> int:
        return sum(len(v) for (p, _), v in recorder.latencies.items() if p == phase)

    print_table(("phase", "seconds", "requests/s", "tasks completed/s", "Manager CPU",
                 "Manager RSS MiB", "Workers registered at the end"),
                [(phase, f"{recorder.phase_seconds[phase]:.0f}",
                  f"{requests_in(phase) / recorder.phase_seconds[phase]:,.0f}",
                  f"{recorder.completed[phase] / recorder.phase_seconds[phase]:,.1f}",
                  f"{cpu[phase] / recorder.phase_seconds[phase]:.0%}",
                  f"{meter.max_rss_mib:.0f} (max)", f"{registered[phase]:,}")
                 for phase in ("ramp", "steady")])
    steady_requests = requests_in("steady")
    if steady_requests:
        print(f"\nManager CPU per steady-phase request:"
              f" {cpu['steady'] / steady_requests * 1000:.2f} ms"
              f" ({cpu['steady']:.1f} CPU-s for {steady_requests:,} requests)")


async def run(options) -> None:
    from twisted.internet import reactor

    command_seconds = CADENCES[options.cadence]
    scratch = tempfile.mkdtemp(prefix="flamenco-farm-")
    server_port = free_port()
    server_url = f"http://127.0.0.1:{server_port}/"
    server = start_server(server_port, scratch)
    workers: list[MeasuredWorker] = []
    loops = []
    try:
        await wait_for_port(server_url, 20)
        per_worker = (options.ramp + options.seconds) / (2 * command_seconds) + 2
        await create_jobs(server_url, options.tasks or int(options.workers * per_worker),
                          command_seconds)
        config = {"flamenco": server_url, "manager_id": DEFAULT_MANAGER_ID,
                  "manager_secret": DEFAULT_MANAGER_SECRET, "own_url": "http://127.0.0.1:1/",
                  "download_task_sleep_seconds": 10}
        if options.bcrypt_cost:
            config["worker_secret_bcrypt_cost"] = options.bcrypt_cost
        manager: ManagerProcess
        if options.probe:
            manager = ProbedManagerProcess(config, scratch, verbose=False, start_timeout=60,
                                           probe=options.probe, out=options.probe_out)
        else:
            manager = ManagerProcess(config, scratch, verbose=False, start_timeout=60)
        await manager.start()
        probe = Probe(manager, options.probe)
        probe.started()
        meter = ProcessMeter(manager.process.pid)
        rss_sampler = task.LoopingCall(meter.sample_rss)
        rss_sampler.start(1.0)
        recorder = Recorder()
        MeasuredWorker.recorder = recorder
        started = time.perf_counter()
        cpu_start = meter.cpu_seconds()
        for number in range(options.workers):
            generation = (GENERATION_2_0 if number < options.workers * options.share_2_0
                          else GENERATION_2_X)
            worker = MeasuredWorker(manager.url, generation=generation,
                                    nickname=f"farm-{number:04d}", types=("sleep",),
                                    work_seconds=command_seconds, may_i_run_interval=5.0)
            workers.append(worker)
            delay = options.ramp * number / options.workers
            loops.append(task.deferLater(reactor, delay, lambda w=worker: defer.ensureDeferred(
                keep_working(w))))
        await task.deferLater(reactor, options.ramp, lambda: None)
        recorder.phase_seconds["ramp"] = time.perf_counter() - started
        cpu = {"ramp": meter.cpu_seconds() - cpu_start}
        registered = {"ramp": sum(bool(w.worker_id) for w in workers)}
        recorder.phase, started, cpu_start = "steady", time.perf_counter(), meter.cpu_seconds()
        probe.ramp_over()
        await task.deferLater(reactor, options.seconds, lambda: None)
        probe.steady_over()
        recorder.phase_seconds["steady"] = time.perf_counter() - started
        cpu["steady"] = meter.cpu_seconds() - cpu_start
        registered["steady"] = sum(bool(w.worker_id) for w in workers)
        recorder.phase = "stopping"
        rss_sampler.stop()
        report(options, recorder, cpu, meter, registered)
        for worker in workers:
            worker.stop()
        await defer.DeferredList(loops, consumeErrors=True)
        await manager.stop(timeout=60)
    finally:
        for worker in workers:
            await worker.close()
        server.terminate()
        server.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--ramp", type=float, default=30.0,
                        help="seconds over which the Workers start (registration storm)")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady phase, after the ramp")
    parser.add_argument("--cadence", choices=sorted(CADENCES), default="realistic")
    parser.add_argument("--share-2-0", type=float, default=0.2,
                        help="share of 2017 (2.0) Workers; the rest speak 2.x")
    parser.add_argument("--tasks", type=int, default=0,
                        help="tasks queued at the Server (default: enough for every Worker)")
    parser.add_argument("--bcrypt-cost", type=int, default=0,
                        help="the Manager's worker_secret_bcrypt_cost (default: its default, 8);"
                             " 4 makes registration cheap, to measure the steady state")
    parser.add_argument("--probe", choices=("memory", "cpu"), default="",
                        help="tracemalloc snapshots (start, end of ramp, end) or a cProfile of "
                             "the steady phase inside the Manager, written to --probe-out.*.txt")
    parser.add_argument("--probe-out", default="farm-probe")
    options = parser.parse_args(argv)
    options.probe_out = os.path.abspath(options.probe_out)
    task.react(lambda reactor: defer.ensureDeferred(run(options)))


if __name__ == "__main__":
    main()
