"""`flamenco-manager cleanslate|purgequeue [--yes] [-c CONFIG]`: erase local data in the store
the configuration names, with the Manager stopped.

    cleanslate   all local tasks and the remembered depsgraph timestamp (the next download
                 fetches the Server's whole queue again)
    purgequeue   all queued task updates (they are lost, never pushed)

Asks for confirmation on the terminal unless `--yes` is given; with standard input not a
terminal it refuses instead of reading an answer from a pipe. The result is one line on
stdout, a refusal or failure one line on stderr. Exit status: 0 done, 1 the configuration or
the database failed, 2 not confirmed (declined, or no terminal and no `--yes`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, NoReturn, TextIO

from twisted.internet import task

from flamenco.config import ConfigError, load_config
from flamenco.store import IStore, store_for
from flamenco.store.interface import StoreUnavailable, StoreUnusable
from flamenco.upstream import DEPSGRAPH_TIMESTAMP

PROGRAM = "flamenco-manager"
DEFAULT_CONFIG = "flamenco-manager.yaml"
EXIT_FAILED, EXIT_NOT_CONFIRMED = 1, 2  # and 0: done


async def cleanslate(store: IStore) -> str:
    erased = await store.erase_tasks()
    await store.set_setting(DEPSGRAPH_TIMESTAMP, None)
    return f"cleanslate: erased {erased} local tasks and the remembered depsgraph timestamp"


async def purgequeue(store: IStore) -> str:
    return f"purgequeue: erased {await store.purge_queue()} queued task updates"


@dataclass(frozen=True)
class Job:
    run: Callable[[IStore], Awaitable[str]]
    erases: str


JOBS = {
    "cleanslate": Job(cleanslate, "all local tasks and the remembered depsgraph timestamp"),
    "purgequeue": Job(purgequeue, "all queued task updates (they are lost)"),
}


class Refused(Exception):
    """The command did not run; the message is one line, the code the exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def add_commands(commands: Any) -> None:
    """Add the maintenance sub-commands to `flamenco-manager`'s argparse sub-parsers."""
    for name, job in JOBS.items():
        command = commands.add_parser(
            name, help=f"erase {job.erases} (with the Manager stopped)")
        command.add_argument("-c", "--config", default=DEFAULT_CONFIG,
                             help="the Manager's configuration file (default: %(default)s)")
        command.add_argument("-y", "--yes", action="store_true",
                             help="do not ask for confirmation")


def confirm(name: str, store: IStore, stdin: TextIO | None, stderr: TextIO) -> None:
    """Ask on the terminal; raise `Refused` unless the answer is yes."""
    if stdin is None or not stdin.isatty():
        raise Refused(f"{name}: standard input is not a terminal; "
                      "give --yes to erase without confirmation", EXIT_NOT_CONFIRMED)
    stderr.write(f"{name}: this erases {JOBS[name].erases} in {store.description}. "
                 "Type 'yes' to go on: ")
    stderr.flush()
    try:
        answer = stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    if not answer.endswith("\n"):  # end of input or ^C: end the prompt's line
        stderr.write("\n")
    if answer.strip().lower() not in ("y", "yes"):
        raise Refused(f"{name}: not confirmed, nothing was changed", EXIT_NOT_CONFIRMED)


def prepare(name: str, config_path: str, yes: bool, stdin: TextIO | None,
            stderr: TextIO) -> IStore:
    """The store to work on, once the configuration is read and the erasing confirmed."""
    try:
        config, warnings = load_config(config_path)
        store = store_for(config)
    except ConfigError as error:
        raise Refused(str(error), EXIT_FAILED) from None
    for warning in warnings:
        stderr.write(f"{PROGRAM}: {config_path}: {warning}\n")
    if not yes:
        confirm(name, store, stdin, stderr)
    return store


async def run(name: str, store: IStore, stdout: TextIO) -> None:
    """Open the store, run the job, print its one-line result, close the store."""
    try:
        await store.open()
    except (StoreUnusable, StoreUnavailable) as error:
        raise Refused(f"database_url: cannot open {store.description}: {error}",
                      EXIT_FAILED) from None
    try:
        stdout.write(await JOBS[name].run(store) + "\n")
    except Exception as error:  # noqa: BLE001 - one line, not a traceback, for the operator
        raise Refused(f"{name}: {error}", EXIT_FAILED) from None
    finally:
        await store.close()


def main(options: argparse.Namespace) -> NoReturn:
    """Run the sub-command `options.command` on the reactor; exits with its status."""
    try:
        store = prepare(options.command, options.config, options.yes, sys.stdin, sys.stderr)
    except Refused as refused:
        sys.stderr.write(f"{PROGRAM}: {refused}\n")
        raise SystemExit(refused.code) from None

    async def job(reactor) -> None:
        try:
            await run(options.command, store, sys.stdout)
        except Refused as refused:
            sys.stderr.write(f"{PROGRAM}: {refused}\n")
            raise SystemExit(refused.code) from None

    task.react(job)  # exits with the SystemExit's code, else 0
