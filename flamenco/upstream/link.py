"""Wiring the link to the Flamenco Server: one call for the Manager assembly.

`build_upstream` returns the `ITaskSource` the scheduler uses (refetch + kick) and the services
to add to the Manager's MultiService: startup notification, task downloader, update pusher,
and one that closes the HTTP connection pool at shutdown.
"""

from __future__ import annotations

from twisted.application.service import IService, Service
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from flamenco.cancellation import CancelRequests
from flamenco.config import Config
from flamenco.updates import UpdateQueue
from flamenco.upstream import ITaskSource
from flamenco.upstream.client import UpstreamClient
from flamenco.upstream.downloader import TaskDownloader
from flamenco.upstream.gzip_choice import GzipChoice
from flamenco.upstream.pusher import UpdatePusher
from flamenco.upstream.refetch import Refetcher
from flamenco.upstream.startup import StartupNotifier


@implementer(ITaskSource)
class UpstreamLink:
    """What the rest of the Manager sees of the Server."""

    def __init__(self, refetcher: Refetcher, downloader: TaskDownloader, pusher: UpdatePusher,
                 notifier: StartupNotifier):
        self.refetcher = refetcher
        self.downloader = downloader
        self.pusher = pusher
        self.notifier = notifier

    def refetch(self, task):
        return self.refetcher.refetch(task)

    def kick(self, types) -> None:
        self.downloader.kick(types)

    def push_soon(self) -> None:
        self.pusher.push_soon()

    def download_now(self) -> None:
        self.downloader.download_now()

    def types_changed(self) -> None:
        self.notifier.types_changed()


class _ClosePool(Service):
    def __init__(self, client: UpstreamClient):
        self.client = client

    def stopService(self):
        super().stopService()
        return self.client.close()


def build_upstream(config: Config, store, updates: UpdateQueue, clock: IReactorTime,
                   lease_holder: str, *, reactor=None,
                   client: UpstreamClient | None = None) -> tuple[UpstreamLink, list[IService]]:
    """The Server link for a Manager. `clock` drives every timer and deadline; `reactor` (the
    global one by default) makes the HTTP connections."""
    if client is None:
        client = UpstreamClient(config.flamenco, config.manager_id, config.manager_secret,
                                timeout=config.upstream_timeout_seconds, reactor=reactor,
                                clock=clock,
                                gzip_bodies=GzipChoice(store, clock, config.flamenco,
                                                       enabled=config.upstream_gzip))
    refetcher = Refetcher(client, clock, config.refetch_timeout_seconds)
    downloader = TaskDownloader(
        client, store, clock,
        interval=config.download_task_sleep_seconds,
        throttle=config.download_task_recheck_throttle_seconds,
        lease_holder=lease_holder, lease_seconds=config.upstream_lease_seconds,
    )
    pusher = UpdatePusher(
        client, store, CancelRequests(store, updates), clock,
        max_count=config.task_update_push_max_count,
        max_interval=config.task_update_push_max_interval_seconds,
        cancel_interval=config.cancel_task_fetch_max_interval_seconds,
        backoff_max=config.task_update_push_backoff_max_seconds,
        give_up_after=config.task_update_give_up_after_sends,
        lease_holder=lease_holder, lease_seconds=config.upstream_lease_seconds,
    )
    notifier = StartupNotifier(client, store, clock, manager_url=config.manager_url,
                               variables=config.variables)
    link = UpstreamLink(refetcher, downloader, pusher, notifier)
    # Stopped in reverse order: the pool closes after the services using it.
    return link, [_ClosePool(client), notifier, downloader, pusher]
