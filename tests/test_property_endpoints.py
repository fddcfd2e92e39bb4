"""Property tests over every Worker endpoint: generated bodies and headers, real HTTP.

Each answer is 2xx, or a 4xx with a JSON error body, never 5xx; a refused request (any 4xx but
the protocol answers 423 "change status first" and 406 "no types") leaves the store as it was.
Hypothesis runs in a thread; each example sends its request with `blockingCallFromThread` to
the in-process Manager (real SQLite file) on the reactor thread. `EXAMPLES` requests per
endpoint, `len(ENDPOINTS) * EXAMPLES` per run, a fixed number so that CI time stays bounded
(FLAMENCO_PROPERTY_EXAMPLES=N runs a deeper search by hand).
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import defer, reactor, threads
from twisted.trial.unittest import TestCase

from flamenco.ids import new_object_id
from tests.factories import task_doc
from tests.inprocess import InProcessManager, basic_auth

EXAMPLES = int(os.environ.get("FLAMENCO_PROPERTY_EXAMPLES", "60"))
NOT_REFUSALS = (406, 423)

FIELDS = [
    "secret", "platform", "nickname", "supported_job_types", "supported_task_types",
    "task_status", "activity", "task_progress_percentage", "current_command_idx",
    "command_progress_percentage", "log", "metrics", "paths", "timing",
]
# Lone surrogates included (json.dumps writes them as \ud800 escapes), and made frequent.
any_text = st.text(st.characters(codec=None, exclude_categories=())
                   | st.sampled_from(["\ud800", "\udfff", "\x00", "\u00e9"]), max_size=12)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2, 200)
           | st.floats() | any_text | st.sampled_from(["active", "completed", "linux", "sleep"]))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | any_text, inner, max_size=4),
    max_leaves=16,
)
objects = st.dictionaries(st.sampled_from(FIELDS), values, max_size=6)
registrations = st.fixed_dictionaries(
    {"secret": any_text, "platform": any_text, "nickname": any_text},
    optional={"supported_task_types": st.lists(any_text, max_size=3) | values,
              "supported_job_types": st.lists(any_text, max_size=3) | values},
)


def _deep(depth: int) -> bytes:
    return b'{"metrics": ' + b"[" * depth + b"]" * depth + b"}"


bodies = st.one_of(
    objects.map(lambda doc: json.dumps(doc).encode()),
    registrations.map(lambda doc: json.dumps(doc).encode()),
    values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=48),
    st.integers(0, 3000).map(_deep),
    st.sampled_from([b"", b"{", b'{"current_command_idx": 1' + b"0" * 5000 + b"}",
                     b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\ny\r\n--b--\r\n"]),
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=24)
content_types = st.sampled_from([
    b"application/json", b"multipart/form-data; boundary=b", b"multipart/form-data",
    b"application/x-www-form-urlencoded", b"text/plain", b"application/json; charset=latin-1",
]) | header_text.map(lambda text: text.encode("latin-1"))
credentials = st.sampled_from(["worker", "wrong-secret", "unknown-worker", "none", "garbage"])
user_agents = st.sampled_from([b"Flamenco-Worker/2.5", b"python-requests/2.18.4"]) | \
    header_text.map(lambda text: text.encode("latin-1"))

ENDPOINTS = [
    ("POST", "/register-worker"), ("POST", "/sign-on"), ("POST", "/sign-off"), ("POST", "/task"),
    ("GET", "/task"), ("POST", "/tasks/{task}/update"), ("POST", "/tasks/{task}/return"),
    ("GET", "/may-i-run/{task}"), ("POST", "/output-produced"), ("GET", "/status-change"),
    ("POST", "/ack-status-change/{status}"), ("GET", "/"),
]
task_ids = st.sampled_from(["own", "other"]) | st.sampled_from(["x", "5a1f", "%00", "..%2f", "", "%2F%2F", "%ff"])
statuses = st.sampled_from(["asleep", "awake", "shutdown", "timeout", ""]) | header_text.filter(
    lambda text: text.isalnum())


class PropertyFarm:
    def __init__(self, testcase):
        self.m = InProcessManager(testcase, worker_auth_failure_limit=10**9)

    async def start(self):
        await self.m.start()
        self.tasks = [task_doc(commands=[{"name": "echo", "settings": {}}]) for _ in range(3)]
        await self.m.store.store_server_tasks(self.tasks, self.m.manager.updates.now())
        self.auth = await self.m.register(generation="2.x")
        assert (await self.m.request("POST", "/task", auth=self.auth)).code == 200
        return self

    async def snapshot(self):
        store = self.m.store
        return (await store.list_workers(), await store.queued_updates(100_000),
                [await store.get_task(t["_id"]) for t in self.tasks],
                await store.count_tasks())

    def headers(self, credential: str, content_type: bytes, user_agent: bytes) -> dict:
        headers = {b"Content-Type": content_type, b"User-Agent": user_agent}
        worker_id, secret = self.auth
        auth = {"worker": basic_auth(worker_id, secret),
                "wrong-secret": basic_auth(worker_id, secret + "x"),
                "unknown-worker": basic_auth(new_object_id(), secret),
                "garbage": b"Basic !!not-base64",
                "none": None}[credential]
        if auth is not None:
            headers[b"Authorization"] = auth
        return headers

    async def exchange(self, testcase, method, path, body, headers):
        before = await self.snapshot()
        response = await self.m.request(method, path, body=body, headers=headers)
        context = (method, path, body[:100], headers, response.code, response.body[:300])
        testcase.assertLess(response.code, 500, context)
        if response.code >= 400:
            testcase.assertEqual(response.headers.getRawHeaders(b"content-type"),
                                 [b"application/json"], context)
            doc = json.loads(response.body)
            testcase.assertTrue("error" in doc or response.code == 423, context)
            if response.code not in NOT_REFUSALS:
                testcase.assertEqual(await self.snapshot(), before, context)


def _make_test(method: str, template: str):
    async def test(self):
        farm = await PropertyFarm(self).start()
        own, other = farm.tasks[0]["_id"], farm.tasks[1]["_id"]

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(body=bodies, credential=credentials, content_type=content_types,
               user_agent=user_agents, task=task_ids, status=statuses)
        def check(body, credential, content_type, user_agent, task, status):
            task = {"own": own, "other": other}.get(task, task)
            path = template.format(task=task, status=status)
            headers = farm.headers(credential, content_type, user_agent)
            threads.blockingCallFromThread(reactor, lambda: defer.ensureDeferred(
                farm.exchange(self, method, path, body, headers)))

        await threads.deferToThread(check)

    test.__name__ = f"test_{method.lower()}_{template.strip('/').replace('/', '_') or 'status'}"
    return test


class WorkerEndpointProperties(TestCase):
    for _method, _template in ENDPOINTS:
        _test = _make_test(_method, _template)
        locals()[_test.__name__] = _test
    del _method, _template, _test
