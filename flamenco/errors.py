"""Refusals the services raise; the web layer turns each into one HTTP status and JSON body."""


class ManagerError(Exception):
    """Base class: `message` is the one-line explanation sent to the client."""

    def __init__(self, message: str, detail=None):
        super().__init__(message)
        self.message = message
        self.detail = detail


class NotAuthenticated(ManagerError):
    """Missing or wrong worker credentials (401)."""


class Forbidden(ManagerError):
    """Registration token missing/invalid, or the worker record vanished (403)."""


class UnknownTask(ManagerError):
    """The task is not in the local queue (404)."""


class UnknownWorker(ManagerError):
    """The worker named in an operator request does not exist (404)."""


class TaskConflict(ManagerError):
    """The update cannot be taken for this task; the worker should discard it (409)."""


class NoSupportedTypes(ManagerError):
    """The worker supports no task types, so it can never get a task (406)."""


class StatusChangePending(ManagerError):
    """The worker must change status before it gets work (423, 2.x)."""

    def __init__(self, status_requested: str):
        super().__init__(f"worker status change to {status_requested} requested")
        self.status_requested = status_requested


class BadRequest(ManagerError):
    """The request is well-formed JSON but asks for something invalid (400)."""
