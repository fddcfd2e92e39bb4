"""What a job type produces: task specs, and the refusal a compiler raises."""

from __future__ import annotations

import attrs


class CompileError(ValueError):
    """The settings passed their declared types but cannot make a job; lists every problem."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def command(name: str, **settings) -> dict:
    """A command document as the Workers execute it (PROTOCOL §2.1)."""
    return {"name": name, "settings": settings}


@attrs.frozen
class TaskSpec:
    """One task of a compiled job. `parents` name earlier tasks of the same job."""

    name: str
    task_type: str
    commands: tuple[dict, ...]
    parents: tuple[str, ...] = ()
    priority: int = 50
