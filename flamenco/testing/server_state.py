"""The simulated Flamenco Server's state and rules, without HTTP (`server.SimulatedServer` adds
the API): tasks and jobs, what users do on the Server, and how pushed updates are applied
(PROTOCOL §6.6). `generation` selects the 2017 or the 2021 behaviour where they differ.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import attrs

from flamenco.ids import new_object_id

DEFAULT_MANAGER_ID = "5a1f0c3e9f1b2c0d4e5f6a70"
DEFAULT_MANAGER_SECRET = "mgr-token-123"
DEFAULT_PROJECT = "5a0b00000000000000000001"
DEFAULT_USER = "5a0b00000000000000000002"

RUNNABLE_JOB = {"2017": {"queued", "active", "cancel-requested"},
                "2021": {"queued", "active", "cancel-requested", "soft-failed"}}
CLEAN_SLATE_TASK = {"2017": {"queued", "claimed-by-manager", "active", "cancel-requested"},
                    "2021": {"queued", "claimed-by-manager", "active", "cancel-requested",
                             "soft-failed"}}
SINCE_TASK = {"2017": {"queued", "claimed-by-manager"},
              "2021": {"queued", "claimed-by-manager", "soft-failed"}}
ALLOWED_STATUS = {"queued", "claimed-by-manager", "active", "completed", "failed",
                  "soft-failed", "cancel-requested", "canceled", "paused",
                  "under-construction"}
AFTER_CANCEL = {"canceled", "failed", "completed"}


@attrs.define
class ServerTask:
    doc: dict  # everything but _updated / _etag
    updated: datetime
    etag: str
    log: str = ""  # the 2021 Server keeps the last few lines here

    def public(self) -> dict:
        out = dict(self.doc)
        out["_etag"] = self.etag
        out["_updated"] = format_datetime(self.updated, usegmt=True)
        return out


@attrs.define
class ServerJob:
    id: str
    manager: str
    status: str
    job_type: str
    priority: int
    task_ids: list


class ServerState:
    """The Server's tasks, jobs and received logs, with the operations on them."""

    def __init__(self, *, manager_id: str, manager_secret: str, generation: str, clock):
        if clock is None:
            from twisted.internet import reactor as clock
        assert generation in ("2017", "2021")
        self.clock = clock
        self.generation = generation
        self.managers: dict[str, str] = {manager_id: manager_secret}  # id -> token
        self.manager_id = manager_id
        self.tasks: dict[str, ServerTask] = {}
        self.jobs: dict[str, ServerJob] = {}
        self.task_logs: dict[str, dict] = {}  # update _id -> {task, received_on_manager, log}
        #: (task ID, new status, received_on_manager or None) for every accepted change.
        self.status_history: list[tuple[str, str, datetime | None]] = []
        self._last_stamp = datetime.fromtimestamp(0, timezone.utc)

    # -- Server-side operations (what users do on the Server) ------------------------------------
    def _stamp(self) -> datetime:
        """Strictly increasing `_updated` values at millisecond precision, like MongoDB."""
        now = datetime.fromtimestamp(self.clock.seconds(), timezone.utc)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def _touch(self, task: ServerTask, when: datetime | None = None) -> None:
        task.updated = when if when is not None else self._stamp()
        task.etag = secrets.token_hex(10)

    def create_job(self, tasks: list[dict], *, job_type: str = "sleep", priority: int = 50,
                   manager_id: str | None = None, status: str = "queued") -> tuple[str, list[str]]:
        """Create a job; `tasks` are partial task documents (name, commands, task_type,
        priority, `parents` as indices into `tasks` or ObjectIds). Returns (job, task IDs)."""
        manager_id = manager_id or self.manager_id
        job_id = new_object_id()
        ids = [spec.get("_id") or new_object_id() for spec in tasks]
        for index, spec in enumerate(tasks):
            parents = [ids[p] if isinstance(p, int) else p for p in spec.get("parents", [])]
            doc = {
                "_id": ids[index],
                "job": job_id,
                "manager": manager_id,
                "project": DEFAULT_PROJECT,
                "user": DEFAULT_USER,
                "name": spec.get("name", f"task-{index}"),
                "status": status,
                "priority": spec.get("priority", 50),
                "job_priority": priority,
                "job_type": job_type,
                "commands": spec.get("commands", [{"name": "echo",
                                                   "settings": {"message": f"task {index}"}}]),
                "parents": parents,
                "activity": "",
                "worker": "",
                "task_progress_percentage": 0,
                "current_command_index": 0,
                "command_progress_percentage": 0,
                "_created": format_datetime(datetime.fromtimestamp(
                    self.clock.seconds(), timezone.utc), usegmt=True),
            }
            if spec.get("task_type"):
                doc["task_type"] = spec["task_type"]
            self.tasks[ids[index]] = ServerTask(doc=doc, updated=self._stamp(),
                                                etag=secrets.token_hex(10))
        self.jobs[job_id] = ServerJob(job_id, manager_id, status, job_type, priority, ids)
        return job_id, ids

    def set_task(self, task_id: str, **fields) -> None:
        """A Server-side edit (new `_updated` and `_etag`)."""
        task = self.tasks[task_id]
        task.doc.update(fields)
        self._touch(task)

    def delete_task(self, task_id: str) -> None:
        del self.tasks[task_id]

    def cancel_job(self, job_id: str) -> None:
        """What the Server does on a user's cancel: tasks not yet given to a Manager are
        canceled; the ones a Manager holds become `cancel-requested`."""
        job = self.jobs[job_id]
        job.status = "cancel-requested"
        for task_id in job.task_ids:
            task = self.tasks.get(task_id)
            if task is None:
                continue
            if task.doc["status"] == "queued":
                task.doc["status"] = "canceled"
                self._touch(task)
            elif task.doc["status"] in ("claimed-by-manager", "active", "soft-failed"):
                task.doc["status"] = "cancel-requested"
                self._touch(task)
        self._update_job(job)

    def _update_job(self, job: ServerJob) -> None:
        found = [self.tasks[t].doc["status"] for t in job.task_ids if t in self.tasks]
        if job.status == "cancel-requested":
            if "cancel-requested" not in found:
                job.status = "canceled"
        elif found and all(s == "completed" for s in found):
            job.status = "completed"
        elif any(s in ("active", "completed") for s in found) and job.status == "queued":
            job.status = "active"

    def task_status(self, task_id: str) -> str:
        return self.tasks[task_id].doc["status"]

    def logs_of(self, task_id: str) -> list[str]:
        """All log text received for a task, in `received_on_manager` order."""
        entries = sorted((e for e in self.task_logs.values() if e["task"] == task_id),
                         key=lambda e: (e["received_on_manager"], e["_id"]))
        return [e["log"] for e in entries]

    def _apply_update(self, manager_id: str, update: dict) -> int | None:
        """§6.6 for one update: None = not acknowledged, else the number of tasks modified."""
        task = self.tasks.get(update["task_id"])
        if task is None:
            return 0 if self.generation == "2021" else None
        if task.doc["manager"] != manager_id:
            return None
        received = update.get("received_on_manager")
        try:
            received_at = datetime.fromisoformat(received.replace("Z", "+00:00")) \
                if received else None
        except (AttributeError, ValueError):
            received_at = None
        if update.get("log"):
            if received_at is None and self.generation == "2017":
                return None
            self.task_logs[update["_id"]] = {
                "_id": update["_id"], "task": task.doc["_id"],
                "received_on_manager": received_at or datetime.now(timezone.utc),
                "log": update["log"],
            }
        doc = task.doc
        for key in ("task_progress_percentage", "current_command_index",
                    "command_progress_percentage"):
            doc[key] = update.get(key, 0)
        new_status = update.get("task_status") or ""
        changed = False
        if new_status and new_status != doc["status"] and new_status in ALLOWED_STATUS:
            if doc["status"] != "cancel-requested" or new_status in AFTER_CANCEL:
                doc["status"] = new_status
                changed = True
                self.status_history.append((doc["_id"], new_status, received_at))
        if update.get("activity"):
            doc["activity"] = update["activity"]
        if update.get("worker"):
            doc["worker"] = update["worker"]
        if self.generation == "2021":
            if update.get("metrics", {}).get("timing"):
                doc.setdefault("metrics", {})["timing"] = update["metrics"]["timing"]
            if update.get("failed_by_workers"):
                doc["failed_by_workers"] = update["failed_by_workers"]
            tail = update.get("log_tail") or "\n".join(
                (update.get("log") or "").splitlines()[-10:])
            if tail:
                task.log = tail
            self._touch(task, max(received_at, self._stamp()) if received_at else None)
        if changed and doc["job"] in self.jobs:
            self._update_job(self.jobs[doc["job"]])
        return 1


def demo_job_tasks(seconds: int = 2) -> list[dict]:
    """A small diamond: prepare -> (render-a, render-b) -> merge."""

    def sleep(name, task_type, parents):
        return {"name": name, "task_type": task_type, "parents": parents,
                "commands": [{"name": "echo", "settings": {"message": f"{name} starting"}},
                             {"name": "sleep", "settings": {"time_in_seconds": seconds}}]}

    return [sleep("prepare", "sleep", []), sleep("render-a", "sleep", [0]),
            sleep("render-b", "sleep", [0]), sleep("merge", "sleep", [1, 2])]
