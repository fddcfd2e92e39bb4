"""The Manager's documents (PROTOCOL §2) as attrs classes, with validating JSON parsers.

Parsers raise `InvalidDocument` with a one-line message naming the offending field; the web
layer turns that into a 400 with a JSON error body.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import attrs

from flamenco import statuses, strict_json
from flamenco.ids import is_object_id, normalise_object_id
from flamenco.timefmt import parse_rfc3339, rfc3339, rfc3339_ms

#: Manager-local bookkeeping that never leaves the Manager (§2.2).
LOCAL_TASK_FIELDS = frozenset({"worker_id", "last_worker_ping", "last_updated", "worker_reported"})


class InvalidDocument(ValueError):
    """A received document does not have the shape the protocol requires."""

    def __init__(self, message: str, detail: Any = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.status = status


# -- small validators --------------------------------------------------------------------------

def decode_json_object(body: bytes, what: str) -> dict:
    """Every Worker request body passes here: the limits of `strict_json`, then an object."""
    try:
        value = strict_json.loads(body) if body.strip() else None
    except strict_json.JSONRefused as error:
        raise InvalidDocument(f"{what} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise InvalidDocument(f"{what} must be a JSON object")
    return value


def _optional_str(doc: dict, key: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidDocument(f"field {key!r} must be a string", {"field": key})
    return value


def _optional_int(doc: dict, key: str, low: int, high: int = strict_json.INT64_MAX) -> int:
    value = doc.get(key)
    if value is None:
        return 0
    # JSON booleans are ints in Python; integral floats like 50.0 are accepted (§0.4).
    # Floats are compared before conversion: int(1e300) is a 301-digit integer.
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value != int(value)):
        raise InvalidDocument(f"field {key!r} must be an integer", {"field": key})
    if not low <= value <= high:
        raise InvalidDocument(f"field {key!r} must be in {low}..{high}, not {value}",
                              {"field": key})
    value = int(value)
    return value


def _string_list(doc: dict, key: str) -> list[str] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidDocument(f"field {key!r} must be a list of strings", {"field": key})
    return value


# -- tasks -------------------------------------------------------------------------------------

@attrs.frozen
class Task:
    """A task as the Manager holds it: the Server's document plus local bookkeeping.

    `doc` is the Server's document with the locally current `status`, `activity` and `worker`.
    """

    doc: dict
    worker_id: str | None = None
    last_worker_ping: datetime | None = None
    last_updated: datetime | None = None
    #: The bound Worker reported on the task (an update or a may-i-run) since it was handed out.
    worker_reported: bool = False

    @property
    def id(self) -> str:
        return self.doc["_id"]

    @property
    def status(self) -> str:
        return self.doc.get("status", "")

    @property
    def name(self) -> str:
        return self.doc.get("name", "")

    @property
    def job(self) -> str:
        return self.doc.get("job", "")

    @property
    def job_type(self) -> str:
        return self.doc.get("job_type") or ""

    @property
    def task_type(self) -> str:
        return self.doc.get("task_type") or ""

    @property
    def schedule_type(self) -> str:
        """The type a worker must support: `task_type` if set, else `job_type` (§5.2)."""
        return self.task_type or self.job_type

    @property
    def etag(self) -> str:
        return self.doc.get("_etag") or ""

    @property
    def parents(self) -> list[str]:
        return list(self.doc.get("parents") or [])

    @property
    def priority(self) -> int:
        return int(self.doc.get("priority") or 0)

    @property
    def job_priority(self) -> int:
        return int(self.doc.get("job_priority") or 0)

    @property
    def worker(self) -> str:
        return self.doc.get("worker") or ""


def parse_server_task(value: Any) -> dict:
    """Check a task document from the Server; returns it with the ID in canonical form."""
    if not isinstance(value, dict):
        raise InvalidDocument("task must be a JSON object")
    task_id = value.get("_id")
    if not is_object_id(task_id):
        raise InvalidDocument(f"task _id {task_id!r} is not an ObjectId")
    doc = {key: item for key, item in value.items() if key not in LOCAL_TASK_FIELDS}
    doc["_id"] = normalise_object_id(task_id)
    if not isinstance(doc.get("status"), str):
        raise InvalidDocument(f"task {task_id} has no status")
    commands = doc.get("commands")
    if not isinstance(commands, list) or not all(
        isinstance(cmd, dict) and isinstance(cmd.get("name"), str)
        and isinstance(cmd.get("settings", {}), dict)
        for cmd in commands
    ):
        raise InvalidDocument(f"task {task_id} has malformed commands")
    parents = doc.get("parents") or []
    if not isinstance(parents, list) or not all(is_object_id(p) for p in parents):
        raise InvalidDocument(f"task {task_id} has malformed parents")
    doc["parents"] = [normalise_object_id(p) for p in parents]
    for key in ("priority", "job_priority"):
        if doc.get(key) is not None and (
            isinstance(doc[key], bool) or not isinstance(doc[key], (int, float))
        ):
            raise InvalidDocument(f"task {task_id} has a non-numeric {key}")
    return doc


# -- workers -----------------------------------------------------------------------------------

GENERATION_2_0 = "2.0"
GENERATION_2_X = "2.x"


@attrs.frozen
class Worker:
    id: str
    secret_hash: bytes
    nickname: str = ""
    address: str = ""
    platform: str = ""
    supported_types: tuple[str, ...] = ()
    generation: str = GENERATION_2_0
    status: str = ""
    status_requested: str = ""
    lazy_status_request: bool = False
    current_task: str | None = None
    last_activity: datetime | None = None
    software: str = ""
    #: False while a Worker registered in `approve` mode waits for an operator (no tasks).
    approved: bool = True

    @property
    def is_2x(self) -> bool:
        return self.generation == GENERATION_2_X

    @property
    def identifier(self) -> str:
        """`<address> (<nickname>)` as used in task updates and log lines (§0.5)."""
        return f"{self.address} ({self.nickname})" if self.nickname else self.address

    def to_json(self) -> dict:
        """The registration response / status report form; never includes the secret."""
        types_key = "supported_task_types" if self.is_2x else "supported_job_types"
        doc: dict[str, Any] = {
            "_id": self.id,
            "nickname": self.nickname,
            "address": self.address,
            "status": self.status,
            "platform": self.platform,
            "time_cost": 0,
            types_key: list(self.supported_types),
        }
        if self.current_task:
            doc["current_task"] = self.current_task
        if self.last_activity is not None:
            doc["last_activity"] = rfc3339(self.last_activity)
        if self.software:
            doc["software"] = self.software
        if self.status_requested:
            doc["status_requested"] = self.status_requested
            doc["lazy_status_request"] = self.lazy_status_request
        return doc


@attrs.frozen
class WorkerRegistration:
    secret: str
    platform: str
    nickname: str
    supported_types: tuple[str, ...]
    generation: str

    @classmethod
    def from_json(cls, doc: dict) -> WorkerRegistration:
        for key in ("secret", "platform", "nickname"):
            if key not in doc:
                raise InvalidDocument(f"field {key!r} is required", {"field": key})
        task_types = _string_list(doc, "supported_task_types")
        job_types = _string_list(doc, "supported_job_types")
        # Both names are accepted; the 2.x name wins when both are present (§2.6).
        types = task_types if task_types is not None else (job_types or [])
        return cls(
            secret=_optional_str(doc, "secret"),
            platform=_optional_str(doc, "platform"),
            nickname=_optional_str(doc, "nickname"),
            supported_types=tuple(types),
            generation=GENERATION_2_X if task_types is not None else GENERATION_2_0,
        )


@attrs.frozen
class WorkerSignOn:
    nickname: str
    supported_types: tuple[str, ...]

    @classmethod
    def from_json(cls, doc: dict) -> WorkerSignOn:
        types = _string_list(doc, "supported_task_types")
        if types is None:
            types = _string_list(doc, "supported_job_types") or []
        return cls(nickname=_optional_str(doc, "nickname"), supported_types=tuple(types))


def parse_output_produced(doc: dict) -> list[str]:
    paths = _string_list(doc, "paths")
    if not paths:
        raise InvalidDocument("List of paths may not be empty.", {"field": "paths"}, status=422)
    return paths


# -- task updates ------------------------------------------------------------------------------

@attrs.frozen
class TaskUpdate:
    """One queued update; `to_upstream()` is the form pushed to the Server (§2.4b)."""

    id: str
    task_id: str
    received_on_manager: datetime
    task_status: str = ""
    activity: str = ""
    task_progress_percentage: int = 0
    current_command_idx: int = 0
    command_progress_percentage: int = 0
    log: str = ""
    worker: str = ""
    metrics: dict = attrs.field(factory=dict)
    #: [2.x] every Worker that failed the task, `{"id", "identifier"}` (§5.9)
    failed_by_workers: list = attrs.field(factory=list)

    def to_upstream(self) -> dict:
        doc: dict[str, Any] = {
            "_id": self.id,
            "task_id": self.task_id,
            "received_on_manager": rfc3339_ms(self.received_on_manager),
            "task_progress_percentage": self.task_progress_percentage,
            "current_command_idx": self.current_command_idx,
            # Both Server versions read this name (ambiguity A4).
            "current_command_index": self.current_command_idx,
            "command_progress_percentage": self.command_progress_percentage,
            "worker": self.worker,
        }
        if self.task_status:
            doc["task_status"] = self.task_status
        if self.activity:
            doc["activity"] = self.activity
        if self.log:
            doc["log"] = self.log
        if self.metrics:
            doc["metrics"] = self.metrics
        if self.failed_by_workers:
            doc["failed_by_workers"] = self.failed_by_workers
        return doc

    @classmethod
    def from_upstream(cls, doc: dict) -> TaskUpdate:
        """Inverse of `to_upstream`, used by stores to read their queue back."""
        return cls(
            id=doc["_id"],
            task_id=doc["task_id"],
            received_on_manager=parse_rfc3339(doc["received_on_manager"]),
            task_status=doc.get("task_status", ""),
            activity=doc.get("activity", ""),
            task_progress_percentage=doc.get("task_progress_percentage", 0),
            current_command_idx=doc.get("current_command_idx", 0),
            command_progress_percentage=doc.get("command_progress_percentage", 0),
            log=doc.get("log", ""),
            worker=doc.get("worker", ""),
            metrics=doc.get("metrics") or {},
            failed_by_workers=doc.get("failed_by_workers") or [],
        )


@attrs.frozen
class WorkerTaskUpdate:
    """The body of `POST /tasks/{id}/update` (§2.4a), validated."""

    task_status: str = ""
    activity: str = ""
    task_progress_percentage: int = 0
    current_command_idx: int = 0
    command_progress_percentage: int = 0
    log: str = ""
    metrics: dict = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, doc: dict) -> WorkerTaskUpdate:
        status = _optional_str(doc, "task_status")
        if status and status not in statuses.WORKER_REPORTABLE:
            raise InvalidDocument(
                f"task_status {status!r} is not one a worker may report "
                f"({', '.join(sorted(statuses.WORKER_REPORTABLE))})",
                {"field": "task_status"},
            )
        metrics = doc.get("metrics")
        if metrics is None:
            metrics = {}
        if not isinstance(metrics, dict):
            raise InvalidDocument("field 'metrics' must be an object", {"field": "metrics"})
        return cls(
            task_status=status,
            activity=_optional_str(doc, "activity"),
            task_progress_percentage=_optional_int(doc, "task_progress_percentage", 0, 100),
            current_command_idx=_optional_int(doc, "current_command_idx", 0),
            command_progress_percentage=_optional_int(doc, "command_progress_percentage", 0, 100),
            log=_optional_str(doc, "log"),
            metrics=metrics,
        )
