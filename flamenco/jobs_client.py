"""A small client of the job API (`/api/jobs`), on treq; used by the command line."""

from __future__ import annotations

import json
from urllib.parse import quote, urljoin

import attrs
import treq
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers


@attrs.frozen
class Answer:
    code: int
    doc: dict


class JobAPIError(Exception):
    """The Manager refused (4xx/5xx): `message`, and `problems` for a refused submission."""

    def __init__(self, code: int, doc: dict):
        self.code = code
        self.problems: list[str] = list(doc.get("problems") or [])
        message = doc.get("error") or f"HTTP {code}"
        if doc.get("detail"):
            message += f": {doc['detail']}"
        super().__init__(message)


class JobClient:
    def __init__(self, manager_url: str, reactor, timeout: float = 30.0):
        self.base = manager_url if manager_url.endswith("/") else manager_url + "/"
        self.timeout = timeout
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.http = HTTPClient(Agent(reactor, pool=self.pool))

    async def close(self) -> None:
        await self.pool.closeCachedConnections()

    async def _call(self, method: str, path: str, doc=None) -> dict:
        data = None if doc is None else json.dumps(doc).encode("utf-8")
        headers = None if doc is None else Headers({b"Content-Type": [b"application/json"]})
        response = await self.http.request(method, urljoin(self.base, path), data=data,
                                           headers=headers, timeout=self.timeout)
        body = await treq.content(response)
        try:
            answer = json.loads(body) if body.strip() else {}
        except ValueError:
            answer = {"error": body[:200].decode("utf-8", "replace")}
        if response.code >= 400:
            raise JobAPIError(response.code, answer if isinstance(answer, dict) else {})
        return answer

    async def submit(self, job: dict) -> dict:
        return await self._call("POST", "api/jobs", job)

    async def jobs(self, status: str | None = None) -> list[dict]:
        query = f"?status={quote(status)}" if status else ""
        return (await self._call("GET", f"api/jobs{query}"))["jobs"]

    async def job(self, job_id: str) -> dict:
        return await self._call("GET", f"api/jobs/{quote(job_id)}")

    async def act(self, job_id: str, action: str, doc=None) -> dict:
        return await self._call("POST", f"api/jobs/{quote(job_id)}/{action}", doc)

    async def requeue_all(self) -> int:
        return (await self._call("POST", "api/jobs/requeue"))["requeued"]
