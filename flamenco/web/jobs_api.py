"""The job API of a stand-alone Manager, under `/api/jobs` (docs/openapi-jobs.yaml).

Access is the operator area's (`web.root.ManagerRoot` applies `AccessPolicy` to `/api/`):
the Manager's own machine only, or anyone logged in when `admin_password` is set.
"""

from __future__ import annotations

import functools

from klein import Klein
from twisted.web.iweb import IRequest
from werkzeug.exceptions import MethodNotAllowed, NotFound

from flamenco import strict_json
from flamenco.documents import Task
from flamenco.farm_json import job_summary
from flamenco.standalone.errors import JobConflict, JobRejected, UnknownJob
from flamenco.standalone.service import JobService, JobWithTasks
from flamenco.store.jobs import Job
from flamenco.timefmt import rfc3339
from flamenco.web.responses import endpoint, json_error, json_response, no_content, read_body


def job_endpoint(handler):
    """`endpoint`, plus the job service's refusals: 422 with every problem, 404, 409."""

    @endpoint
    @functools.wraps(handler)
    async def wrapper(self, request, *args, **kwargs):
        try:
            return await handler(self, request, *args, **kwargs)
        except JobRejected as error:
            return json_response(request, {"error": "the job was not accepted",
                                           "problems": error.problems}, 422)
        except UnknownJob as error:
            return json_error(request, 404, error.message)
        except JobConflict as error:
            return json_error(request, 409, error.message)

    return wrapper


class JobsAPI:
    app = Klein()

    def __init__(self, jobs: JobService, *, max_body: int):
        self.jobs = jobs
        self.max_body = max_body

    def _json(self, request: IRequest):
        body = read_body(request, self.max_body)
        try:
            return strict_json.loads(body) if body.strip() else None
        except strict_json.JSONRefused as error:
            raise JobRejected([f"the body is not accepted: {error}"]) from None

    # -- views -----------------------------------------------------------------------------------
    @staticmethod
    def _job(job: Job) -> dict:
        return job_summary(job)

    def _task(self, job: Job, task: Task) -> dict:
        return {"id": task.id, "name": task.name, "status": task.status,
                "task_type": task.task_type, "parents": task.parents,
                "activity": self.jobs.for_submitter(job, task.doc.get("activity", "")),
                "worker": task.doc.get("worker", ""), "commands": task.doc.get("commands", []),
                "updated": rfc3339(task.last_updated) if task.last_updated else None}

    def _job_with_tasks(self, found: JobWithTasks) -> dict:
        return dict(self._job(found.job), task_counts=found.task_counts(),
                    tasks=[self._task(found.job, task) for task in found.tasks])

    # -- unknown routes and methods --------------------------------------------------------------
    @app.handle_errors(NotFound)
    def not_found(self, request, failure):
        return json_error(request, 404, "no such job API route", request.uri.decode("latin-1"))

    @app.handle_errors(MethodNotAllowed)
    def wrong_method(self, request, failure):
        return json_error(request, 405, "method not allowed here",
                          request.method.decode("latin-1"))

    # -- routes ----------------------------------------------------------------------------------
    @app.route("/api/jobs/types", methods=["GET"])
    @job_endpoint
    async def job_types(self, request):
        return json_response(request, {"types": [
            {"name": job_type.name, "description": job_type.description,
             "settings": [spec.describe() for spec in job_type.settings]}
            for job_type in sorted(self.jobs.job_types.values(), key=lambda t: t.name)]})

    @app.route("/api/jobs", methods=["POST"])
    @job_endpoint
    async def submit(self, request):
        found = await self.jobs.submit(self._json(request))
        request.setHeader(b"Location", f"/api/jobs/{found.job.id}".encode())
        return json_response(request, dict(self._job(found.job),
                                           task_ids=[task.id for task in found.tasks]), 201)

    @app.route("/api/jobs", methods=["GET"])
    @job_endpoint
    async def list_jobs(self, request):
        status = request.args.get(b"status", [None])[-1]
        found = await self.jobs.list_jobs(status.decode("utf-8", "replace") if status else None)
        counts = await self.jobs.task_counts()
        return json_response(request, {"jobs": [
            dict(self._job(job), task_counts=counts.get(job.id, {})) for job in found]})

    @app.route("/api/jobs/requeue", methods=["POST"])
    @job_endpoint
    async def requeue_all(self, request):
        return json_response(request, {"requeued": await self.jobs.requeue_all()})

    @app.route("/api/jobs/<job_id>", methods=["GET"])
    @job_endpoint
    async def one_job(self, request, job_id):
        return json_response(request, self._job_with_tasks(await self.jobs.job_with_tasks(job_id)))

    @app.route("/api/jobs/<job_id>", methods=["DELETE"])
    @job_endpoint
    async def delete(self, request, job_id):
        await self.jobs.delete(job_id)
        return no_content(request)

    @app.route("/api/jobs/<job_id>/<action>", methods=["POST"])
    @job_endpoint
    async def action(self, request, job_id, action):
        if action == "requeue":
            job, count = await self.jobs.requeue(job_id)
            return json_response(request, dict(self._job(job), requeued=count))
        if action == "priority":
            doc = self._json(request)
            if not isinstance(doc, dict) or "priority" not in doc:
                raise JobRejected(["priority: required, a whole number 1..100"])
            return json_response(request, self._job(
                await self.jobs.set_priority(job_id, doc["priority"])))
        steer = {"cancel": self.jobs.cancel, "pause": self.jobs.pause,
                 "resume": self.jobs.resume}.get(action)
        if steer is None:
            return json_error(request, 404, f"unknown job action {action!r}",
                              "use cancel, pause, resume, requeue or priority")
        return json_response(request, self._job(await steer(job_id)))
