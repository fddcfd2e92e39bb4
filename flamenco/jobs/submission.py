"""A submitted job (`{name, type, priority, settings, submitter_platform}`): validated and
compiled in one step that reports every problem, then turned into task documents."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import attrs

from flamenco import statuses
from flamenco.jobs.compiled import CompileError, TaskSpec
from flamenco.jobs.settings import validate_settings
from flamenco.jobs.twoway import TwoWayVariables
from flamenco.jobs.types import JobType

PLATFORMS = ("linux", "windows", "darwin")
DEFAULT_PRIORITY = 50
MAX_NAME_LENGTH = 128
#: A job with more tasks is refused: storing them is one transaction the Workers wait behind.
MAX_TASKS = 10_000


class JobRejected(ValueError):
    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@attrs.frozen
class Submission:
    name: str
    type: str
    priority: int
    #: As submitted, defaults filled in (shown to the submitter).
    settings: dict
    submitter_platform: str
    tasks: tuple[TaskSpec, ...]


def _priority(doc: dict, problems: list[str]) -> int:
    value = doc.get("priority", DEFAULT_PRIORITY)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        problems.append(f"priority: expected a whole number 1..100, not {value!r}")
        return DEFAULT_PRIORITY
    if not 1 <= value <= 100:
        problems.append(f"priority: must be 1..100, not {int(value)}")
    return int(value)


def prepare_job(doc: Any, job_types: Mapping[str, JobType], twoway: TwoWayVariables
                ) -> Submission:
    """Validate and compile a submission; raises JobRejected listing every problem."""
    if not isinstance(doc, dict):
        raise JobRejected(["the job must be a JSON object"])
    problems: list[str] = []
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: required, a non-empty string")
        name = ""
    elif len(name) > MAX_NAME_LENGTH:
        problems.append(f"name: at most {MAX_NAME_LENGTH} characters")
    priority = _priority(doc, problems)
    platform = doc.get("submitter_platform", "")
    if platform not in ("", *PLATFORMS):
        problems.append(f"submitter_platform: one of {', '.join(PLATFORMS)}, not {platform!r}")
        platform = ""
    for key in sorted(set(doc) - {"name", "type", "priority", "settings",
                                  "submitter_platform"}):
        problems.append(f"{key}: unknown field")
    type_name = doc.get("type")
    job_type = job_types.get(type_name) if isinstance(type_name, str) else None
    if job_type is None:
        problems.append(f"type: {type_name!r} is not a job type "
                        f"(known: {', '.join(sorted(job_types))})")
        raise JobRejected(problems)
    settings, setting_problems = validate_settings(job_type.settings, doc.get("settings", {}))
    problems.extend(setting_problems)
    tasks: list[TaskSpec] = []
    if not setting_problems:
        for_workers = twoway.settings_from_submitter(settings, platform) if platform else settings
        try:
            tasks = job_type.compile(for_workers)
        except CompileError as error:
            problems.extend(error.problems)
        if len(tasks) > MAX_TASKS:
            problems.append(f"the job would have {len(tasks):,} tasks; at most {MAX_TASKS:,} "
                            "(use larger chunks)")
    if problems:
        raise JobRejected(problems)
    return Submission(name=name, type=job_type.name, priority=priority, settings=settings,
                      submitter_platform=platform, tasks=tuple(tasks))


def task_documents(job_id: str, submission: Submission, new_id: Callable[[], str]
                   ) -> list[dict]:
    """The tasks as the Server would deliver them (§2.2), queued, parents as task IDs."""
    ids = {spec.name: new_id() for spec in submission.tasks}
    return [
        {
            "_id": ids[spec.name],
            "job": job_id,
            "name": spec.name,
            "status": statuses.QUEUED,
            "priority": spec.priority,
            "job_priority": submission.priority,
            "job_type": submission.type,
            "task_type": spec.task_type,
            "commands": [dict(command) for command in spec.commands],
            "parents": [ids[parent] for parent in spec.parents],
        }
        for spec in submission.tasks
    ]
