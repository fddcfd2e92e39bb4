"""Job types: small compilers a studio can add through the `flamenco.job_types` entry point
group, without touching the Manager.

An entry point names an object with `name`, `description`, `settings` (a tuple of
`SettingSpec`) and `compile(settings) -> list[TaskSpec]` (raising `CompileError`); the
built-in ones are registered the same way in the Manager's pyproject.toml.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol

from twisted.logger import Logger

from flamenco.jobs.compiled import TaskSpec
from flamenco.jobs.settings import SettingSpec

log = Logger()

ENTRY_POINT_GROUP = "flamenco.job_types"


class JobType(Protocol):
    name: str
    description: str
    settings: tuple[SettingSpec, ...]

    def compile(self, settings: dict) -> list[TaskSpec]:
        """Tasks for validated `settings` (defaults filled in), parents before children."""


def load_job_types(group: str = ENTRY_POINT_GROUP) -> dict[str, JobType]:
    """The installed job types by name. One that fails to load is logged and left out, so a
    broken add-on cannot stop the Manager."""
    found: dict[str, JobType] = {}
    for point in entry_points(group=group):
        try:
            job_type = point.load()
        except Exception as error:
            log.error("job type {name} ({value}) cannot be loaded: {error}",
                      name=point.name, value=point.value, error=error)
            continue
        if point.name != job_type.name:
            log.error("job type entry point {name} loads type {loaded}; left out",
                      name=point.name, loaded=job_type.name)
            continue
        found[point.name] = job_type
    return found
