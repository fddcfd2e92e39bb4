"""Assembling what the operator sees: event bus, task activity, upstream health, metrics."""

from __future__ import annotations

import attrs
from twisted.internet.interfaces import IReactorTime

from flamenco.config import Config
from flamenco.events import EventBus
from flamenco.farm_view import FarmView
from flamenco.metrics import ManagerMetrics
from flamenco.operator_login import OperatorLogin
from flamenco.previews import Previews
from flamenco.store.interface import IStore
from flamenco.task_activity import TaskActivity
from flamenco.upstream import ITaskSource
from flamenco.upstream.health import UpstreamHealth
from flamenco.upstream.link import UpstreamLink
from flamenco.workers import WorkerService


@attrs.define
class OperatorView:
    bus: EventBus
    activity: TaskActivity
    health: UpstreamHealth
    metrics: ManagerMetrics
    farm: FarmView
    login: OperatorLogin
    previews: Previews


def build_operator_view(config: Config, store: IStore, bus: EventBus, workers: WorkerService,
                        task_source: ITaskSource, clock: IReactorTime) -> OperatorView:
    """`store` should be the `ObservedStore` publishing to `bus`."""
    link = task_source if isinstance(task_source, UpstreamLink) else None
    activity = TaskActivity(bus, clock)
    health = UpstreamHealth(store, clock, bus, link,
                            stale_after=3 * config.task_update_push_max_interval_seconds)
    return OperatorView(
        bus=bus,
        activity=activity,
        health=health,
        metrics=ManagerMetrics(store, bus, link),
        farm=FarmView(config, store, workers, task_source, health, activity),
        login=OperatorLogin(config.admin_password, clock),
        previews=Previews(bus, clock),
    )
