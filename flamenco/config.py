"""The YAML configuration file, read into a validated, immutable `Config`.

Keys keep the 2017 Manager's names (PROTOCOL §7.1); the 2.x duration spellings
(`download_task_sleep: 5m`, §7.2) are accepted as aliases. Any problem stops start-up with
one `ConfigError` line naming the key; unknown keys only produce warnings.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import yaml

from flamenco.ids import is_object_id, normalise_object_id

PLATFORMS = ("linux", "windows", "darwin")
#: The Flamenco Server releases the Manager can talk to (see the README, "Which Server").
SERVER_GENERATIONS = ("2017", "2021")


class ConfigError(ValueError):
    """The configuration cannot be used; the message is one line naming the key."""


def _non_negative(instance, attribute, value):
    if value < 0:
        raise ConfigError(f"{attribute.name}: must be zero or more, not {value}")


def _positive(instance, attribute, value):
    if value <= 0:
        raise ConfigError(f"{attribute.name}: must be more than zero, not {value}")


def _boolean(instance, attribute, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: expected true or false, not {value!r}")


def _sync_mode(instance, attribute, value):
    if value not in ("full", "normal"):
        raise ConfigError(f"{attribute.name}: expected full or normal, not {value!r}")


def _bcrypt_cost(instance, attribute, value):
    if not 4 <= value <= 31:
        raise ConfigError(f"{attribute.name}: bcrypt costs go from 4 to 31, not {value}")


REGISTRATION_MODES = ("open", "secret", "approve")


def _optional_boolean(instance, attribute, value):
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{attribute.name}: expected true or false, not {value!r}")


def _server_generation(instance, attribute, value):
    if value not in SERVER_GENERATIONS:
        raise ConfigError(f"{attribute.name}: expected one of {', '.join(SERVER_GENERATIONS)}, "
                          f"not {value!r}")


def _time_zone(instance, attribute, value):
    if value:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{attribute.name}: unknown time zone {value!r}"
                              " (use a name like Europe/Amsterdam)") from None


def _string_tuple(key: str, value) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{key}: expected a list of strings, not {value!r}")
    return tuple(value)


def _bcrypt_hash(instance, attribute, value):
    if value and not re.fullmatch(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", value):
        raise ConfigError(f"{attribute.name}: not a bcrypt hash; print one with "
                          "`twistd flamenco-manager --hash-password`")


@attrs.frozen
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """`[::0]:8083`, `:8083`, `host:8083` (the seed's forms)."""
        match = re.fullmatch(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<host>[^:\[\]]*)):(?P<port>\d+)",
                             text.strip())
        if not match or not 0 < int(match["port"]) < 65536:
            raise ConfigError(f"listen: {text!r} is not host:port, [ipv6]:port or :port")
        host = match["v6"] if match["v6"] is not None else match["host"]
        return cls(host=host or "::", port=int(match["port"]))

    @property
    def interface(self) -> str:
        """The interface string for Twisted's endpoints (IPv6 addresses escaped)."""
        return self.host.replace(":", r"\:")


