"""Two-way variables: paths submitted in one platform's form run in each Worker's form, and
paths reported back are shown in the submitter's form.

Configured as `two_way_variables: {name: {platform: value}}`. At submission a setting that
contains the submitter's value becomes `{name}` followed by the rest of the path with `/`
separators (`S:\\projects\\shot.blend` -> `{projects}/shot.blend`); at hand-out the usual
variable replacement (§5.7) gives each Worker its platform's value. Windows values match
case-insensitively and with either separator.
"""

from __future__ import annotations

import re
from typing import Any

import attrs

WINDOWS = "windows"
#: Where a path can start and what may follow a variable's value.
_BEFORE = r"(?<![^\s\"'=(,;])"
_AFTER = r"(?=[\\/\s\"'),;]|$)"
#: The rest of a path after a variable's value: up to white space or a quote.
_REST = r"(?P<rest>[^\s\"'<>|,;]*)"
_PLACEHOLDER = re.compile(r"\{(?P<name>[^{}]+)\}" + _REST)


def _value_pattern(value: str, platform: str) -> str:
    if platform != WINDOWS:
        return re.escape(value)
    return "".join(r"[\\/]" if char in "\\/" else re.escape(char) for char in value)


@attrs.frozen
class TwoWayVariables:
    #: name -> platform -> value, values without trailing separators.
    values: dict[str, dict[str, str]] = attrs.field(
        converter=lambda table: {name: {platform: value.rstrip("\\/") or value
                                        for platform, value in per_platform.items()}
                                 for name, per_platform in table.items()})

    def _compiled(self, platforms: tuple[str, ...] | None
                  ) -> tuple[re.Pattern | None, list[tuple[str, str, str]]]:
        """One pattern for the values of `platforms` (None: all), longest value first, and
        its alternatives as (value, platform, name)."""
        options = sorted(
            ((value, platform, name) for name, per_platform in self.values.items()
             for platform, value in per_platform.items()
             if platforms is None or platform in platforms),
            key=lambda option: -len(option[0]))
        if not options:
            return None, options
        alternatives = "|".join(
            f"(?P<v{index}>{'(?i:' if platform == WINDOWS else '(?:'}"
            f"{_value_pattern(value, platform)}))"
            for index, (value, platform, _) in enumerate(options))
        return re.compile(f"{_BEFORE}(?:{alternatives}){_AFTER}{_REST}"), options

    def from_submitter(self, text: str, platform: str) -> str:
        """`text` with the submitter's values replaced by `{name}` placeholders."""
        matcher, options = self._compiled((platform,))
        if matcher is None:
            return text

        def placeholder(match: re.Match) -> str:
            _, source, name = options[_which(match)]
            rest = match["rest"]
            if source == WINDOWS:
                rest = rest.replace("\\", "/")
            return f"{{{name}}}{rest}"

        return matcher.sub(placeholder, text)

    def for_submitter(self, text: str, platform: str) -> str:
        """`text` (as a Worker of any platform reported it, or with placeholders) with every
        known value in the submitter's form."""
        matcher, options = self._compiled(None)

        def local(name: str, source: str, rest: str, whole: str) -> str:
            value = self.values.get(name, {}).get(platform)
            if value is None:
                return whole
            if platform == WINDOWS:
                rest = rest.replace("/", "\\")
            elif source == WINDOWS:
                rest = rest.replace("\\", "/")
            return value + rest

        if matcher is not None:
            def known(match: re.Match) -> str:
                _, source, name = options[_which(match)]
                return local(name, source, match["rest"], match[0])

            text = matcher.sub(known, text)
        return _PLACEHOLDER.sub(
            lambda match: local(match["name"], "", match["rest"], match[0]), text)

    def settings_from_submitter(self, settings: dict, platform: str) -> dict:
        """Submitted settings with `from_submitter` applied to strings and string lists."""
        def convert(value: Any) -> Any:
            if isinstance(value, str):
                return self.from_submitter(value, platform)
            if isinstance(value, list):
                return [convert(item) for item in value]
            return value

        return {key: convert(value) for key, value in settings.items()}

    def worker_table(self) -> dict[str, dict[str, str]]:
        """In the `variables` form the scheduler replaces per Worker platform (§5.7)."""
        return {name: dict(per_platform) for name, per_platform in self.values.items()}


def _which(match: re.Match) -> int:
    """Index of the alternative (`v<index>` group) that matched."""
    for key, value in match.groupdict().items():
        if key.startswith("v") and value is not None:
            return int(key[1:])
    raise AssertionError("no alternative matched")
