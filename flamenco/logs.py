"""The log observer `twistd flamenco-manager` installs: a level filter over text or JSON.

twistd takes its observer factory as a dotted name (its `--logger` option), so the level and
format chosen on the command line are kept here until twistd calls `observer()`.
"""

import sys

from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, jsonFileLogObserver,
    textFileLogObserver,
)

FACTORY_NAME = "flamenco.logs.observer"
_chosen = {"level": LogLevel.warn, "json": False}


def choose(level: LogLevel, as_json: bool) -> None:
    _chosen.update(level=level, json=as_json)


def observer(stream=None):
    output = stream or sys.stdout
    inner = jsonFileLogObserver(output) if _chosen["json"] else textFileLogObserver(output)
    return FilteringLogObserver(inner, [LogLevelFilterPredicate(defaultLogLevel=_chosen["level"])])
