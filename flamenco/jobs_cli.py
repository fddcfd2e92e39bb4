"""`flamenco-manager`: submit and steer jobs of a stand-alone Manager through its job API.

    flamenco-manager submit job.yaml [--wait]   exit status: 0 completed, 1 failed, 3 canceled
    flamenco-manager jobs [--status S]
    flamenco-manager tasks JOB
    flamenco-manager cancel JOB
    flamenco-manager requeue JOB | --all

Refusals are one line on stderr (a refused job: one line per problem) and exit status 2;
a Manager that cannot be reached gives exit status 4. The maintenance commands
(`cleanslate`, `purgequeue`) work on the database itself: see `flamenco.maintenance`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

import yaml
from twisted.internet import defer, error as net_error, task

from flamenco import maintenance
from flamenco.jobs_client import JobAPIError, JobClient

DEFAULT_URL = os.environ.get("FLAMENCO_MANAGER_URL", "http://localhost:8083/")
EXIT_FOR_STATUS = {"completed": 0, "failed": 1, "canceled": 3}
EXIT_REFUSED, EXIT_UNREACHABLE = 2, 4
FINAL = frozenset(EXIT_FOR_STATUS)


class UsageError(Exception):
    pass


def own_platform() -> str:
    if sys.platform.startswith("win"):
        return "windows"
    return "darwin" if sys.platform == "darwin" else "linux"


def load_job_file(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as stream:
            doc = yaml.safe_load(stream)
    except OSError as error:
        raise UsageError(f"cannot read job file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise UsageError(f"job file {path} is not valid YAML: {error}") from None
    if not isinstance(doc, dict):
        raise UsageError(f"job file {path} must be a mapping (name, type, settings ...)")
    doc.setdefault("submitter_platform", own_platform())
    return doc


def progress_line(job: dict, width: int = 30) -> str:
    counts = job.get("task_counts") or {}
    total = sum(counts.values()) or 1
    done = counts.get("completed", 0)
    filled = width * done // total
    return (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tasks completed, "
            f"job {job['status']}")


async def wait_for(client: JobClient, job_id: str, reactor, out: TextIO, poll: float) -> dict:
    """Poll the job until it ends, drawing a progress bar on `out`."""
    interactive = out.isatty()
    last = ""
    while True:
        job = await client.job(job_id)
        line = progress_line(job)
        if line != last:
            out.write(("\r" + line) if interactive else line + "\n")
            out.flush()
            last = line
        if job["status"] in FINAL:
            if interactive:
                out.write("\n")
            return job
        await task.deferLater(reactor, poll, lambda: None)


async def run(reactor, options, out: TextIO, err: TextIO) -> int:
    client = JobClient(options.manager, reactor)
    try:
        return await _command(client, reactor, options, out, err)
    finally:
        await client.close()


async def _command(client: JobClient, reactor, options, out: TextIO, err: TextIO) -> int:
    if options.command == "submit":
        job = await client.submit(load_job_file(options.job_file))
        out.write(f"job {job['id']} submitted: {job['name']!r}, "
                  f"{len(job['task_ids'])} tasks\n")
        if not options.wait:
            return 0
        ended = await wait_for(client, job["id"], reactor, err, options.poll)
        out.write(f"job {ended['id']} {ended['status']}\n")
        return EXIT_FOR_STATUS[ended["status"]]
    if options.command == "jobs":
        for job in await client.jobs(options.status):
            out.write(f"{job['id']}  {job['status']:<16} {job['priority']:>3}  "
                      f"{job['type']:<15} {job['name']}\n")
        return 0
    if options.command == "tasks":
        job = await client.job(options.job)
        for each in job["tasks"]:
            out.write(f"{each['id']}  {each['status']:<18} {each['name']:<24} "
                      f"{each['activity']}\n")
        return 0
    if options.command == "cancel":
        job = await client.act(options.job, "cancel")
        out.write(f"job {job['id']} {job['status']}\n")
        return 0
    if options.all:
        out.write(f"re-queued {await client.requeue_all()} tasks\n")
        return 0
    if not options.job:
        raise UsageError("requeue: give a job ID or --all")
    job = await client.act(options.job, "requeue")
    out.write(f"job {job['id']} {job['status']}: re-queued {job['requeued']} tasks\n")
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="flamenco-manager",
        description="Submit and steer jobs of a stand-alone Manager; erase local data.")
    main.add_argument("--manager", default=DEFAULT_URL,
                      help="the Manager's URL (default: $FLAMENCO_MANAGER_URL or %(default)s)")
    commands = main.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit a job file (YAML)")
    submit.add_argument("job_file")
    submit.add_argument("--wait", action="store_true",
                        help="show progress until the job ends; exit 0 completed, 1 failed, "
                             "3 canceled")
    submit.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    listing = commands.add_parser("jobs", help="list jobs")
    listing.add_argument("--status")
    for name, text in (("tasks", "list a job's tasks"), ("cancel", "cancel a job")):
        commands.add_parser(name, help=text).add_argument("job")
    requeue = commands.add_parser("requeue", help="re-queue failed and cancelled tasks")
    requeue.add_argument("job", nargs="?")
    requeue.add_argument("--all", action="store_true", help="of every job")
    maintenance.add_commands(commands)
    return main


def main(argv: list[str] | None = None) -> None:
    options = parser().parse_args(argv)
    if options.command in maintenance.JOBS:
        maintenance.main(options)

    async def command(reactor):
        try:
            return await run(reactor, options, sys.stdout, sys.stderr)
        except UsageError as error:
            sys.stderr.write(f"flamenco-manager: {error}\n")
            return EXIT_REFUSED
        except JobAPIError as error:
            sys.stderr.write(f"flamenco-manager: {error}\n")
            for problem in error.problems:
                sys.stderr.write(f"  {problem}\n")
            return EXIT_REFUSED
        except (net_error.ConnectError, net_error.ConnectionLost, defer.TimeoutError,
                net_error.DNSLookupError) as error:
            sys.stderr.write(f"flamenco-manager: cannot reach the Manager at "
                             f"{options.manager}: {error.__class__.__name__}\n")
            return EXIT_UNREACHABLE

    def finish(reactor):
        return defer.ensureDeferred(command(reactor)).addCallback(_exit)

    task.react(finish)


def _exit(code: int) -> None:
    """task.react exits with the code of a SystemExit the Deferred fails with."""
    raise SystemExit(code)


if __name__ == "__main__":
    main()
