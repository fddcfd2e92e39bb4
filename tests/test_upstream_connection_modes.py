"""The upstream client in every connection mode of the simulated Server, requests back to back
(as a draining pusher sends them), gzip refused by the Server and gzip off: nothing fails."""

from twisted.internet import task
from twisted.trial import unittest

from flamenco.ids import new_object_id
from flamenco.testing import client_for_test, serve_for_test
from flamenco.testing.connections import MODES

NOTIFICATION = {"manager_url": "http://m/", "variables": {}, "nr_of_workers": 0,
                "path_replacement": {}}


class ConnectionModeClientTests(unittest.TestCase):
    async def exercise(self, mode: str, compress: bool) -> None:
        server = serve_for_test(self, connection_mode=mode, accept_gzip=False, idle_timeout=0.3)
        _, (task_id,) = server.create_job([{}])
        client = client_for_test(self, server, clock=task.Clock(), timeout=5,
                                 gzip_bodies=compress)
        await client.startup(NOTIFICATION)
        self.assertEqual((await client.depsgraph(None)).code, 200)
        for _ in range(3):
            update = {"_id": new_object_id(), "task_id": task_id, "log": "line",
                      "received_on_manager": "2018-01-10T09:16:40.512Z"}
            self.assertEqual((await client.push([update]))["handled_update_ids"],
                             [update["_id"]])
        self.assertEqual((await client.fetch_task(new_object_id(), "")).code, 404)
        self.assertEqual((await client.fetch_task(task_id, "")).code, 200)
        await client.push([])
        self.assertEqual([b["count"] for b in server.pushed_batches], [1, 1, 1, 0])
        self.assertFalse(any(b["gzip"] for b in server.pushed_batches))
        self.assertEqual(client.gzip_choice.refused_at is not None, compress)


def _mode_test(mode: str, compress: bool):
    async def test(self):
        await self.exercise(mode, compress)

    return test


for _mode in MODES:
    for _compress in (True, False):
        _name = "test_" + "".join(c if c.isalnum() else "_" for c in _mode)
        setattr(ConnectionModeClientTests, f"{_name}_gzip_{'on' if _compress else 'off'}",
                _mode_test(_mode, _compress))
