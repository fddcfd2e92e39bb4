"""Task and worker statuses and the sets the rules are written in (PROTOCOL §4, §5.10)."""

QUEUED = "queued"
CLAIMED = "claimed-by-manager"
ACTIVE = "active"
COMPLETED = "completed"
FAILED = "failed"
SOFT_FAILED = "soft-failed"
CANCEL_REQUESTED = "cancel-requested"
CANCELED = "canceled"

TASK_STATUSES = frozenset(
    {QUEUED, CLAIMED, ACTIVE, COMPLETED, FAILED, SOFT_FAILED, CANCEL_REQUESTED, CANCELED,
     "under-construction", "paused"}
)
#: What `/task` may hand out.
SCHEDULABLE = (QUEUED, CLAIMED, SOFT_FAILED)
#: What may-i-run answers `true` for (recommendation A5: `{active}` for both generations).
RUNNABLE = frozenset({ACTIVE})
#: The only statuses accepted once a task is `cancel-requested`.
ACCEPTED_AFTER_CANCEL = frozenset({CANCELED, FAILED, COMPLETED})
#: Statuses a Worker may report in a task update.
WORKER_REPORTABLE = frozenset({ACTIVE, COMPLETED, FAILED, CANCELED})


def status_change_allowed(current: str | None, new: str) -> bool:
    """PROTOCOL §4.3: keep `cancel-requested` unless the new status ends the task."""
    return current != CANCEL_REQUESTED or new in ACCEPTED_AFTER_CANCEL


def local_status_prevails(local: str | None, server: str, *, unacknowledged: bool = False,
                          same_etag: bool = False) -> bool:
    """On download: does the local status/activity/worker outlive the Server's copy?

    Yes for a locally `active` task whose Server copy still waits: the Server has not yet
    received the queued assignment (§6.3 recommendation). Yes too, whatever the statuses,
    while updates of the task are queued (`unacknowledged`) and the Server has not changed its
    copy (`same_etag`): that copy lags what Workers reported here, e.g. a `completed` that a
    restart kept from the Server. A copy with a new `_etag` (re-queued or cancelled at the
    Server) is followed."""
    if local == ACTIVE and server in SCHEDULABLE:
        return True
    return local is not None and unacknowledged and same_etag


# Worker statuses (§5.10.1).
W_STARTING = "starting"
W_AWAKE = "awake"
W_ASLEEP = "asleep"
W_TESTING = "testing"
W_ERROR = "error"
W_SHUTDOWN = "shutdown"
W_TIMEOUT = "timeout"
W_OFFLINE = "offline"
W_DOWN = "down"
REQUESTABLE_WORKER_STATUSES = frozenset({W_ASLEEP, W_AWAKE, W_SHUTDOWN})
ACKNOWLEDGEABLE_WORKER_STATUSES = frozenset({W_ASLEEP, W_AWAKE, W_TESTING, W_ERROR, W_SHUTDOWN})
