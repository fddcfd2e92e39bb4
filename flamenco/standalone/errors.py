"""Refusals of the job service; `flamenco.web.jobs_api` maps each to one HTTP status."""

from flamenco.errors import ManagerError
from flamenco.jobs.submission import JobRejected


class UnknownJob(ManagerError):
    """No job with this ID (404)."""


class JobConflict(ManagerError):
    """The job's status does not allow this action now (409)."""


__all__ = ["JobConflict", "JobRejected", "UnknownJob"]
