"""Where the MongoDB tests find a server, and fresh databases on it.

`FLAMENCO_TEST_MONGO_URL` (set by `eval "$(bash tests/mongo-server/start.sh)"`) names the
server. Without it the MongoDB tests skip, unless `FLAMENCO_REQUIRE_MONGO=1` (CI), when they
fail instead.
"""

import os
import uuid

from twisted.trial.unittest import SkipTest

from flamenco.store.mongo import MongoStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_SCRIPT = os.path.join(ROOT, "tests", "mongo-server", "start.sh")


def server_url() -> str:
    """The test server's base URL (`mongodb://host:port/`), or skip / fail."""
    url = os.environ.get("FLAMENCO_TEST_MONGO_URL", "").strip()
    if url:
        return url
    message = ("no MongoDB test server: FLAMENCO_TEST_MONGO_URL is unset "
               "(run: eval \"$(bash tests/mongo-server/start.sh)\")")
    if os.environ.get("FLAMENCO_REQUIRE_MONGO") == "1":
        raise AssertionError(message + "; FLAMENCO_REQUIRE_MONGO=1 forbids skipping")
    raise SkipTest(message)


def database_url(base: str, name: str) -> str:
    base = base.split("?", 1)[0].rstrip("/")
    return f"{base}/{name}"


def fresh_name(prefix: str = "fmtest") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


async def fresh_store(case, base: str | None = None, name: str | None = None, **kwargs):
    """An opened MongoStore on a new database, dropped and closed at the end of the test."""
    base = base or server_url()
    name = name or fresh_name()
    store = MongoStore(database_url(base, name), **kwargs)
    await store.open()

    async def drop():
        pool = store._pool
        if pool is not None:
            try:
                await pool.drop_database(name)
            finally:
                await store.close()

    case.addCleanup(drop)
    return store
