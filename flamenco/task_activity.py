"""Recent log lines and status changes per task, kept in memory from the event bus.

The Manager does not keep task logs (they travel to the Server with the updates); for the
operator view it remembers the last `log_lines` lines and `history` status changes of the
`tasks` most recently active tasks seen by this process.
"""

from __future__ import annotations

import collections

from twisted.internet.interfaces import IReactorTime

from flamenco.events import Event, EventBus
from flamenco.timefmt import rfc3339, utc_now


class TaskActivity:
    def __init__(self, bus: EventBus, clock: IReactorTime, *, tasks: int = 1000,
                 log_lines: int = 200, history: int = 50):
        self.clock = clock
        self.max_tasks = tasks
        self.max_lines = log_lines
        self.max_history = history
        self._logs: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()
        self._history: dict[str, collections.deque] = {}
        bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type != "task":
            return
        task_id = event.data["id"]
        if task_id not in self._logs:
            self._logs[task_id] = collections.deque(maxlen=self.max_lines)
            self._history[task_id] = collections.deque(maxlen=self.max_history)
            while len(self._logs) > self.max_tasks:
                oldest, _ = self._logs.popitem(last=False)
                del self._history[oldest]
        self._logs.move_to_end(task_id)
        log = event.data.get("log")
        if log:
            self._logs[task_id].extend(line for line in log.splitlines() if line.strip())
        status = event.data.get("status")
        history = self._history[task_id]
        if status and (not history or history[-1]["status"] != status):
            history.append({"status": status, "at": rfc3339(utc_now(self.clock))})

    def log_tail(self, task_id: str) -> list[str]:
        return list(self._logs.get(task_id, ()))

    def status_history(self, task_id: str) -> list[dict]:
        return list(self._history.get(task_id, ()))
