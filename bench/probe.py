"""The `twistd` Manager with a memory or CPU probe inside it (a bench tool, not a dependency).

`ProbedManagerProcess` starts the same `twistd flamenco-manager` child as `ManagerProcess`, but
through this module, which first installs signal handlers in the child:

- `SIGUSR1`: a `tracemalloc` snapshot (tracing from the start, `frames` deep); its top lines
  by size, and the growth since the previous snapshot, are appended to `<out>.memory.txt`.
- `SIGUSR2`: the first one starts `cProfile` on the reactor thread (timed in that thread's
  CPU time), the next stops it and writes the top functions by own and by cumulative time to
  `<out>.profile.txt`.

    manager = ProbedManagerProcess(config, workdir, probe="memory", out=path)
    await manager.start(); manager.snapshot(); ...; manager.snapshot()
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from tests.manager_process import ManagerProcess  # noqa: E402

TOP = 40


class ProbedManagerProcess(ManagerProcess):
    def __init__(self, config: dict, workdir: str, *, probe: str, out: str, frames: int = 1,
                 **kwargs):
        super().__init__(config, workdir, **kwargs)
        self.probe, self.out, self.frames = probe, out, frames

    def command(self) -> list[str]:
        twistd = super().command()
        settings = json.dumps({"probe": self.probe, "out": self.out, "frames": self.frames})
        return [sys.executable, os.path.abspath(__file__), settings] + twistd[3:]

    def snapshot(self) -> None:
        self.process.send_signal(signal.SIGUSR1)

    def toggle_profile(self) -> None:
        self.process.send_signal(signal.SIGUSR2)


def _install(settings: dict) -> None:
    import cProfile
    import pstats
    import tracemalloc

    out = settings["out"]
    state: dict = {"previous": None, "profile": None, "number": 0}
    if settings["probe"] == "memory":
        tracemalloc.start(settings["frames"])

    def snapshot(signum, frame):
        current = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        state["number"] += 1
        with open(out + ".memory.txt", "a") as stream:
            total = sum(stat.size for stat in current.statistics("filename"))
            stream.write(f"\n== snapshot {state['number']}: {total / 2**20:.1f} MiB traced ==\n")
            for stat in current.statistics("lineno")[:TOP]:
                stream.write(f"{stat.size / 2**20:8.2f} MiB {stat.count:9,} blocks  "
                             f"{stat.traceback[0]}\n")
            if state["previous"] is not None:
                stream.write("-- growth since the previous snapshot --\n")
                for diff in current.compare_to(state["previous"], "lineno")[:TOP]:
                    stream.write(f"{diff.size_diff / 2**20:+8.2f} MiB {diff.count_diff:+9,} "
                                 f"blocks  {diff.traceback[0]}\n")
        state["previous"] = current

    def profile(signum, frame):
        if state["profile"] is None:
            # CPU time of the reactor thread: on a shared machine, wall time would also count
            # the moments another process had the core.
            state["profile"] = cProfile.Profile(time.thread_time)
            state["profile"].enable()
            return
        state["profile"].disable()
        text = io.StringIO()
        stats = pstats.Stats(state["profile"], stream=text)
        stats.sort_stats("tottime").print_stats(TOP)
        stats.sort_stats("cumulative").print_stats(TOP)
        with open(out + ".profile.txt", "a") as stream:
            stream.write(text.getvalue())
        state["profile"] = None

    signal.signal(signal.SIGUSR1, snapshot)
    signal.signal(signal.SIGUSR2, profile)


if __name__ == "__main__":
    _install(json.loads(sys.argv[1]))
    sys.argv = ["twistd"] + sys.argv[2:]
    from twisted.scripts.twistd import run

    run()
