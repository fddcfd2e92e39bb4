"""A jobs store that tells the event bus what changed: the one place `job` events come from.

The job service and the job rounds write jobs only through `IJobStore`, so wrapping it
publishes every new job, status or priority change and deletion exactly once (the tasks'
own events come from `ObservedStore`). Reads pass straight through.
"""

from __future__ import annotations

from zope.interface import implementer

from flamenco.events import EventBus
from flamenco.farm_json import job_changes, job_summary
from flamenco.store.jobs import IJobStore, Job


@implementer(IJobStore)
class ObservedJobStore:
    def __init__(self, jobs: IJobStore, bus: EventBus):
        self._jobs = jobs
        self.bus = bus

    def __getattr__(self, name):
        return getattr(self._jobs, name)

    def add_job(self, job: Job):
        def added(result):
            self.bus.publish("job", job_summary(job))
            return result

        return self._jobs.add_job(job).addCallback(added)

    def update_job(self, job_id: str, changes: dict, only_from=None):
        def updated(changed):
            if changed:
                self.bus.publish("job", {"id": job_id, **job_changes(changes)})
            return changed

        return self._jobs.update_job(job_id, changes, only_from).addCallback(updated)

    def delete_job(self, job_id: str):
        def deleted(found):
            if found:
                self.bus.publish("job-deleted", {"id": job_id})
            return found

        return self._jobs.delete_job(job_id).addCallback(deleted)
