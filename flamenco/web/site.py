"""The Site serving the Worker API."""

from __future__ import annotations

import json
from urllib.parse import unquote_to_bytes

from twisted.web.resource import IResource
from twisted.web.server import Request, Site


class WorkerRequest(Request):
    """A Request that leaves bodies alone and refuses non-UTF-8 URLs with a JSON error.

    twisted.web would parse form uploads into `args`, answering a malformed multipart body
    itself with an empty 400; every Worker body is JSON, whatever its Content-Type says, and is
    decoded (and refused with a JSON error) by the API. Klein answers a URL or Host that is not
    UTF-8 with an HTML 400 and logs a traceback; that is answered here first."""

    def __init__(self, *args, **kwargs):
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def process(self):
        try:
            unquote_to_bytes(self.path).decode("utf-8")
            self.getRequestHostname().decode("utf-8")
        except UnicodeDecodeError:
            self.setResponseCode(400)
            self.setHeader(b"Content-Type", b"application/json")
            self.write(json.dumps({"error": "the URL or Host is not valid UTF-8"}).encode() + b"\n")
            self.finish()
            return
        super().process()


def worker_site(resource: IResource) -> Site:
    site = Site(resource, requestFactory=WorkerRequest)
    site.displayTracebacks = False
    return site
