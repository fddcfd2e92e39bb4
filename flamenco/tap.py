"""`twistd flamenco-manager`: command-line options and the service tree."""

from __future__ import annotations

import os
import socket
import sys

from twisted.application.service import IService, Service
from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python import usage

import flamenco
from flamenco.config import ConfigError, load_config
from flamenco import logs, resolver
from flamenco.manager import build_manager
from flamenco.startup_failure import ListeningService, StartupFailure, exit_with, tls_options
from flamenco.store import store_for
from flamenco.store.interface import StoreUnavailable, StoreUnusable
from flamenco.upstream import DEPSGRAPH_TIMESTAMP
from flamenco.web.site import ManagerSite

log = Logger()


class Options(usage.Options):
    synopsis = ("--config FILE [--debug|--verbose] [--json] [--access-log FILE] "
                "[--cleanslate|--purgequeue [--yes]]")
    optParameters = [
        ["config", "c", "flamenco-manager.yaml", "The YAML configuration file."],
        ["access-log", None, "",
         "Write one line per HTTP request, in the combined log format, to FILE (appended; "
         "'-' for standard output). Default: no access log."],
    ]
    optFlags = [
        ["debug", "d", "Log debug messages and up."],
        ["verbose", "v", "Log informational messages and up (default: warnings and up)."],
        ["json", None, "Log one JSON object per line (time, level, logger, message, fields)."],
        ["cleanslate", None,
         "Erase all local tasks and the remembered depsgraph timestamp, then exit."],
        ["purgequeue", None, "Erase all queued task updates (they are lost), then exit."],
        ["yes", "y", "Do not ask for confirmation (with --cleanslate/--purgequeue)."],
    ]

    def opt_version(self):
        """Print the version and exit."""
        print(f"flamenco-manager {flamenco.__version__}")
        sys.exit(0)

    def postOptions(self):
        if self["cleanslate"] and self["purgequeue"]:
            raise usage.UsageError("use --cleanslate or --purgequeue, not both")
        level = LogLevel.warn
        if self["debug"]:
            level = LogLevel.debug
        elif self["verbose"]:
            level = LogLevel.info
        logs.choose(level, self["json"])
        parent = getattr(self, "parent", None)
        if parent is not None:
            # twistd creates its log observer from this option after parsing.
            parent["logger"] = logs.FACTORY_NAME


class MaintenanceService(Service):
    """Runs one maintenance job (cleanslate, purgequeue) on the store, then stops the reactor."""

    def __init__(self, store, job, reactor):
        self.store = store
        self.job = job
        self.reactor = reactor

    def startService(self):
        super().startService()
        self.reactor.callWhenRunning(self._run_then_stop)

    def _run_then_stop(self):
        defer.ensureDeferred(self._run()).addBoth(lambda _: self.reactor.stop())

    async def _run(self):
        # twistd redirects sys.stdout/stderr into the log; the result goes to the terminal.
        try:
            try:
                await self.store.open()
            except (StoreUnusable, StoreUnavailable) as error:
                self._fail(f"database_url: cannot open {self.store.description}: {error}")
                return
            print(await self.job(self.store), file=sys.__stdout__, flush=True)
        except Exception as error:
            self._fail(str(error))
        finally:
            await self.store.close()

    def _fail(self, message: str) -> None:
        print(f"flamenco-manager: {message}", file=sys.__stderr__, flush=True)
        # twistd itself always exits with 0; a failed job must not look like success.
        self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)


async def cleanslate(store) -> str:
    erased = await store.erase_tasks()
    await store.set_setting(DEPSGRAPH_TIMESTAMP, None)
    return f"cleanslate: erased {erased} local tasks and the remembered depsgraph timestamp"


async def purgequeue(store) -> str:
    return f"purgequeue: erased {await store.purge_queue()} queued task updates"


def _confirm(question: str) -> None:
    print(question, end=" ", flush=True)
    try:
        answer = input()
    except (EOFError, KeyboardInterrupt):
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise SystemExit("flamenco-manager: aborted, nothing was changed")


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    try:
        config, warnings = load_config(options["config"])
    except ConfigError as error:
        raise SystemExit(f"flamenco-manager: {error}") from None
    for warning in warnings:
        log.warn("{config}: {warning}", config=options["config"], warning=warning)
    store = store_for(config)
    if options["cleanslate"] or options["purgequeue"]:
        job = cleanslate if options["cleanslate"] else purgequeue
        if not options["yes"]:
            _confirm(f"This erases data in {store.description}. Type 'yes' to go on:")
        return MaintenanceService(store, job, reactor)
    try:
        tls = tls_options(config) if config.tls else None
    except StartupFailure as failure:
        raise SystemExit(f"flamenco-manager: {failure}") from None
    if tls is None:
        log.warn("no tlskey/tlscert configured: serving plain HTTP")
    # The Server link and the database connect without waiting behind bcrypt jobs.
    resolver.install(reactor)
    manager = build_manager(config, store, reactor,
                            lease_holder=f"{socket.gethostname()}:{config.listen.port}",
                            on_startup_failure=lambda line: exit_with(line, reactor))
    site = ManagerSite(manager.resource, access_log=options["access-log"])
    ListeningService(reactor, config, site, tls).setServiceParent(manager.services)
    log.info("Flamenco Manager {version} listening on {scheme}://[{host}]:{port}, store {store}",
             version=flamenco.__version__, scheme="https" if config.tls else "http",
             host=config.listen.host, port=config.listen.port, store=store.description)
    return manager.services
