"""A Manager served in-process on a loopback port, and a JSON HTTP client for it."""

from __future__ import annotations

import base64
import json

import attrs
import treq
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.web.client import Agent, HTTPConnectionPool

from flamenco.config import Config
from flamenco.manager import build_manager
from flamenco.store.sqlite import SQLiteStore
from flamenco.web.site import ManagerSite
from tests.factories import T0


@attrs.define
class Response:
    code: int
    headers: object
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


def basic_auth(username: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{username}:{password}".encode())


class InProcessManager:
    """Real SQLite file, real HTTP on 127.0.0.1; time comes from a `Clock` set to T0."""

    def __init__(self, testcase, **config):
        self.testcase = testcase
        self.config = Config(**config)
        self.clock = Clock()
        self.clock.advance(T0.timestamp())
        self.store = SQLiteStore(testcase.mktemp() + ".sqlite", sync=self.config.database_sync)
        self.manager = None
        self.url = None
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = treq.client.HTTPClient(Agent(reactor, pool=pool))

    async def start(self) -> InProcessManager:
        await self.store.open()
        self.testcase.addCleanup(self.store.close)
        self.manager = build_manager(self.config, self.store, self.clock, bcrypt_rounds=4)
        self.testcase.addCleanup(self.manager.workers.hashing.stop)
        port = reactor.listenTCP(0, ManagerSite(self.manager.resource), interface="127.0.0.1")
        self.testcase.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{port.getHost().port}"
        return self

    async def request(self, method: str, path: str, *, json_body=None, body: bytes | None = None,
                      auth: tuple[str, str] | None = None, headers=None) -> Response:
        all_headers = dict(headers or {})
        if auth is not None:
            all_headers[b"Authorization"] = basic_auth(*auth)
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers[b"Content-Type"] = b"application/json"
        response = await self.http.request(method, self.url + path, data=body, headers=all_headers)
        content = await response.content()
        return Response(response.code, response.headers, content)

    async def register(self, *, generation="2.0", types=("sleep",), nickname="render-01",
                       platform="linux", secret="s3cret") -> tuple[str, str]:
        key = "supported_task_types" if generation == "2.x" else "supported_job_types"
        headers = {b"User-Agent": b"Flamenco-Worker/2.5"} if generation == "2.x" else {}
        response = await self.request("POST", "/register-worker", json_body={
            "secret": secret, "platform": platform, key: list(types), "nickname": nickname,
        }, headers=headers)
        assert response.code == 200, response.body
        return response.json["_id"], secret


class TaskFarm:
    """An in-process Manager with Server tasks loaded, and the requests tests make as Workers."""

    def __init__(self, testcase, **config):
        self.m = InProcessManager(testcase, **config)

    async def start(self, *docs):
        await self.m.start()
        if docs:
            await self.m.store.store_server_tasks(list(docs), self.m.manager.updates.now())
        return self

    @property
    def store(self):
        return self.m.store

    async def ask(self, auth) -> Response:
        return await self.m.request("POST", "/task", auth=auth)
