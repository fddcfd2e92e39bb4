"""Cancel requests from the Server (PROTOCOL §4.5 E5/E6, §6.5.3) on a real SQLite store."""

from twisted.internet import task
from twisted.trial import unittest

from flamenco import statuses
from flamenco.cancellation import NOTE, CancelRequests
from flamenco.ids import new_object_id
from flamenco.testing import sqlite_store_for_test
from flamenco.updates import UpdateQueue
from tests.factories import T0, task_doc


class CancelRequestTests(unittest.TestCase):
    async def make(self):
        self.store = await sqlite_store_for_test(self)
        self.clock = task.Clock()
        self.clock.advance(T0.timestamp())
        self.updates = UpdateQueue(self.store, self.clock)
        self.cancels = CancelRequests(self.store, self.updates)

    async def task_with(self, status):
        doc = task_doc(status=status)
        await self.store.store_server_tasks([doc], T0)
        return doc["_id"]

    async def queued(self):
        return [(u.task_id, u.task_status, u.activity)
                for u in await self.store.queued_updates(100)]

    async def test_active_task_becomes_cancel_requested_without_an_update(self):
        await self.make()
        task_id = await self.task_with(statuses.ACTIVE)
        await self.cancels.handle([task_id])
        self.assertEqual((await self.store.get_task(task_id)).status, statuses.CANCEL_REQUESTED)
        self.assertEqual(await self.queued(), [])

    async def test_other_statuses_are_canceled_with_a_note(self):
        await self.make()
        for status in (statuses.CLAIMED, statuses.CANCEL_REQUESTED, statuses.COMPLETED,
                       statuses.SOFT_FAILED):
            task_id = await self.task_with(status)
            await self.cancels.handle([task_id])
            self.assertEqual((await self.store.get_task(task_id)).status, statuses.CANCELED)
            self.assertEqual((await self.queued())[-2:],
                             [(task_id, "", NOTE), (task_id, statuses.CANCELED, "")])

    async def test_unknown_task_gets_a_canceled_update(self):
        await self.make()
        task_id = new_object_id()
        await self.cancels.handle([task_id, task_id])
        self.assertEqual(await self.queued(), [(task_id, statuses.CANCELED, "")])

    async def test_not_queued_twice_until_acknowledged(self):
        await self.make()
        task_id = await self.task_with(statuses.CLAIMED)
        await self.cancels.handle([task_id])
        await self.cancels.handle([task_id])
        self.assertEqual(len(await self.queued()), 2)
        cancel_update = (await self.store.queued_updates(10))[-1]
        self.cancels.acknowledged([cancel_update.id])
        await self.cancels.handle([task_id])  # the Server still lists it: try again
        self.assertEqual(len(await self.queued()), 4)

    async def test_the_second_round_cancels_a_task_its_worker_gave_back(self):
        """A 2.x worker returns a task silently; the next listing ends it `canceled`."""
        await self.make()
        task_id = await self.task_with(statuses.ACTIVE)
        await self.cancels.handle([task_id])
        await self.cancels.handle([task_id])  # still cancel-requested locally: E6
        self.assertEqual((await self.store.get_task(task_id)).status, statuses.CANCELED)
        self.assertEqual([s for _, s, _ in await self.queued()], ["", statuses.CANCELED])
