"""`twistd flamenco-manager`: command-line options and the service tree."""

from __future__ import annotations

import argparse
import socket
import sys

from twisted.application.service import IService
from twisted.logger import Logger, LogLevel
from twisted.python import usage

import flamenco
from flamenco.config import ConfigError, load_config
from flamenco import logs, resolver
from flamenco.manager import build_manager
from flamenco.startup_failure import ListeningService, StartupFailure, exit_with, tls_options
from flamenco.store import store_for
from flamenco.web.site import ManagerSite

log = Logger()


class Options(usage.Options):
    synopsis = ("--config FILE [--debug|--verbose] [--json] [--access-log FILE] "
                "[--cleanslate|--purgequeue [--yes]] | --hash-password")
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
        ["cleanslate", None, "Run `flamenco-manager cleanslate`: erase all local tasks and "
         "the remembered depsgraph timestamp, then exit."],
        ["purgequeue", None, "Run `flamenco-manager purgequeue`: erase all queued task "
         "updates (they are lost), then exit."],
        ["yes", "y", "Do not ask for confirmation (with --cleanslate/--purgequeue)."],
    ]

    def opt_version(self):
        """Print the version and exit."""
        print(f"flamenco-manager {flamenco.__version__}")
        sys.exit(0)

    def opt_hash_password(self):
        """Read a password (prompted, or one line of standard input), print its bcrypt hash for
        `admin_password` and exit."""
        import getpass

        from flamenco.operator_login import hash_password

        if sys.stdin.isatty():
            password = getpass.getpass("Operator password: ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise SystemExit("flamenco-manager: --hash-password: the password is empty")
        print(hash_password(password))
        sys.exit(0)

    def postOptions(self):
        if self["cleanslate"] and self["purgequeue"]:
            raise usage.UsageError("use --cleanslate or --purgequeue, not both")
        if self["cleanslate"] or self["purgequeue"]:
            # The old spelling of `flamenco-manager cleanslate|purgequeue`: run that before
            # twistd takes over standard output; it exits with the command's status.
            from flamenco import maintenance

            maintenance.main(argparse.Namespace(
                command="cleanslate" if self["cleanslate"] else "purgequeue",
                config=self["config"], yes=self["yes"]))
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


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    try:
        config, warnings = load_config(options["config"])
        store = store_for(config)
    except ConfigError as error:
        raise SystemExit(f"flamenco-manager: {error}") from None
    for warning in warnings:
        log.warn("{config}: {warning}", config=options["config"], warning=warning)
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
