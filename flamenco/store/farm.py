"""The store's farm-operations part: Worker failures, the blocklist, quarantine, sleep
schedules, task-log marks, removal of old tasks and Workers.

Both stores compose one (`store.farm`): `farm_sqlite.SQLiteFarm`, `farm_mongo.MongoFarm`. The
claim of a task (`IStore.claim_task`) consults the same records, so that a Worker never gets a
task it failed, nor one of a (job, task type) it is blocklisted for (PROTOCOL §5.2).
"""

from __future__ import annotations

from datetime import datetime

import attrs
from zope.interface import Interface

from flamenco.timefmt import rfc3339


@attrs.frozen
class BlocklistEntry:
    """Worker `worker_id` gets no task of job `job_id` and type `task_type` until `expires`."""

    worker_id: str
    job_id: str
    task_type: str
    reason: str
    created: datetime
    expires: datetime

    def to_json(self) -> dict:
        return {"worker_id": self.worker_id, "job_id": self.job_id, "task_type": self.task_type,
                "reason": self.reason, "_created": rfc3339(self.created),
                "expires": rfc3339(self.expires)}


@attrs.frozen
class LogMark:
    """How much of a task's log file is committed (bytes), and the digest of the last Worker
    update appended to it (to recognise a re-send)."""

    job_id: str
    length: int
    digest: str = ""


@attrs.frozen
class Quarantine:
    """A Worker asked to sleep because it failed tasks of too many jobs; in force until an
    operator wakes it (`released` is then set)."""

    worker_id: str
    reason: str
    since: datetime
    released: datetime | None = None

    def to_json(self) -> dict:
        return {"worker_id": self.worker_id, "reason": self.reason,
                "since": rfc3339(self.since)}


@attrs.frozen
class SleepSchedule:
    worker_id: str
    active: bool
    days_of_week: tuple[str, ...] = ()  # "mo".."su"; empty: every day
    time_start: str = ""  # "HH:MM", empty: from midnight
    time_end: str = ""  # "HH:MM", empty: until midnight
    next_check: datetime | None = None

    def to_json(self) -> dict:
        doc: dict = {"schedule_active": self.active, "days_of_week": " ".join(self.days_of_week),
                     "time_start": self.time_start, "time_end": self.time_end}
        if self.next_check is not None:
            doc["next_check"] = rfc3339(self.next_check)
        return doc


@attrs.frozen
class OldTask:
    task_id: str
    job_id: str


class IFarmStore(Interface):
    # -- failures (§5.9) -------------------------------------------------------------------------
    def record_failure(task_id, worker_id, identifier, job_id, task_type, now):
        """Remember that the Worker failed the task (once per pair). Fires with the task's
        failers as `[{"id": worker ID, "identifier": ...}]`, in the order they failed."""

    def failers(task_id):
        """Fires with the task's failers, as `record_failure` returns them."""

    def clear_failures(task_id):
        """Forget who failed the task (an operator re-queued it): any Worker may get it again."""

    def failed_tasks(worker_id, job_id, task_type):
        """Fires with the IDs of the tasks of (job, type) this Worker failed."""

    def jobs_failed_since(worker_id, since):
        """Fires with how many different jobs the Worker failed a task of after `since`."""

    # -- the blocklist ---------------------------------------------------------------------------
    def add_blocklist_entry(entry):
        """Store a `BlocklistEntry`, replacing one for the same (worker, job, type)."""

    def blocklist(now):
        """Fires with the entries not expired at `now`, by worker, job, type."""

    def blocklisted_workers(job_id, task_type, now):
        """Fires with the set of Worker IDs blocklisted for (job, type) at `now`."""

    def remove_blocklist_entry(worker_id, job_id, task_type):
        """Fires True if there was such an entry."""

    def expire_blocklist(now):
        """Remove entries expired at `now`; fires with how many."""

    # -- Workers ---------------------------------------------------------------------------------
    def remove_worker(worker_id):
        """Delete the Worker record and its blocklist entries. Fires True if it existed."""

    # -- quarantine --------------------------------------------------------------------------
    def quarantine_of(worker_id):
        """Fires with the Worker's latest `Quarantine` (in force or released), or None."""

    def set_quarantine(quarantine):
        """Store the Worker's `Quarantine`, replacing an earlier one."""

    def quarantined():
        """Fires with the quarantines in force, by Worker ID."""

    # -- sleep schedules (§5.10.4) --------------------------------------------------------------
    def sleep_schedule(worker_id):
        """Fires with the Worker's `SleepSchedule`, or None."""

    def set_sleep_schedule(schedule):
        """Store a `SleepSchedule`, replacing the Worker's earlier one."""

    def remove_sleep_schedule(worker_id):
        """Fires True if the Worker had a schedule."""

    def sleep_schedules_due(now):
        """Fires with the active schedules whose `next_check` is missing or not after `now`."""

    # -- task logs (§6.7) ------------------------------------------------------------------------
    def log_mark(task_id):
        """Fires with the task's `LogMark`, or None."""

    def set_log_mark(task_id, mark):
        """Store the task's `LogMark`."""

    # -- housekeeping (§5.11) --------------------------------------------------------------------
    def remove_old_tasks(cutoff, limit):
        """Delete up to `limit` tasks not touched since `cutoff` (the later of last ping and
        last update), never an `active` one nor one with queued updates, with their failures
        and log marks. Fires with the removed tasks as `OldTask`s."""
