"""Worker records: registration, authentication, sign-on/off and status requests (PROTOCOL §3)."""

from __future__ import annotations

import hashlib
import hmac
import os

import attrs
import jwt
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco import statuses
from flamenco.auth_limits import FailedAuthLimiter
from flamenco.documents import (
    GENERATION_2_X, Worker, WorkerRegistration, WorkerSignOn,
)
from flamenco.errors import BadRequest, Forbidden, NotAuthenticated, UnknownWorker
from flamenco.hashing import HashingPool
from flamenco.ids import is_object_id, new_object_id, normalise_object_id
from flamenco.passwords import check_secret, hash_secret
from flamenco.store.interface import IStore
from flamenco.task_updates import TaskUpdateService
from flamenco.timefmt import utc_now
from flamenco.upstream import ITaskSource
from flamenco.write_resolution import MAX_RESOLUTION_SECONDS

log = Logger()

#: How long a verified secret is trusted without running bcrypt again.
CREDENTIAL_CACHE_SECONDS = 300.0


def looks_like_2x(user_agent: str) -> bool:
    """The 2.5 worker sends `Flamenco-Worker/<version>`; 2.0 sends python-requests' default."""
    return user_agent.startswith("Flamenco-Worker/")


class CredentialCache:
    """Remembers, per worker, a keyed digest of a secret that bcrypt verified recently.

    bcrypt at cost 10 takes about 50 ms; a worker authenticates every few seconds.
    The key is random per process, so the cache is useless outside it. Expired entries are
    dropped once per `lifetime`, so it holds at most the Workers verified within the last
    two lifetimes (about 100 bytes each).
    """

    def __init__(self, clock: IReactorTime, lifetime: float = CREDENTIAL_CACHE_SECONDS):
        self.clock = clock
        self.lifetime = lifetime
        self._key = os.urandom(32)
        self._entries: dict[str, tuple[bytes, bytes, float]] = {}
        self._next_prune = clock.seconds() + lifetime

    def _digest(self, secret: bytes) -> bytes:
        return hmac.new(self._key, secret, hashlib.sha256).digest()

    def knows(self, worker: Worker, secret: bytes) -> bool:
        entry = self._entries.get(worker.id)
        if entry is None:
            return False
        digest, secret_hash, expires = entry
        return (
            expires > self.clock.seconds()
            and secret_hash == worker.secret_hash
            and hmac.compare_digest(digest, self._digest(secret))
        )

    def remember(self, worker: Worker, secret: bytes) -> None:
        now = self.clock.seconds()
        if now >= self._next_prune:
            self._entries = {key: entry for key, entry in self._entries.items()
                             if entry[2] > now}
            self._next_prune = now + self.lifetime
        self._entries[worker.id] = (
            self._digest(secret), worker.secret_hash, self.clock.seconds() + self.lifetime
        )

    def forget(self, worker_id: str) -> None:
        self._entries.pop(worker_id, None)


