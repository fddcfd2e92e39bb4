"""Declared job-type settings: their types and defaults, and validating a submission against
them so that every problem is reported at once."""

from __future__ import annotations

from typing import Any

import attrs

#: Setting kinds a job type may declare, and the JSON shapes they accept.
KINDS = ("string", "integer", "number", "boolean", "string-list")


@attrs.frozen
class SettingSpec:
    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    description: str = ""
    #: None: the setting is required (no default).
    default: Any = None
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> dict:
        """The JSON form shown by the API (and a dashboard)."""
        doc: dict[str, Any] = {"name": self.name, "type": self.kind,
                               "required": self.required, "description": self.description}
        if self.default is not None:
            doc["default"] = self.default
        if self.minimum is not None:
            doc["minimum"] = self.minimum
        if self.maximum is not None:
            doc["maximum"] = self.maximum
        return doc


def _kind_problem(spec: SettingSpec, value: Any) -> str | None:
    if spec.kind == "string":
        ok = isinstance(value, str)
    elif spec.kind == "integer":
        ok = (not isinstance(value, bool) and isinstance(value, (int, float))
              and value == int(value))
    elif spec.kind == "number":
        ok = not isinstance(value, bool) and isinstance(value, (int, float))
    elif spec.kind == "boolean":
        ok = isinstance(value, bool)
    else:
        ok = isinstance(value, list) and all(isinstance(item, str) for item in value)
    if not ok:
        article = "an" if spec.kind[0] in "aeiou" else "a"
        return f"settings.{spec.name}: expected {article} {spec.kind}, not {value!r}"
    return None


def _range_problem(spec: SettingSpec, value: Any) -> str | None:
    if spec.kind not in ("integer", "number"):
        return None
    if spec.minimum is not None and value < spec.minimum:
        return f"settings.{spec.name}: must be at least {spec.minimum:g}, not {value}"
    if spec.maximum is not None and value > spec.maximum:
        return f"settings.{spec.name}: must be at most {spec.maximum:g}, not {value}"
    return None


def validate_settings(specs: tuple[SettingSpec, ...], given: Any) -> tuple[dict, list[str]]:
    """(settings with defaults filled in, every problem found). Unknown settings are problems
    too: a misspelt name would otherwise be silently replaced by its default."""
    if not isinstance(given, dict):
        return {}, ["settings: expected an object of setting name -> value"]
    problems = []
    values: dict[str, Any] = {}
    known = {spec.name for spec in specs}
    for name in sorted(set(given) - known):
        problems.append(f"settings.{name}: unknown setting (known: {', '.join(sorted(known))})")
    for spec in specs:
        value = given.get(spec.name)
        if value is None:
            if spec.required:
                problems.append(f"settings.{spec.name}: required")
            elif spec.default is not None:
                values[spec.name] = spec.default
            continue
        problem = _kind_problem(spec, value) or _range_problem(spec, value)
        if problem:
            problems.append(problem)
            continue
        values[spec.name] = int(value) if spec.kind == "integer" else value
    return values, problems
