"""`/login` and `/logout` for the dashboard and operator API (when `admin_password` is set)."""

from __future__ import annotations

import html

from klein import Klein
from twisted.web.iweb import IRequest

from flamenco.documents import InvalidDocument, decode_json_object
from flamenco.web.access import AccessPolicy, Refusal
from flamenco.web.responses import BodyTooLarge, form_args, json_error, json_response, read_body

#: A login body holds a password and little else.
MAX_LOGIN_BODY = 4096

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Flamenco Manager: log in</title>
<link rel="stylesheet" href="/app/style.css"></head>
<body class="login"><form method="post" action="/login" class="card">
<h1>Flamenco Manager</h1>{message}
<label>Password <input type="password" name="password" autofocus required></label>
<button type="submit">Log in</button></form></body></html>
"""


def _page(request: IRequest, code: int, message: str = "") -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    shown = f'<p class="error">{html.escape(message)}</p>' if message else ""
    return PAGE.format(message=shown).encode("utf-8")


def _wants_json(request: IRequest) -> bool:
    return (request.getHeader(b"content-type") or b"").startswith(b"application/json")


class LoginPages:
    app = Klein()

    def __init__(self, access: AccessPolicy):
        self.access = access

    @app.route("/login", methods=["GET"])
    def form(self, request):
        if not self.access.needs_login:
            request.redirect(b"/app/")
            return b""
        return _page(request, 200)

    @app.route("/login", methods=["POST"])
    async def log_in(self, request):
        as_json = _wants_json(request)
        if not self.access.same_origin(request):
            return self._refused(request, Refusal(403, "cross-origin request refused"), as_json)
        if not self.access.needs_login:
            return self._refused(request, Refusal(404, "no admin_password configured"), as_json)
        password = self._password(request, as_json)
        refusal = await self.access.log_in(request, password)
        if refusal is not None:
            return self._refused(request, refusal, as_json)
        if as_json:
            return json_response(request, {"logged_in": True})
        request.setResponseCode(303)
        request.setHeader(b"Location", b"/app/")
        return b""

    @app.route("/logout", methods=["POST"])
    def log_out(self, request):
        if not self.access.same_origin(request):
            return json_error(request, 403, "cross-origin request refused")
        self.access.log_out(request)
        request.setResponseCode(303)
        request.setHeader(b"Location", b"/login")
        return b""

    @staticmethod
    def _password(request: IRequest, as_json: bool) -> str:
        try:
            if as_json:
                doc = decode_json_object(read_body(request, MAX_LOGIN_BODY), "the login")
                password = doc.get("password")
                return password if isinstance(password, str) else ""
            return form_args(request, MAX_LOGIN_BODY).get("password", "")
        except (InvalidDocument, BodyTooLarge):
            return ""

    @staticmethod
    def _refused(request: IRequest, refusal: Refusal, as_json: bool) -> bytes:
        if refusal.retry_after:
            request.setHeader(b"Retry-After", str(refusal.retry_after).encode("ascii"))
        if as_json:
            return json_error(request, refusal.code, refusal.message)
        return _page(request, refusal.code, refusal.message)
