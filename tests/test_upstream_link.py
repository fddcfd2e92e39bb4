"""`build_upstream`: the wiring the Manager uses, with every timer on one Clock."""

from twisted.application.service import MultiService
from twisted.internet import task
from twisted.trial import unittest

from flamenco.config import parse_config
from flamenco.documents import Task
from flamenco.testing import serve_for_test, sqlite_store_for_test
from flamenco.testing.server import DEFAULT_MANAGER_ID, DEFAULT_MANAGER_SECRET, demo_job_tasks
from flamenco.updates import UpdateQueue
from flamenco.upstream import Freshness, ITaskSource
from flamenco.upstream.link import build_upstream


class BuildUpstreamTests(unittest.TestCase):
    async def test_services_and_task_source(self):
        server = serve_for_test(self)
        _, ids = server.create_job(demo_job_tasks())
        config, _ = parse_config({
            "flamenco": server.url, "manager_id": DEFAULT_MANAGER_ID,
            "manager_secret": DEFAULT_MANAGER_SECRET, "own_url": "http://manager:8083/",
            "task_update_push_max_count": 5,
        })
        store = await sqlite_store_for_test(self)
        clock = task.Clock()
        updates = UpdateQueue(store, clock)
        link, services = build_upstream(config, store, updates, clock, "manager-a")
        self.assertTrue(ITaskSource.providedBy(link))
        parent = MultiService()
        for service in services:
            service.setServiceParent(parent)
        parent.startService()
        await link.downloader.when_idle()
        await link.pusher.when_idle()
        local = await store.get_task(ids[0])
        self.assertEqual(local.status, "claimed-by-manager")
        self.assertEqual([b["count"] for b in server.pushed_batches], [0])
        clock.advance(0.5)
        await link.notifier.startup.current
        self.assertEqual(server.notifications[0][1]["manager_url"], "http://manager:8083/")

        answer = await link.refetch(Task(doc=server.tasks[ids[0]].public()))
        self.assertIs(answer.freshness, Freshness.UNCHANGED)
        link.kick(["sleep"])
        clock.advance(0)
        await link.downloader.when_idle()
        self.assertEqual(server.requests[-1][1]["hint"], ["sleep"])

        await updates.queue(ids[0], task_status="active")
        link.push_soon()
        clock.advance(1)
        await link.pusher.when_idle()
        self.assertEqual(server.task_status(ids[0]), "active")
        await parent.stopService()
