"""The Site serving the Worker API."""

from __future__ import annotations

from twisted.web.resource import IResource
from twisted.web.server import Request, Site


class WorkerRequest(Request):
    """A Request that leaves bodies alone: twisted.web would parse form uploads into `args`,
    answering a malformed multipart body itself with an empty 400. Every Worker body is JSON,
    whatever its Content-Type says, and is decoded (and refused with a JSON error) by the API."""

    def __init__(self, *args, **kwargs):
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)


def worker_site(resource: IResource) -> Site:
    site = Site(resource, requestFactory=WorkerRequest)
    site.displayTracebacks = False
    return site
