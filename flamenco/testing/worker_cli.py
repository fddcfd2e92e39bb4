"""`python -m flamenco.testing.worker`: a few simulated Workers for demos, until interrupted."""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from flamenco.testing.worker import GENERATION_2_X, GENERATIONS, SimulatedWorker

log = Logger()


def main(argv: list[str] | None = None) -> None:
    import argparse
    import signal
    import sys

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    parser = argparse.ArgumentParser(
        prog="python -m flamenco.testing.worker",
        description="Run simulated Flamenco Workers against a Manager until interrupted.")
    parser.add_argument("--manager", default="http://localhost:8083/", help="Manager URL")
    parser.add_argument("--count", type=int, default=1, help="number of workers")
    parser.add_argument("--generation", choices=GENERATIONS, default=GENERATION_2_X)
    parser.add_argument("--work-seconds", type=float, default=1.0,
                        help="how long each command 'runs'")
    parser.add_argument("--may-i-run-interval", type=float, default=5.0)
    parser.add_argument("--types", default="", help="comma-separated supported types")
    parser.add_argument("--nickname", default="sim", help="nickname prefix")
    options = parser.parse_args(argv)

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    types = tuple(t for t in options.types.split(",") if t) or None
    workers = [
        SimulatedWorker(options.manager, generation=options.generation,
                        nickname=f"{options.nickname}-{number + 1}", types=types,
                        work_seconds=options.work_seconds,
                        may_i_run_interval=options.may_i_run_interval)
        for number in range(options.count)
    ]
    loops = [defer.ensureDeferred(worker.loop()) for worker in workers]

    def interrupted(*_):
        log.info("stopping {count} workers", count=len(workers))
        for worker in workers:
            worker.stop()

    reactor.callWhenRunning(lambda: signal.signal(signal.SIGINT, interrupted))
    reactor.callWhenRunning(lambda: signal.signal(signal.SIGTERM, interrupted))
    done = defer.gatherResults(loops, consumeErrors=True)
    done.addErrback(lambda failure: log.failure("worker loop failed", failure))
    done.addBoth(lambda _: defer.gatherResults([defer.ensureDeferred(w.close()) for w in workers]))
    done.addBoth(lambda _: reactor.stop())
    # The reactor's run() takes it; IReactorCore, as which twisted types `reactor`, does not.
    reactor.run(installSignalHandlers=False)  # type: ignore[call-arg]
