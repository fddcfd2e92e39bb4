"""Who may use the operator API, dashboard and events (the Worker endpoints have their own).

Without `admin_password`: the Manager's own machine only (loopback peers). With one (a bcrypt
hash): any address, after logging in; the session cookie is HttpOnly, SameSite=Strict, and
Secure under TLS. In both cases a state-changing request whose `Origin` is not this Manager
is refused, and failed logins are throttled per address and logged.
"""

from __future__ import annotations

import collections
import secrets
from ipaddress import ip_address

import attrs
import bcrypt
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.web.iweb import IRequest

log = Logger()

COOKIE = "flamenco_session"
SESSION_SECONDS = 12 * 3600.0
#: At most this many failed logins per address within `FAILURE_WINDOW` seconds.
MAX_FAILURES = 5
FAILURE_WINDOW = 60.0
SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


def peer_host(request: IRequest) -> str:
    """The client's address; IPv4 clients of a dual-stack port as plain IPv4."""
    host = getattr(request.getClientAddress(), "host", "") or ""
    try:
        mapped = ip_address(host).ipv4_mapped
    except (ValueError, AttributeError):
        return host
    return str(mapped) if mapped else host


def is_local_peer(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, ::ffff:127.x); anything else is remote."""
    try:
        address = ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def hash_password(password: str, rounds: int = 12) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


@attrs.frozen
class Refusal:
    code: int
    message: str
    redirect: str = ""
    retry_after: int = 0


class LoginThrottle:
    def __init__(self, clock):
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


class AccessPolicy:
    def __init__(self, admin_password_hash: str, clock, *, tls: bool):
        self.password_hash = admin_password_hash.encode("ascii") if admin_password_hash else b""
        self.clock = clock
        self.tls = tls
        self.throttle = LoginThrottle(clock)
        self._sessions: dict[str, float] = {}

    @property
    def needs_login(self) -> bool:
        return bool(self.password_hash)

    # -- the decision for one request --------------------------------------------------------------
    def refusal(self, request: IRequest, wants_html: bool) -> Refusal | None:
        """Why this request to the operator area is refused, or None when it may go on."""
        if not self.same_origin(request):
            return Refusal(403, "cross-origin request refused")
        if not self.needs_login:
            if is_local_peer(peer_host(request)):
                return None
            return Refusal(403, "the operator API and dashboard are only served to the "
                                "Manager's own machine; configure admin_password to open them")
        if self.session_valid(request):
            return None
        if wants_html:
            return Refusal(302, "log in first", redirect="/login")
        return Refusal(401, "log in first (POST /login)")

    def same_origin(self, request: IRequest) -> bool:
        """A state-changing request carrying an `Origin` must come from this Manager's pages."""
        if request.method in SAFE_METHODS:
            return True
        origin = request.getHeader(b"origin")
        if origin is None:
            return True  # not sent by a browser (curl, scripts); the cookie is SameSite=Strict
        host = request.getHeader(b"host") or b""
        scheme = b"https" if request.isSecure() else b"http"
        return origin == scheme + b"://" + host

    # -- sessions ----------------------------------------------------------------------------------
    def session_valid(self, request: IRequest) -> bool:
        token = request.getCookie(COOKIE.encode("ascii"))
        if not token:
            return False
        expires = self._sessions.get(token.decode("ascii", "replace"))
        if expires is None:
            return False
        if expires <= self.clock.seconds():
            del self._sessions[token.decode("ascii", "replace")]
            return False
        return True

    async def log_in(self, request: IRequest, password: str) -> Refusal | None:
        """Check the password; on success set the session cookie. Returns the refusal if any."""
        address = peer_host(request)
        wait = self.throttle.blocked_for(address)
        if wait:
            log.warn("operator login from {address} refused: too many failed attempts",
                     address=address)
            return Refusal(429, "too many failed logins; try again later", retry_after=wait)
        matches = await deferToThread(bcrypt.checkpw, password.encode("utf-8"), self.password_hash)
        if not matches:
            self.throttle.failed(address)
            log.warn("failed operator login from {address}", address=address)
            return Refusal(401, "wrong password")
        self.throttle.succeeded(address)
        token = secrets.token_urlsafe(32)
        self._sessions[token] = self.clock.seconds() + SESSION_SECONDS
        request.addCookie(COOKIE.encode("ascii"), token.encode("ascii"), path=b"/",
                          httpOnly=True, secure=self.tls, sameSite="strict",
                          max_age=str(int(SESSION_SECONDS)).encode("ascii"))
        log.info("operator logged in from {address}", address=address)
        return None

    def log_out(self, request: IRequest) -> None:
        token = request.getCookie(COOKIE.encode("ascii"))
        if token:
            self._sessions.pop(token.decode("ascii", "replace"), None)
        request.addCookie(COOKIE.encode("ascii"), b"", path=b"/", httpOnly=True, secure=self.tls,
                          sameSite="strict", max_age=b"0")
