"""The Manager's Prometheus metrics, one registry per Manager (several may share a process).

Gauges that count store records are refreshed when scraped; counters and histograms are fed
as things happen (the event bus, the upstream pusher and downloader, the `/task` timing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from flamenco.events import Event, EventBus
from flamenco.store.interface import IStore

if TYPE_CHECKING:
    from flamenco.upstream.link import UpstreamLink

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ManagerMetrics:
    def __init__(self, store: IStore, bus: EventBus, link: UpstreamLink | None = None):
        self.store = store
        self.registry = CollectorRegistry()
        registry = self.registry
        self.tasks = Gauge("flamenco_tasks", "Local tasks by status and task type",
                           ["status", "task_type"], registry=registry)
        self.workers = Gauge("flamenco_workers", "Worker records by status", ["status"],
                             registry=registry)
        self.assign_seconds = Histogram(
            "flamenco_task_assign_seconds", "Time to answer a Worker's /task request",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry)
        self.task_updates = Counter("flamenco_task_updates",
                                    "Task updates queued (from Workers and the Manager itself)",
                                    registry=registry)
        self.queue = Gauge("flamenco_upstream_queue_updates",
                           "Task updates queued for the Server", registry=registry)
        self.push_seconds = Histogram("flamenco_upstream_push_seconds",
                                      "Duration of pushes of task updates to the Server",
                                      registry=registry)
        self.upstream_failures = Counter("flamenco_upstream_failures",
                                         "Failed exchanges with the Server", ["operation"],
                                         registry=registry)
        bus.subscribe(self._on_event)
        if link is not None:
            link.pusher.observers.append(self._pushed)
            link.downloader.observers.append(self._downloaded)

    def _on_event(self, event: Event) -> None:
        if event.type == "task" and "progress" in event.data:
            self.task_updates.inc()

    def _pushed(self, succeeded: bool, seconds: float) -> None:
        self.push_seconds.observe(seconds)
        if not succeeded:
            self.upstream_failures.labels(operation="push").inc()

    def _downloaded(self, succeeded: bool) -> None:
        if not succeeded:
            self.upstream_failures.labels(operation="download").inc()

    def observe_assign(self, seconds: float) -> None:
        self.assign_seconds.observe(seconds)

    async def render(self) -> bytes:
        """Refresh the store-backed gauges and render the text format."""
        counts = await self.store.task_counts()
        workers = await self.store.list_workers()
        queued = await self.store.count_queued_updates()
        self.tasks.clear()
        for status, task_type, count in counts:
            self.tasks.labels(status=status, task_type=task_type).set(count)
        self.workers.clear()
        by_status: dict[str, int] = {}
        for worker in workers:
            by_status[worker.status or "unknown"] = by_status.get(worker.status or "unknown", 0) + 1
        for status, count in by_status.items():
            self.workers.labels(status=status).set(count)
        self.queue.set(queued)
        return generate_latest(self.registry)