class WorkerService:
    """`registration` is open, secret or approve (config `worker_registration`)."""

    def __init__(self, store: IStore, task_updates: TaskUpdateService, task_source: ITaskSource,
                 clock: IReactorTime,
                 hashing: HashingPool, limiter: FailedAuthLimiter, *, registration: str = "open",
                 registration_secret: str = "", bcrypt_rounds: int = 10, quarantine=None,
                 seen_resolution: float = MAX_RESOLUTION_SECONDS):
        """`last_activity` is rewritten only when the stored one is `seen_resolution` seconds
        old and nothing else about the Worker changes (`write_resolution`)."""
        self.store = store
        #: `quarantine.SickWorkers`: an operator's `awake` request ends a quarantine.
        self.quarantine = quarantine
        self.task_updates = task_updates
        self.task_source = task_source
        self.clock = clock
        self.hashing = hashing
        self.limiter = limiter
        self.registration = registration
        self.registration_secret = registration_secret
        self.bcrypt_rounds = bcrypt_rounds
        self.credentials = CredentialCache(clock)
        self.seen_resolution = seen_resolution

    def now(self):
        return utc_now(self.clock)

    # -- registration and authentication -------------------------------------------------------
    async def register(self, registration: WorkerRegistration, address: str, user_agent: str,
                       bearer_token: str | None) -> Worker:
        self._check_registration_token(bearer_token)
        secret_hash = await self.hashing.submit(
            hash_secret, registration.secret.encode("utf-8"), self.bcrypt_rounds)
        generation = registration.generation
        if looks_like_2x(user_agent):
            generation = GENERATION_2_X
        worker = Worker(
            id=new_object_id(),
            secret_hash=secret_hash,
            nickname=registration.nickname,
            address=address,
            platform=registration.platform,
            supported_types=registration.supported_types,
            generation=generation,
            software=user_agent if generation == GENERATION_2_X else "",
            approved=self.registration != "approve",
        )
        await self.store.add_worker(worker)
        # The secret is known right now: the Worker's sign-on and first requests need no
        # second bcrypt run (half the hashing of a registration storm).
        self.credentials.remember(worker, registration.secret.encode("utf-8"))
        self.task_source.types_changed()
        log.info("registered worker {worker} ({id}), types {types}",
                 worker=worker.identifier, id=worker.id, types=list(worker.supported_types))
        if not worker.approved:
            log.warn("worker {worker} ({id}) gets no task until approved:"
                     " POST /worker-action/{id}?action=approve", worker=worker.identifier,
                     id=worker.id)
        return worker

    def _check_registration_token(self, token: str | None) -> None:
        """PROTOCOL §3.1 [2.x]: an HMAC-signed JWT when a registration secret is configured."""
        if not self.registration_secret or self.registration == "open":
            return
        if not token:
            raise Forbidden("Missing Bearer token for registration")
        try:
            jwt.decode(token, self.registration_secret, algorithms=["HS256", "HS384", "HS512"])
        except jwt.PyJWTError as error:
            raise Forbidden("Invalid Bearer token for registration", str(error)) from None

    async def authenticate(self, worker_id: str, secret: str, address: str = "") -> Worker:
        """The Worker these credentials prove, from the cache when it can (no bcrypt).

        Otherwise an address with too many recent failures gets TooManyFailures (429), and
        the secret is checked on the hashing pool ahead of new registrations."""
        worker = None
        if is_object_id(worker_id):
            worker = await self.store.get_worker(normalise_object_id(worker_id))
        secret_bytes = secret.encode("utf-8")
        if worker is not None and self.credentials.knows(worker, secret_bytes):
            return worker
        self.limiter.check(address)
        if worker is None:
            self.limiter.failed(address)
            raise NotAuthenticated("unknown worker" if is_object_id(worker_id)
                                   else "worker ID in the credentials is not an ObjectId")
        matches = await self.hashing.submit(check_secret, secret_bytes, worker.secret_hash,
                                            urgent=True)
        if not matches:
            self.limiter.failed(address)
            raise NotAuthenticated("wrong secret for this worker")
        self.credentials.remember(worker, secret_bytes)
        return worker

    # -- signs of life ---------------------------------------------------------------------------
    async def seen(self, worker: Worker, address: str, user_agent: str,
                   wake: bool = False) -> Worker:
        """Record activity (§0.5); with `wake`, also mark it `awake` (§5.10.2)."""
        now = self.now()
        changes: dict = {}
        if (worker.last_activity is None
                or (now - worker.last_activity).total_seconds() >= self.seen_resolution):
            changes["last_activity"] = now
        if address and address != worker.address:
            changes["address"] = address
        if looks_like_2x(user_agent) and not worker.is_2x:
            changes["generation"] = GENERATION_2_X
        if user_agent != worker.software and (worker.is_2x or looks_like_2x(user_agent)):
            changes["software"] = user_agent
        if wake and worker.status not in (statuses.W_AWAKE, statuses.W_TESTING):
            changes["status"] = statuses.W_AWAKE
        if not changes:
            return worker
        if "last_activity" not in changes:
            changes["last_activity"] = now
        return await self._update(worker, changes)

    async def _update(self, worker: Worker, changes: dict) -> Worker:
        if not await self.store.update_worker(worker.id, **changes):
            raise Forbidden(f"Unable to find worker {worker.id}")
        if changes.get("status", worker.status) != worker.status:
            log.info("worker {worker} ({id}) status {old} -> {new}", worker=worker.identifier,
                     id=worker.id, old=worker.status or "(none)", new=changes["status"])
        return attrs.evolve(worker, **changes)

    # -- sign-on / sign-off ------------------------------------------------------------------------
    async def sign_on(self, worker: Worker, sign_on: WorkerSignOn, address: str,
                      user_agent: str) -> Worker:
        changes: dict = {
            "current_task": None,
            "status": statuses.W_STARTING,
            "generation": GENERATION_2_X,
            "last_activity": self.now(),
        }
        if address and address != worker.address:
            changes["address"] = address
        if user_agent:
            changes["software"] = user_agent
        if sign_on.nickname and sign_on.nickname != worker.nickname:
            changes["nickname"] = sign_on.nickname
        if sign_on.supported_types and sign_on.supported_types != worker.supported_types:
            changes["supported_types"] = sign_on.supported_types
        log.info("worker {worker} signed on", worker=worker.identifier)
        signed_on = await self._update(worker, changes)
        if "supported_types" in changes:
            self.task_source.types_changed()
        return signed_on

    async def sign_off(self, worker: Worker) -> None:
        """Re-queue the worker's active tasks and mark it offline (§3.3)."""
        for task in await self.store.tasks_of_worker(worker.id, statuses.ACTIVE):
            if worker.is_2x:
                await self.task_updates.requeue(task, worker, "worker signed off")
            else:
                await self.task_updates.requeue_after_2_0_sign_off(task, worker)
        changes: dict = {
            "status": statuses.W_OFFLINE if worker.is_2x else statuses.W_DOWN,
            "status_requested": "",
            "lazy_status_request": False,
            "current_task": None,
        }
        if (worker.status == statuses.W_ASLEEP
                and worker.status_requested in ("", statuses.W_SHUTDOWN)):
            # Go back to sleep when it returns (M2.3).
            changes["status_requested"] = statuses.W_ASLEEP
        await self._update(worker, changes)
        log.info("worker {worker} signed off", worker=worker.identifier)

    # -- status requests (2.x) ---------------------------------------------------------------------
    async def acknowledge_status(self, worker: Worker, status: str) -> None:
        if status not in statuses.ACKNOWLEDGEABLE_WORKER_STATUSES:
            raise BadRequest(
                f"unknown worker status {status!r}; expected one of "
                f"{', '.join(sorted(statuses.ACKNOWLEDGEABLE_WORKER_STATUSES))}"
            )
        if status == statuses.W_SHUTDOWN:
            return
        if worker.status_requested and worker.status_requested != status:
            log.warn("worker {worker} acknowledged {status} but {requested} was requested",
                     worker=worker.identifier, status=status, requested=worker.status_requested)
        await self._update(worker, {
            "status": status, "status_requested": "", "lazy_status_request": False,
            "generation": GENERATION_2_X,
        })

    async def request_status(self, worker_id: str, status: str, lazy: bool) -> None:
        """Operator action: ask a worker to go asleep / awake / shut down."""
        if status not in statuses.REQUESTABLE_WORKER_STATUSES:
            raise BadRequest(
                f"status {status!r} cannot be requested; use one of "
                f"{', '.join(sorted(statuses.REQUESTABLE_WORKER_STATUSES))}"
            )
        worker = await self.existing(worker_id)
        if status == statuses.W_AWAKE and not worker.is_2x:
            # A 2.0 worker can never acknowledge a request (§5.10.6): being asked to be awake
            # means no longer being asked to sleep.
            await self._update(worker, {"status_requested": "", "lazy_status_request": False})
        else:
            await self._update(worker, {"status_requested": status, "lazy_status_request": lazy})
        log.info("operator requested status {status} ({when}) of worker {worker} ({id})",
                 status=status, when="after its current task" if lazy else "now",
                 worker=worker.identifier, id=worker.id)
        if status == statuses.W_AWAKE and self.quarantine is not None:
            await self.quarantine.released(worker.id, self.now())

    async def approve(self, worker_id: str) -> None:
        """Operator action (`approve` mode): the Worker may get tasks from now on."""
        worker = await self.existing(worker_id)
        if not worker.approved:
            await self._update(worker, {"approved": True})
            log.info("worker {worker} ({id}) approved", worker=worker.identifier, id=worker.id)

    async def acknowledge_timeout(self, worker_id: str) -> None:
        """Operator action: a worker in `timeout` becomes `offline`."""
        worker = await self.existing(worker_id)
        log.info("operator acknowledged the timeout of worker {worker} ({id}), status {status}",
                 worker=worker.identifier, id=worker.id, status=worker.status)
        if worker.status == statuses.W_TIMEOUT:
            await self._update(worker, {"status": statuses.W_OFFLINE})

    async def remove(self, worker: Worker, reason: str) -> None:
        """Forget a worker: re-queue its active tasks, then delete its record (§5.11)."""
        for task in await self.store.tasks_of_worker(worker.id, statuses.ACTIVE):
            await self.task_updates.requeue(task, worker, reason)
        await self.store.delete_worker(worker.id)
        self.credentials.forget(worker.id)
        log.info("worker {worker} ({id}) removed: {reason}", worker=worker.identifier,
                 id=worker.id, reason=reason)

    async def forget(self, worker_id: str) -> None:
        """Operator action `forget-worker`."""
        await self.remove(await self.existing(worker_id), "worker was forgotten by an operator")

    async def existing(self, worker_id: str) -> Worker:
        """The worker an operator request names, or UnknownWorker (404)."""
        return await named_worker(self.store, worker_id)


async def named_worker(store, worker_id: str) -> Worker:
    """The Worker an operator request names (any ID spelling), or UnknownWorker (404)."""
    worker = None
    if is_object_id(worker_id):
        worker = await store.get_worker(normalise_object_id(worker_id))
    if worker is None:
        raise UnknownWorker(f"no worker with ID {worker_id}")
    return worker
