"""Who may use the operator API, dashboard and events (the Worker endpoints have their own).

Without `admin_password`: the Manager's own machine only (loopback peers). With one (a bcrypt
hash): any address, after logging in (`flamenco.operator_login`); the session cookie is
HttpOnly, SameSite=Strict, and Secure under TLS. In both cases a state-changing request whose
`Origin` is not this Manager is refused.
"""

from __future__ import annotations

from ipaddress import ip_address

import attrs
from twisted.web.iweb import IRequest
from twisted.web.server import Request

from flamenco.operator_login import (
    SESSION_SECONDS, LoginThrottled, OperatorLogin, WrongPassword,
)

COOKIE = "flamenco_session"
SAFE_METHODS = (b"GET", b"HEAD", b"OPTIONS")


def peer_host(request: IRequest) -> str:
    """The client's address; IPv4 clients of a dual-stack port as plain IPv4."""
    host = getattr(request.getClientAddress(), "host", "") or ""
    try:
        address = ip_address(host)
    except ValueError:
        return host
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped) if mapped else host


def is_local_peer(host: str) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, ::ffff:127.x); anything else is remote."""
    try:
        address = ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@attrs.frozen
class Refusal:
    code: int
    message: str
    redirect: str = ""
    retry_after: int = 0


class AccessPolicy:
    def __init__(self, login: OperatorLogin, *, tls: bool):
        self.login = login
        self.tls = tls

    @property
    def needs_login(self) -> bool:
        return self.login.needs_login

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
    @staticmethod
    def _token(request: IRequest) -> str:
        return (request.getCookie(COOKIE.encode("ascii")) or b"").decode("ascii", "replace")

    def session_valid(self, request: IRequest) -> bool:
        token = self._token(request)
        return bool(token) and self.login.session_valid(token)

    async def log_in(self, request: Request, password: str) -> Refusal | None:
        """Check the password; on success set the session cookie. Returns the refusal if any."""
        try:
            token = await self.login.log_in(peer_host(request), password)
        except LoginThrottled as error:
            return Refusal(429, "too many failed logins; try again later",
                           retry_after=error.retry_after)
        except WrongPassword:
            return Refusal(401, "wrong password")
        request.addCookie(COOKIE.encode("ascii"), token.encode("ascii"), path=b"/",
                          httpOnly=True, secure=self.tls, sameSite="strict",
                          max_age=str(int(SESSION_SECONDS)).encode("ascii"))
        return None

    def log_out(self, request: Request) -> None:
        token = self._token(request)
        if token:
            self.login.log_out(token)
        request.addCookie(COOKIE.encode("ascii"), b"", path=b"/", httpOnly=True, secure=self.tls,
                          sameSite="strict", max_age=b"0")