@attrs.frozen
class Config:
    database_url: str = ""
    #: Embedded store only: `full` syncs every (group) commit to disk, so an accepted update
    #: survives a power cut; `normal` survives a crash of the Manager but not of the machine.
    database_sync: str = attrs.field(default="full", validator=_sync_mode)
    listen: ListenAddress = ListenAddress("::", 8083)
    own_url: str = ""
    flamenco: str = ""
    manager_id: str = ""
    manager_secret: str = ""
    tlskey: str = ""
    tlscert: str = ""
    download_task_sleep_seconds: float = attrs.field(default=300, validator=_positive)
    download_task_recheck_throttle_seconds: float = 10
    task_update_push_max_interval_seconds: float = attrs.field(default=30, validator=_positive)
    task_update_push_max_count: int = attrs.field(default=10, validator=_positive)
    cancel_task_fetch_max_interval_seconds: float = attrs.field(default=10, validator=_positive)
    active_task_timeout_interval_seconds: float = attrs.field(default=60, validator=_positive)
    task_timeout_check_interval_seconds: float = attrs.field(default=5, validator=_positive)
    task_timeout_grace_seconds: float = attrs.field(default=300, validator=_non_negative)
    refetch_timeout_seconds: float = attrs.field(default=1.0, validator=_positive)
    upstream_timeout_seconds: float = attrs.field(default=30, validator=_positive)
    #: Cap of the exponential back-off between failed pushes (1 s, 2 s, 4 s, ... this).
    task_update_push_backoff_max_seconds: float = attrs.field(default=60, validator=_positive)
    #: How long the push / depsgraph-download lease lasts when several Managers share a
    #: database; the holder renews it on every round.
    upstream_lease_seconds: float = attrs.field(default=30, validator=_positive)
    #: An update the Server has left unacknowledged in this many successful pushes is dropped
    #: (and logged in full): the 2017 Server never acknowledges updates for tasks it does not
    #: have, which would otherwise take batch slots for ever. 0 = never drop.
    task_update_give_up_after_sends: int = attrs.field(default=100, validator=_non_negative)
    #: gzip task-update pushes (a Server's refusal is learnt and stored: upstream.gzip_choice).
    upstream_gzip: bool = attrs.field(default=True, validator=_boolean)
    #: Start-up gives up (one line, exit status 1) when the database has not opened by then.
    database_startup_timeout_seconds: float = attrs.field(default=30, validator=_positive)
    max_request_body_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_positive)
    worker_registration_secret: str = ""
    #: open (anyone may register), secret (a token signed with worker_registration_secret),
    #: approve (registered, but no task until an operator approves). Empty: secret when
    #: worker_registration_secret is set, else open (the behaviour before this key existed).
    worker_registration: str = ""
    #: Failed Worker authentications from one address per window before it gets 429.
    worker_auth_failure_limit: int = attrs.field(default=50, validator=_positive)
    worker_auth_failure_window_seconds: float = attrs.field(default=60, validator=_positive)
    #: bcrypt cost (log2 rounds) for new Worker secrets; each +1 doubles the time per hash.
    #: 8, not the 2017 Manager's 10: both Worker generations make their secret of 64 random
    #: letters and digits, which no guessing reaches at any cost, while every registration of
    #: a storm pays the cost (README, "Choosing the bcrypt cost").
    worker_secret_bcrypt_cost: int = attrs.field(default=8, validator=_bcrypt_cost)
    #: Threads that do nothing but bcrypt work (registrations, first sign-ons).
    worker_secret_hashing_threads: int = attrs.field(default=1, validator=_positive)
    #: bcrypt hash of the operator password (`--hash-password` prints one); empty: the operator
    #: API, dashboard and events are served to the Manager's own machine only.
    admin_password: str = attrs.field(default="", validator=_bcrypt_hash)
    #: Serve `/metrics`, `/healthz` and `/readyz` (no login needed).
    serve_metrics: bool = attrs.field(default=True, validator=_boolean)
    variables: dict = attrs.field(factory=dict)
    # -- farm operations (PROTOCOL §5.9-5.11, §6.7) ----------------------------------------------
    #: 2017: pushes carry the full `log` and soft-fail is off; 2021: `log_tail`, soft-fail on.
    server_generation: str = attrs.field(default="2021", validator=_server_generation)
    #: A Worker's `failed` becomes `soft-failed` (retried elsewhere); None: per Server generation.
    task_soft_fail: bool | None = attrs.field(default=None, validator=_optional_boolean)
    task_fail_after_softfail_count: int = attrs.field(default=3, validator=_positive)
    blocklist_threshold: int = attrs.field(default=3, validator=_non_negative)
    blocklist_expiry: float = attrs.field(default=7 * 24 * 3600.0, validator=_positive)
    #: Quarantine: failures in this many different jobs within the window; 0 = off.
    sick_worker_jobs: int = attrs.field(default=3, validator=_non_negative)
    sick_worker_window: float = attrs.field(default=3600.0, validator=_positive)
    #: Awake Workers not heard of for this long become `timeout`; 0 = never.
    active_worker_timeout_interval_seconds: float = attrs.field(default=60, validator=_non_negative)
    worker_cleanup_max_age: float = attrs.field(default=0.0, validator=_non_negative)
    worker_cleanup_status: tuple = ("offline",)
    task_cleanup_max_age: float = attrs.field(default=336 * 3600.0, validator=_non_negative)
    #: Where task log files live; empty = no log files (pushes then carry the full log).
    task_logs_path: str = "task-logs"
    #: IANA zone the sleep schedules' times are in; empty = the system's.
    sleep_schedule_timezone: str = attrs.field(default="", validator=_time_zone)
    #: Stand-alone mode: name -> platform -> path prefix, mapped both ways (flamenco.jobs.twoway).
    two_way_variables: dict = attrs.field(factory=dict)

    @property
    def sleep_schedule_zone(self):
        return ZoneInfo(self.sleep_schedule_timezone) if self.sleep_schedule_timezone else None

    @property
    def soft_fail(self) -> bool:
        if self.task_soft_fail is not None:
            return self.task_soft_fail
        return self.server_generation == "2021"

    @property
    def send_log_tail(self) -> bool:
        """`log_tail` instead of the full `log` upstream: a 2021 Server, logs kept here."""
        return self.server_generation == "2021" and bool(self.task_logs_path)

    @property
    def registration_mode(self) -> str:
        if self.worker_registration:
            return self.worker_registration
        return "secret" if self.worker_registration_secret else "open"

    @property
    def tls(self) -> bool:
        return bool(self.tlskey and self.tlscert)

    @property
    def has_upstream(self) -> bool:
        return bool(self.flamenco)

    @property
    def manager_url(self) -> str:
        """`own_url` with its scheme forced to match the TLS setting (§2.12)."""
        if not self.own_url:
            return ""
        parts = urlsplit(self.own_url)
        return parts._replace(scheme="https" if self.tls else "http").geturl()

    @property
    def store_location(self) -> tuple[str, str]:
        """('sqlite', path) or ('mongodb', url)."""
        url = self.database_url.strip()
        if not url:
            return ("sqlite", "flamenco-manager.sqlite")
        if url.startswith("sqlite:"):
            return ("sqlite", url[len("sqlite:"):])
        return ("mongodb", url)


