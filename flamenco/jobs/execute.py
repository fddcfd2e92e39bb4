"""`exec`: one command line per task, either `cmd` once or one task per item of `cmds`.

The Workers run it with their `exec` command, so they must list the task type (default
`exec`) among their supported types.
"""

from __future__ import annotations

from flamenco.jobs.compiled import CompileError, TaskSpec, command
from flamenco.jobs.settings import SettingSpec


class ExecJob:
    name = "exec"
    description = "Runs a command line on a Worker, once or once per item of a list."
    settings = (
        SettingSpec("cmd", "string", "the command line of a single task"),
        SettingSpec("cmds", "string-list", "one command line per task"),
        SettingSpec("task_type", "string", "the Worker capability the tasks need",
                    default="exec"),
    )

    def compile(self, settings: dict) -> list[TaskSpec]:
        single, many = settings.get("cmd"), settings.get("cmds")
        if (single is None) == (many is None):
            raise CompileError(["settings: give exactly one of 'cmd' and 'cmds'"])
        lines = [single] if single is not None else settings["cmds"]
        problems = [f"settings.cmds[{index}]: empty command line"
                    for index, line in enumerate(lines) if not line.strip()]
        if not lines:
            problems.append("settings.cmds: no command lines")
        if not settings["task_type"].strip():
            problems.append("settings.task_type: empty")
        if problems:
            raise CompileError(problems)
        return [
            TaskSpec(name=f"exec-{number}", task_type=settings["task_type"],
                     commands=(command("exec", cmd=line),))
            for number, line in enumerate(lines, start=1)
        ]


job_type = ExecJob()
