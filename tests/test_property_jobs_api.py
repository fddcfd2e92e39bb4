"""Property tests of the job API: generated submissions and action bodies over real HTTP are
answered 201/200 or a 4xx with a JSON error, never 5xx, and a refusal stores nothing.

As in `test_property_endpoints`, Hypothesis runs in a thread and each example is sent with
`blockingCallFromThread` to the in-process Manager on the reactor thread; `EXAMPLES` per test
(FLAMENCO_PROPERTY_EXAMPLES=N searches deeper by hand).
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from tests.inprocess import InProcessManager

EXAMPLES = int(os.environ.get("FLAMENCO_PROPERTY_EXAMPLES", "60"))
SETTING_NAMES = ["n_tasks", "seconds", "cmd", "cmds", "task_type", "filepath", "frames",
                 "render_output", "format", "chunk_size", "blender_cmd", "video_output", "fps",
                 "ffmpeg_cmd"]

any_text = st.text(st.characters(codec=None, exclude_categories=())
                   | st.sampled_from(["\ud800", "\x00", "#", "\\"]), max_size=12) | \
    st.sampled_from(["S:\\p\\x", "/mnt/p/x", "1-5", ".."])
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2, 200) | st.floats()
           | any_text | st.sampled_from(["1-10", "1..3,7", "/r/####", "PNG", "echo hi"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(any_text, inner, max_size=3), max_leaves=8)
submissions = st.fixed_dictionaries(
    {"name": any_text | values,
     "type": st.sampled_from(["sleep", "exec", "blender-render", "render", ""]) | values},
    optional={"priority": scalars,
              "settings": st.dictionaries(st.sampled_from(SETTING_NAMES) | any_text, values,
                                          max_size=5) | values,
              "submitter_platform": st.sampled_from(["linux", "windows", "amiga"]) | values,
              "extra": values})
bodies = st.one_of(
    submissions.map(lambda doc: json.dumps(doc).encode()),
    values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=40),
    st.sampled_from([b"", b"{", b'{"priority": 1' + b"0" * 5000 + b"}"]),
)
ACTIONS = ["cancel", "pause", "resume", "requeue", "priority", "x"]


class JobAPIProperties(TestCase):
    async def farm(self):
        self.m = await InProcessManager(self, two_way_variables={
            "p": {"windows": "S:\\p", "linux": "/mnt/p"}}).start()
        response = await self.m.request("POST", "/api/jobs", json_body={
            "name": "existing", "type": "sleep", "settings": {"n_tasks": 2}})
        assert response.code == 201
        self.job_id = response.json["id"]

    async def snapshot(self):
        jobs = (await self.m.request("GET", "/api/jobs")).json["jobs"]
        return jobs, await self.m.store.count_tasks()

    async def exchange(self, method: str, path: str, body: bytes, refusals_change_nothing=True):
        before = await self.snapshot()
        response = await self.m.request(method, path, body=body,
                                        headers={b"Content-Type": b"application/json"})
        context = (method, path, body[:100], response.code, response.body[:300])
        self.assertLess(response.code, 500, context)
        if response.code >= 400:
            self.assertEqual(response.headers.getRawHeaders(b"content-type"),
                             [b"application/json"], context)
            self.assertIn("error", json.loads(response.body), context)
            if refusals_change_nothing:
                self.assertEqual(await self.snapshot(), before, context)
        return response.code

    def run_examples(self, strategy, send):
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def check(example):
            threads.blockingCallFromThread(reactor, lambda: defer.ensureDeferred(send(example)))

        return threads.deferToThread(check)

    async def test_submissions(self):
        await self.farm()

        async def send(body):
            code = await self.exchange("POST", "/api/jobs", body)
            self.assertIn(code, (201, 413, 422))

        await self.run_examples(bodies, send)

    async def test_actions(self):
        await self.farm()

        async def send(example):
            action, body = example
            # A refused action changes nothing; an accepted one may (that is its point).
            await self.exchange("POST", f"/api/jobs/{self.job_id}/{action}", body)

        await self.run_examples(st.tuples(st.sampled_from(ACTIONS), bodies), send)
