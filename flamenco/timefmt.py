"""Time: "now" from an injected clock, and the timestamp formats seen on the wire."""

from datetime import datetime, timezone

from twisted.internet.interfaces import IReactorTime


def utc_now(clock: IReactorTime) -> datetime:
    return datetime.fromtimestamp(clock.seconds(), tz=timezone.utc)


def from_epoch(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def to_epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def rfc3339_ms(moment: datetime) -> str:
    """`2018-01-10T09:16:40.512Z`: UTC, millisecond precision (PROTOCOL §0.3, A12)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def log_stamp(moment: datetime, local: bool = True) -> str:
    """Prefix of Manager-generated log lines: `2018-01-10T10:16:40+0100`."""
    shown = moment.astimezone() if local else moment.astimezone(timezone.utc)
    return shown.strftime("%Y-%m-%dT%H:%M:%S%z")
