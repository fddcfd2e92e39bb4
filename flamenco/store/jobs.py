"""The jobs part of the store (stand-alone mode): jobs submitted to this Manager.

A separate interface beside `IStore`, implemented per backend (`jobs_sqlite`, `jobs_mongo`)
on the same connection as the backend's `IStore`, with one contract test-suite
(`tests/jobs_store_contract.py`). Tasks stay in the task store: a job's tasks are the tasks
whose document names it in `job`, inserted with `store_server_tasks` and changed only through
the task store's methods, so scheduling and Worker updates work as in relay mode.
"""

from __future__ import annotations

from datetime import datetime

import attrs
from zope.interface import Interface


@attrs.frozen
class Job:
    id: str
    name: str
    type: str
    priority: int
    status: str
    #: As the submitter gave them (their platform's paths), defaults filled in.
    settings: dict
    submitter_platform: str
    created: datetime
    updated: datetime


#: Job fields `update_job` may change.
UPDATABLE = frozenset({"status", "priority", "updated"})


class IJobStore(Interface):
    def add_job(job):
        """Insert a new `Job` (its tasks are stored separately, after it)."""

    def get_job(job_id):
        """Fires with the Job, or None."""

    def list_jobs(status=None):
        """Fires with the Jobs (only those in `status` when given), oldest first."""

    def update_job(job_id, changes, only_from=None):
        """Set fields of `UPDATABLE`; with `only_from` (statuses) only a job currently in one of
        them changes. Fires True if the job was changed."""

    def job_tasks(job_id):
        """Fires with the job's Tasks, by ID (the order they were created in)."""

    def delete_job(job_id):
        """Delete the job and its tasks. Fires True if the job existed."""

    def task_counts():
        """Fires with `{job ID: {task status: count}}` over the tasks of every job (a job
        without tasks is left out): the progress column of a jobs list, in one query."""


def job_store_for(store) -> IJobStore:
    """The jobs part on the same database as backend `store` (the backend itself, not a
    wrapper: the SQLite part joins the backend's own group commit)."""
    from flamenco.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        from flamenco.store.jobs_sqlite import SQLiteJobStore

        return SQLiteJobStore(store.connection)
    from flamenco.store.mongo import MongoStore  # (only here: SQLite needs no MongoDB driver)

    if isinstance(store, MongoStore):
        from flamenco.store.jobs_mongo import MongoJobStore

        return MongoJobStore(store)
    raise TypeError(f"no jobs store part for {type(store).__name__}; pass the backend store")
