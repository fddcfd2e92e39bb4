"""bcrypt on its own bounded threads, with a queue no longer than a Worker will wait.

A registration or a first sign-on costs one bcrypt run (about 0.1 s at cost 10 here). Run on
the reactor's shared thread pool, a storm of them queues in front of everything else that
uses it (name resolution of the Server link, for one), and requests whose Workers gave up
after their 3 s timeout are still hashed. Here:
- the jobs run on `threads` threads of their own (`concurrent.futures`, so an idle pool never
  holds the process open at exit), and the queue is held on the reactor thread;
- a job whose Deferred was cancelled before its turn is not run (Klein cancels a handler's
  Deferred when its client hangs up, which reaches the `submit` Deferred it awaits);
- a job that would finish later than `budget` seconds from now, judging by the measured
  time per job, is refused at once with `Overloaded` (503 + `Retry-After`);
- checks of known Workers' secrets (`urgent`) go before the hashing of new registrations,
  so a registration storm cannot hold back the sign-on of Workers already known.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from twisted.internet import defer

from flamenco.errors import ManagerError

#: The Workers' (both generations') HTTP timeout is 3 s; leave room for the rest of a request.
DEFAULT_BUDGET_SECONDS = 2.5


class Overloaded(ManagerError):
    """The hashing queue is full: try again in `retry_after` seconds (503)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, {"retry_after": retry_after})
        self.retry_after = retry_after


class HashingPool:
    def __init__(self, reactor, *, threads: int = 1, budget: float = DEFAULT_BUDGET_SECONDS,
                 seconds_per_job: float = 0.1):
        self.reactor = reactor
        self.threads = threads
        self.budget = budget
        #: Moving average of measured job durations (thread time, not the reactor's clock).
        self.seconds_per_job = seconds_per_job
        self.running = 0
        self.started = 0  # jobs run since start (tests, bench)
        self.skipped = 0  # jobs not run because their request had gone
        self._urgent: deque = deque()
        self._later: deque = deque()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bcrypt")

    @property
    def queued(self) -> int:
        return len(self._urgent) + len(self._later)

    def submit(self, function: Callable, *args, urgent: bool = False) -> defer.Deferred:
        """A Deferred for `function(*args)` run on the pool, or Overloaded raised at once."""
        ahead = self.running + len(self._urgent) + (0 if urgent else len(self._later))
        wait = (ahead // self.threads + 1) * self.seconds_per_job
        if ahead >= self.threads and wait > self.budget:
            raise Overloaded("too many secrets to check right now, try again later",
                             max(1, math.ceil(wait - self.budget)))
        done: defer.Deferred = defer.Deferred()
        (self._urgent if urgent else self._later).append((function, args, done))
        self._dispatch()
        return done

    def _dispatch(self) -> None:
        while self.running < self.threads and (self._urgent or self._later):
            function, args, done = (self._urgent or self._later).popleft()
            if done.called:  # cancelled: its request is gone
                self.skipped += 1
                continue
            self.running += 1
            self.started += 1
            future = self._executor.submit(_timed, function, *args)
            future.add_done_callback(functools.partial(self._finished_in_thread, done))

    def _finished_in_thread(self, done: defer.Deferred, future: Future) -> None:
        self.reactor.callFromThread(self._finished, future, done)

    def _finished(self, future, done: defer.Deferred) -> None:
        self.running -= 1
        if future.cancelled():  # the pool was stopped
            return
        error = future.exception()
        if error is None:
            result, seconds = future.result()
            self.seconds_per_job = 0.8 * self.seconds_per_job + 0.2 * seconds
        self._dispatch()
        if done.called:  # cancelled while it ran
            return
        if error is None:
            done.callback(result)
        else:
            done.errback(error)

    def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _timed(function: Callable, *args):
    start = time.monotonic()
    result = function(*args)
    return result, time.monotonic() - start
