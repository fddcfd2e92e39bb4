"""The operator's login when `admin_password` is set: the password check, sessions that end
after `SESSION_SECONDS`, and at most `MAX_FAILURES` failed logins per address within
`FAILURE_WINDOW` seconds. No HTTP here (`flamenco.web.access` keeps the cookie and origin)."""

from __future__ import annotations

import collections
import secrets

import bcrypt
from twisted.internet.interfaces import IReactorTime
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

log = Logger()

SESSION_SECONDS = 12 * 3600.0
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0


def hash_password(password: str, rounds: int = 12) -> str:
    """The bcrypt hash to configure as `admin_password`."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


class LoginThrottled(Exception):
    def __init__(self, retry_after: int):
        super().__init__(retry_after)
        self.retry_after = retry_after


class WrongPassword(Exception):
    pass


class LoginThrottle:
    def __init__(self, clock: IReactorTime):
        self.clock = clock
        self._failures: dict[str, collections.deque] = {}

    def _recent(self, address: str) -> collections.deque:
        failures = self._failures.setdefault(address, collections.deque())
        while failures and failures[0] <= self.clock.seconds() - FAILURE_WINDOW:
            failures.popleft()
        return failures

    def blocked_for(self, address: str) -> int:
        """Seconds until `address` may try again (0: now)."""
        failures = self._recent(address)
        if len(failures) < MAX_FAILURES:
            return 0
        return max(1, int(failures[0] + FAILURE_WINDOW - self.clock.seconds()) + 1)

    def failed(self, address: str) -> None:
        self._recent(address).append(self.clock.seconds())

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class OperatorLogin:
    def __init__(self, admin_password_hash: str, clock: IReactorTime):
        self.password_hash = admin_password_hash.encode("ascii") if admin_password_hash else b""
        self.clock = clock
        self.throttle = LoginThrottle(clock)
        self._sessions: dict[str, float] = {}

    @property
    def needs_login(self) -> bool:
        return bool(self.password_hash)

    def session_valid(self, token: str) -> bool:
        expires = self._sessions.get(token)
        if expires is None:
            return False
        if expires <= self.clock.seconds():
            del self._sessions[token]
            return False
        return True

    async def log_in(self, address: str, password: str) -> str:
        """A new session's token; LoginThrottled or WrongPassword when refused."""
        wait = self.throttle.blocked_for(address)
        if wait:
            log.warn("operator login from {address} refused: too many failed attempts",
                     address=address)
            raise LoginThrottled(wait)
        matches = await deferToThread(bcrypt.checkpw, password.encode("utf-8"), self.password_hash)
        if not matches:
            self.throttle.failed(address)
            log.warn("failed operator login from {address}", address=address)
            raise WrongPassword()
        self.throttle.succeeded(address)
        token = secrets.token_urlsafe(32)
        self._sessions[token] = self.clock.seconds() + SESSION_SECONDS
        log.info("operator logged in from {address}", address=address)
        return token

    def log_out(self, token: str) -> None:
        self._sessions.pop(token, None)
