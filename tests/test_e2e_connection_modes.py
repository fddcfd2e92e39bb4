"""End to end in every connection mode of the simulated Server (`flamenco.testing.connections`),
with gzip on and off: the diamond job runs to completion and no push, download or refetch of
the Manager fails on the way.

"gzip on" is `upstream_gzip: true` against a Server that refuses gzip (`415`, answered before
the body in the close-before-body mode): the error answers are what the close-after-error and
close-before-body modes act on, and learning the refusal is the first push of the run (the
keep-alive diamond with gzip accepted is `test_e2e_server`). "gzip off" is
`upstream_gzip: false`. One Manager process per test, short intervals: about 3 s each.
"""

from __future__ import annotations

from flamenco.testing.connections import HTTP_1_0, IDLE_TIMEOUT, MODES
from flamenco.testing.worker import GENERATION_2_0, GENERATION_2_X
from flamenco.upstream.gzip_choice import SETTING_PREFIX
from tests.test_e2e_manager import read_store
from tests.test_e2e_server import ServerFarm, diamond, statuses_are

#: What the Manager logs when something towards the Server failed.
FAILURES = ("pushing task updates failed", "task download failed", "handing it out as cached",
            "notification failed", "Traceback")
REFUSAL_LEARNT = "the Server refused a gzip-compressed push"


class ConnectionModesEndToEndTest(ServerFarm):
    async def run_diamond(self, mode: str, compress: bool) -> None:
        # The idle timeout (0.5 s) is shorter than the Manager's push interval (1 s).
        await self.setup_farm(diamond(), {"upstream_gzip": compress}, connection_mode=mode,
                              accept_gzip=False, idle_timeout=0.5)
        self.start_workers(GENERATION_2_X, GENERATION_2_0)
        await self.server.wait_for(statuses_are(self.ids, "completed"), 30)
        await self.server.wait_for(lambda s: all(len(s.logs_of(t)) == 5 for t in self.ids), 30)
        self.assertEqual(self.server.jobs[self.job].status, "completed")
        self.assert_complete_logs(self.ids)
        await self.stop_workers()
        await self.manager.stop()
        output = self.manager.output()
        self.assertEqual([line for line in output.splitlines()
                          if any(failure in line for failure in FAILURES)], [])
        self.assertEqual(output.count(REFUSAL_LEARNT), 1 if compress else 0)
        self.assertFalse(any(batch["gzip"] for batch in self.server.pushed_batches))
        remembered = await read_store(
            self.manager.sqlite_path,
            lambda store: store.get_setting(SETTING_PREFIX + self.server.url.rstrip("/")))
        self.assertEqual(remembered is not None, compress)
        # The mode was in effect.
        counts = self.server.connection_counts()
        if mode == HTTP_1_0:
            self.assertGreaterEqual(counts["opened"], len(self.server.requests))
        if mode == IDLE_TIMEOUT:
            self.assertGreater(counts["idle_timeouts"], 0)


def _diamond_test(mode: str, compress: bool):
    async def test(self):
        await self.run_diamond(mode, compress)

    test.__doc__ = f"connection mode {mode}, gzip {'on' if compress else 'off'}"
    return test


for _mode in MODES:
    for _compress in (True, False):
        _name = "test_" + "".join(c if c.isalnum() else "_" for c in _mode)
        setattr(ConnectionModesEndToEndTest, f"{_name}_gzip_{'on' if _compress else 'off'}",
                _diamond_test(_mode, _compress))
