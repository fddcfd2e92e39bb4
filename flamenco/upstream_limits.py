"""What a task update may carry to the Server: values its schema accepts, nothing else.

A schema-validating Server refuses a whole push when one update in it is out of range, so one
Worker's bad numbers would hold back every other Worker's updates. `sanitised` is applied when
an update is accepted (where the task's command count is known) and again to every update
just before it is pushed (updates queued by an older Manager, or by a path that forgot).
Out-of-range fields are replaced by their default (`metrics` is dropped); the caller logs
the names this returns.
"""

from __future__ import annotations

import math
from typing import Any

from flamenco.strict_json import INT64_MAX, INT64_MIN

PERCENTAGE_FIELDS = ("task_progress_percentage", "command_progress_percentage")
INDEX_FIELDS = ("current_command_idx", "current_command_index")
#: `metrics` is `{"timing": {"<phase>": seconds}}` in practice; generous bounds around that.
METRICS_MAX_DEPTH = 4
METRICS_MAX_NUMBERS = 256
METRICS_MAX_KEY_LENGTH = 256


def is_int64(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)
            and INT64_MIN <= value <= INT64_MAX)


def metrics_problem(metrics: Any) -> str:
    """Why `metrics` cannot go upstream, or "" when it can."""
    if not isinstance(metrics, dict):
        return "not a JSON object"
    numbers = 0
    stack = [(metrics, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > METRICS_MAX_DEPTH:
            return f"nested deeper than {METRICS_MAX_DEPTH} levels"
        for key, value in item.items():
            if not isinstance(key, str) or len(key) > METRICS_MAX_KEY_LENGTH:
                return f"a key is longer than {METRICS_MAX_KEY_LENGTH} characters"
            if isinstance(value, dict):
                stack.append((value, depth + 1))
                continue
            if isinstance(value, float) and math.isfinite(value) or is_int64(value):
                numbers += 1
                if numbers > METRICS_MAX_NUMBERS:
                    return f"more than {METRICS_MAX_NUMBERS} numbers"
                continue
            return f"{key!r} is not a finite number or an object of them"
    return ""


def sanitised(doc: dict, command_count: int | None = None) -> tuple[dict, list[str]]:
    """(a copy of the upstream update `doc` the Server will accept, the fields corrected)."""
    fixed = dict(doc)
    corrected = []
    for key in PERCENTAGE_FIELDS:
        value = fixed.get(key, 0)
        if not (is_int64(value) and 0 <= value <= 100):
            fixed[key] = 0
            corrected.append(key)
    for key in INDEX_FIELDS:
        if key not in fixed:
            continue
        value = fixed[key]
        beyond = (command_count is not None and value != 0 and is_int64(value)
                  and value >= command_count)
        if not (is_int64(value) and value >= 0) or beyond:
            fixed[key] = 0
            corrected.append(key)
    if "metrics" in fixed and metrics_problem(fixed["metrics"]):
        del fixed["metrics"]
        corrected.append("metrics")
    return fixed, corrected
