"""A job's status from its tasks' statuses, by the rules of the Flamenco Server (PROTOCOL
§6.6 leaves job status to the Server; stand-alone, the Manager applies them itself)."""

from __future__ import annotations

from collections import Counter
from typing import Iterable

import attrs

from flamenco import statuses

QUEUED = "queued"
ACTIVE = "active"
PAUSED = "paused"
COMPLETED = "completed"
FAILED = "failed"
CANCEL_REQUESTED = "cancel-requested"
CANCELED = "canceled"
JOB_STATUSES = (QUEUED, ACTIVE, PAUSED, COMPLETED, FAILED, CANCEL_REQUESTED, CANCELED)
FINAL = frozenset({COMPLETED, FAILED, CANCELED})

#: Task statuses after which a task does nothing more until re-queued.
TASK_ENDED = frozenset({statuses.COMPLETED, statuses.FAILED, statuses.CANCELED})
#: A job fails once more than this share of its tasks failed (the Server's 10 %).
FAILED_SHARE_THRESHOLD = 0.10


@attrs.frozen
class Verdict:
    status: str
    #: The job failed: cancel its tasks that have not ended.
    cancel_rest: bool = False


def derive_job_status(job_status: str, task_statuses: Iterable[str],
                      failed_threshold: float = FAILED_SHARE_THRESHOLD) -> Verdict:
    """The job's new status. A final status stays (re-queueing sets the job `queued` first);
    `cancel-requested` becomes `canceled` once every task ended; more than `failed_threshold`
    of the tasks failed: `failed`, and the rest is cancelled; all completed: `completed`; every
    task ended otherwise: `failed`; `paused` stays until resumed; the first task that started
    makes the job `active`."""
    counts = Counter(task_statuses)
    total = sum(counts.values())
    ended = sum(counts[status] for status in TASK_ENDED)
    if job_status in FINAL or total == 0:
        return Verdict(job_status)
    if job_status == CANCEL_REQUESTED:
        return Verdict(CANCELED if ended == total else CANCEL_REQUESTED)
    if counts[statuses.FAILED] > failed_threshold * total:
        return Verdict(FAILED, cancel_rest=ended < total)
    if counts[statuses.COMPLETED] == total:
        return Verdict(COMPLETED)
    if ended == total:
        return Verdict(FAILED)
    if job_status == PAUSED:
        return Verdict(PAUSED)
    waiting = counts[statuses.QUEUED] + counts[statuses.CLAIMED]
    return Verdict(QUEUED if waiting == total else ACTIVE)