#: 2.x names (durations with unit suffix) and the 2017 keys they stand for.
_DURATION_ALIASES = {
    "download_task_sleep": "download_task_sleep_seconds",
    "download_task_recheck_throttle": "download_task_recheck_throttle_seconds",
    "task_update_push_max_interval": "task_update_push_max_interval_seconds",
    "cancel_task_fetch_max_interval": "cancel_task_fetch_max_interval_seconds",
    "active_task_timeout_interval": "active_task_timeout_interval_seconds",
    "database_startup_timeout": "database_startup_timeout_seconds",
    "active_worker_timeout_interval": "active_worker_timeout_interval_seconds",
}
#: Other accepted spellings (the 2.x Managers' name for the blocklist).
_ALIASES = {"blacklist_threshold": "blocklist_threshold"}
_FLOAT_KEYS = {
    field.name for field in attrs.fields(Config) if field.type in ("float", float)
}
_INT_KEYS = {field.name for field in attrs.fields(Config) if field.type in ("int", int)}
_STRING_KEYS = {field.name for field in attrs.fields(Config) if field.type in ("str", str)}


def parse_duration(key: str, text) -> float:
    """`30s`, `5m`, `1h30m`, `336h`, `7d`, or a bare number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        raise ConfigError(f"{key}: expected a duration like 30s or 5m, not {text!r}")
    sign = -1 if text.startswith("-") else 1
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text.lstrip("-"))
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-"):
        raise ConfigError(f"{key}: expected a duration like 30s or 5m, not {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sign * sum(float(number) * scale[unit] for number, unit in parts)


def parse_config(raw: dict | None) -> tuple[Config, list[str]]:
    """Validate a decoded YAML mapping; returns the Config and warnings (unknown keys)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError("the configuration file must be a YAML mapping of keys to values")
    known = {field.name for field in attrs.fields(Config)}
    values: dict = {}
    warnings = []
    for key, value in raw.items():
        if key in _ALIASES and value is not None:
            values[_ALIASES[key]] = _convert(_ALIASES[key], value)
        elif key in _DURATION_ALIASES:
            values[_DURATION_ALIASES[key]] = parse_duration(key, value)
        elif key not in known:
            warnings.append(f"unknown configuration key {key!r} ignored")
        elif value is None:
            continue
        else:
            values[key] = _convert(key, value)
    _check_upstream(values)
    try:
        config = Config(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(str(error)) from None
    worker_timeout = config.active_worker_timeout_interval_seconds
    if worker_timeout > config.active_task_timeout_interval_seconds:
        # PROTOCOL A9: the Worker timeout should re-queue a silent Worker's task before the
        # task timeout fails it.
        warnings.append(
            f"active_worker_timeout_interval ({worker_timeout:g} s) is longer than "
            f"active_task_timeout_interval ({config.active_task_timeout_interval_seconds:g} s):"
            " tasks of silent Workers will be failed instead of re-queued")
    return config, warnings


def _convert(key: str, value):
    if key == "listen":
        if not isinstance(value, str):
            raise ConfigError(f"listen: expected host:port as a string, not {value!r}")
        return ListenAddress.parse(value)
    if key in ("variables", "two_way_variables"):
        return _check_variables(value, key)
    if key == "worker_cleanup_status":
        return _string_tuple(key, value)
    if key == "server_generation":
        return str(value)
    if key in _INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected a whole number, not {value!r}")
        return value
    if key in _FLOAT_KEYS:
        if isinstance(value, str):
            return parse_duration(key, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number of seconds, not {value!r}")
        return float(value)
    if key in _STRING_KEYS:
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, not {value!r}")
        return str(value)
    return value


def _check_variables(value, key: str = "variables") -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a mapping of name -> platform -> value")
    for name, per_platform in value.items():
        if not isinstance(per_platform, dict):
            raise ConfigError(f"{key}.{name}: expected a mapping of platform -> value")
        for platform, text in per_platform.items():
            if platform not in PLATFORMS:
                raise ConfigError(
                    f"{key}.{name}: unknown platform {platform!r} (use {', '.join(PLATFORMS)})"
                )
            if not isinstance(text, str):
                raise ConfigError(f"{key}.{name}.{platform}: expected a string")
    return value


def _check_upstream(values: dict) -> None:
    for key in ("flamenco", "own_url"):
        url = values.get(key, "")
        if url:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError(f"{key}: {url!r} is not an http(s) URL")
    if values.get("flamenco"):
        manager_id = values.get("manager_id", "")
        if not is_object_id(manager_id):
            raise ConfigError(f"manager_id: {manager_id!r} is not a 24-hex ObjectId")
        values["manager_id"] = normalise_object_id(manager_id)
        if not values.get("manager_secret"):
            raise ConfigError("manager_secret: required when 'flamenco' (the Server URL) is set")
    url = values.get("database_url", "")
    if url and not (url.startswith("sqlite:") or url.startswith("mongodb://")):
        raise ConfigError(
            f"database_url: {url!r} is neither empty, sqlite:PATH nor mongodb://host[:port]/dbname"
        )
    if url.startswith("mongodb://") and not urlsplit(url).path.strip("/"):
        raise ConfigError(f"database_url: {url!r} names no database (mongodb://host[:port]/dbname)")
    mode = values.get("worker_registration", "")
    if mode and mode not in REGISTRATION_MODES:
        raise ConfigError(f"worker_registration: {mode!r} is not one of "
                          f"{', '.join(REGISTRATION_MODES)}")
    if mode == "secret" and not values.get("worker_registration_secret"):
        raise ConfigError("worker_registration_secret: required when worker_registration is secret")
    if mode == "open" and values.get("worker_registration_secret"):
        raise ConfigError("worker_registration: open, but worker_registration_secret is set;"
                          " use secret (or approve), or remove the secret")
    if bool(values.get("tlskey")) != bool(values.get("tlscert")):
        raise ConfigError("tlskey/tlscert: set both to use TLS, or neither")


def load_config(path: str) -> tuple[Config, list[str]]:
    try:
        with open(path, encoding="utf-8") as stream:
            raw = yaml.safe_load(stream)
    except OSError as error:
        raise ConfigError(f"cannot read configuration file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"configuration file {path} is not valid YAML: {error}") from None
    return parse_config(raw)
