"""`sleep`: N tasks that each `echo` and then `sleep`, for smoke tests of a farm."""

from __future__ import annotations

from flamenco.jobs.compiled import TaskSpec, command
from flamenco.jobs.settings import SettingSpec


class SleepJob:
    name = "sleep"
    description = "Smoke test: each task echoes a line, then sleeps."
    settings = (
        SettingSpec("n_tasks", "integer", "how many tasks", default=3, minimum=1,
                    maximum=10_000),
        SettingSpec("seconds", "number", "how long each task sleeps", default=10, minimum=0,
                    maximum=86_400),
    )

    def compile(self, settings: dict) -> list[TaskSpec]:
        count, seconds = settings["n_tasks"], settings["seconds"]
        return [
            TaskSpec(
                name=f"sleep-{number}",
                task_type="sleep",
                commands=(
                    command("echo", message=f"Sleeping {seconds:g} s (task {number} of {count})"),
                    command("sleep", time_in_seconds=seconds),
                ),
            )
            for number in range(1, count + 1)
        ]


job_type = SleepJob()
