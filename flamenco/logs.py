"""The log observer `twistd flamenco-manager` installs: a level filter over text or JSON.

twistd takes its observer factory as a dotted name (its `--logger` option), so the level and
format chosen on the command line are kept here until twistd calls `observer()`.

`--json` writes one object per line, as log shippers read them: `time` (ISO 8601, UTC),
`level`, `logger` (the event's namespace), `message` (the rendered text), `traceback` when
there is one, and the event's own fields (values JSON cannot hold as their `str()`).
Twisted's "Starting factory" / "Stopping factory" lines, one per outgoing connection, and
txmongo's error line for every failed reconnection are dropped at every level.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

from twisted.logger import (
    FileLogObserver, FilteringLogObserver, LogLevel, LogLevelFilterPredicate, PredicateResult,
    formatEvent, textFileLogObserver,
)
from twisted.python.failure import Failure

FACTORY_NAME = "flamenco.logs.observer"
_chosen = {"level": LogLevel.warn, "json": False}

#: Keys of legacy (`twisted.python.log`) events that only repeat what `message` says.
_LEGACY_KEYS = frozenset({"message", "format", "system", "isError", "time", "why", "failure"})
_FACTORY_CHATTER = frozenset({"Starting factory {factory!r}", "Stopping factory {factory!r}"})
#: txmongo logs each failed reconnection handshake with `log.err(str(reason))`: an error line
#: per attempt while the database is down, which the store's Availability reports once.
_TXMONGO_RECONNECT_ERROR = (repr("TxMongo lost connection to MongoDB."),)


def choose(level: LogLevel, as_json: bool) -> None:
    _chosen.update(level=level, json=as_json)


def _json_value(value):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def json_line(event: dict) -> str:
    """One event as one line of JSON (with its newline)."""
    level = event.get("log_level") or LogLevel.info
    moment = datetime.fromtimestamp(event.get("log_time") or 0, timezone.utc)
    line: dict = {
        "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level.name,
        "logger": event.get("log_namespace") or "-",
        "message": formatEvent(event),
    }
    failure = event.get("log_failure")
    if isinstance(failure, Failure):
        line["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_") or key in _LEGACY_KEYS or key in line:
            continue
        line[key] = _json_value(value)
    return json.dumps(line, ensure_ascii=False) + "\n"


def is_noise(event: dict) -> bool:
    """Dropped at every level: factory chatter and txmongo's per-reconnection error."""
    if event.get("log_format") in _FACTORY_CHATTER:
        return True
    return bool(event.get("isError")) and event.get("message") == _TXMONGO_RECONNECT_ERROR


def _not_noise(event: dict) -> PredicateResult:
    return PredicateResult.no if is_noise(event) else PredicateResult.maybe


def observer(stream=None):
    output = stream or sys.stdout
    inner = FileLogObserver(output, json_line) if _chosen["json"] else textFileLogObserver(output)
    return FilteringLogObserver(inner, [
        _not_noise, LogLevelFilterPredicate(defaultLogLevel=_chosen["level"]),
    ])


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
