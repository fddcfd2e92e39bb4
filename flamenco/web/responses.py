"""Writing JSON responses and errors, reading bounded bodies and headers, and the
error-to-status table."""

from __future__ import annotations

import functools
import json
from urllib.parse import parse_qs

from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from flamenco.auth_limits import TooManyFailures
from flamenco.documents import InvalidDocument
from flamenco.errors import (
    BadRequest, Forbidden, ManagerError, NoSupportedTypes, NotAuthenticated, StatusChangePending,
    TaskConflict, UnknownTask, UnknownWorker,
)
from flamenco.hashing import Overloaded
from flamenco.store.interface import StoreUnavailable

log = Logger()

STATUS_FOR_ERROR = {
    BadRequest: 400,
    NotAuthenticated: 401,
    Forbidden: 403,
    UnknownTask: 404,
    UnknownWorker: 404,
    NoSupportedTypes: 406,
    TaskConflict: 409,
}


class BodyTooLarge(Exception):
    pass


def json_response(request: IRequest, doc, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(doc).encode("utf-8") + b"\n"


def json_error(request: IRequest, code: int, message: str, detail=None) -> bytes:
    body = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return json_response(request, body, code)


def no_content(request: IRequest) -> bytes:
    request.setResponseCode(204)
    return b""


def read_body(request: IRequest, limit: int) -> bytes:
    """The request body, refused (413) when over `limit` bytes."""
    declared = request.getHeader(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(int(declared))
    request.content.seek(0)
    body = request.content.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(len(body))
    return body


def user_agent(request: IRequest) -> str:
    return (request.getHeader(b"user-agent") or b"").decode("latin-1")


def form_args(request: IRequest, limit: int) -> dict[str, str]:
    """Query arguments, and those of a form-encoded body (ManagerSite's requests leave bodies
    alone, so that a Worker's body is read as JSON whatever its Content-Type)."""
    raw = dict(request.args)
    content_type = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
    if content_type.lower() == b"application/x-www-form-urlencoded":
        raw.update(parse_qs(read_body(request, limit), keep_blank_values=True))
    return {key.decode("utf-8", "replace"): values[-1].decode("utf-8", "replace")
            for key, values in raw.items()}


def endpoint(handler=None, *, when_store_unavailable=None):
    """Wrap an async Klein handler: every refusal becomes a 4xx/5xx with a JSON body.

    `when_store_unavailable(request)` may answer instead of the 503 (may-i-run must never
    send a body that is not a MayKeepRunningResponse).
    """
    if handler is None:
        return functools.partial(endpoint, when_store_unavailable=when_store_unavailable)

    @functools.wraps(handler)
    async def wrapper(self, request, *args, **kwargs):
        try:
            return await handler(self, request, *args, **kwargs)
        except NotAuthenticated as error:
            request.setHeader(b"WWW-Authenticate", b'Basic realm="Flamenco Manager"')
            return json_error(request, 401, "401 Unauthorized", error.message)
        except StatusChangePending as error:
            # The 2.5 worker builds an object from exactly this one key (§2.9).
            return json_response(request, {"status_requested": error.status_requested}, 423)
        except (TooManyFailures, Overloaded) as error:
            # Both Worker generations retry a refused registration or sign-on later.
            request.setHeader(b"Retry-After", b"%d" % error.retry_after)
            code = 429 if isinstance(error, TooManyFailures) else 503
            return json_error(request, code, error.message, error.detail)
        except ManagerError as error:
            return json_error(request, STATUS_FOR_ERROR.get(type(error), 400), error.message,
                              error.detail)
        except InvalidDocument as error:
            return json_error(request, error.status, error.message, error.detail)
        except BodyTooLarge as error:
            return json_error(request, 413, "request body too large",
                              {"size": error.args[0], "limit": self.max_body})
        except StoreUnavailable as error:
            if when_store_unavailable is not None:
                return when_store_unavailable(request)
            # The store's Availability has logged the outage once; not every request.
            log.debug("database unavailable: {error}", error=error)
            return json_error(request, 503, "database unavailable, try again later", str(error))
        except CancelledError:
            raise  # the client hung up; Klein has nobody to answer
        except Exception:
            log.failure("unexpected error handling {method} {path}",
                        method=request.method, path=request.path)
            return json_error(request, 500, "internal error; see the Manager's log")

    return wrapper


def json_routing_errors(app: Klein) -> Klein:
    """Answer the paths none of `app`'s routes matches (404) and the methods a route does not
    serve (405) with JSON errors, as every other refusal is answered."""

    @app.handle_errors(NotFound)
    def no_such_endpoint(self: object, request: IRequest, failure: Failure) -> bytes:
        return json_error(request, 404, f"no such endpoint: {request.path.decode('latin-1')}")

    @app.handle_errors(MethodNotAllowed)
    def method_not_allowed(self: object, request: IRequest, failure: Failure) -> bytes:
        return json_error(request, 405,
                          f"method {request.method.decode('latin-1')} not allowed here")

    return app
