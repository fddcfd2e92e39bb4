"""The log observer `twistd flamenco-manager` installs: a level filter over text or JSON.

twistd takes its observer factory as a dotted name (its `--logger` option), so the level and
format chosen on the command line are kept here until twistd calls `observer()`.
"""

import sys

from twisted.python.failure import Failure
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


def log_failure(logger, text: str, failure: Failure | None = None, **fields) -> None:
    """Log a failure (default: the exception being handled) with its traceback, unless it is
    the database being unreachable: that is expected, and the store's `Availability` has
    said so once already, so it is only a debug line here."""
    from flamenco.store.interface import StoreUnavailable

    failure = failure or Failure()
    if failure.check(StoreUnavailable):
        logger.debug(text + ": {error}", error=failure.getErrorMessage(), **fields)
    else:
        logger.failure(text, failure, **fields)
