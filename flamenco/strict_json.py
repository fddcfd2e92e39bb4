"""Decoding JSON from the network with limits, the one place every Worker endpoint goes through.

Python's `json` accepts things that later crash the Manager or a schema-validating Server:
`NaN`/`Infinity`, integers of any size (and `int()` refuses strings over 4,300 digits with a
`ValueError`), lone UTF-16 surrogates written as `\\ud800` (not encodable as UTF-8), and
nesting deep enough to exhaust the interpreter's recursion limit. `loads` refuses all of
these with a `JSONRefused` whose message says what was wrong.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deeper documents are refused; no Worker document nests more than four levels.
MAX_DEPTH = 32
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
#: len("-9223372036854775808"): a longer integer literal is outside 64 bits whatever it says,
#: and is refused before `int()` sees it.
_MAX_INT_CHARS = 20
_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONRefused(ValueError):
    """The body is not JSON this Manager accepts; the message is one line for the client."""


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_CHARS - 1:
        raise JSONRefused(f"integer {text[:24]}... is outside the 64-bit range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise JSONRefused(f"integer {text} is outside the 64-bit range")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONRefused(f"number {text[:24]} is too large to be finite")
    return value


def _parse_constant(name: str):
    raise JSONRefused(f"{name} is not a JSON number")


def loads(body: bytes) -> Any:
    """The decoded value of `body` (UTF-8 JSON), or JSONRefused."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JSONRefused(
            f"body is not valid UTF-8: {error.reason} at byte {error.start}") from None
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                           parse_constant=_parse_constant)
    except json.JSONDecodeError as error:
        raise JSONRefused(f"not valid JSON: {error}") from None
    except RecursionError:
        raise JSONRefused(f"nested deeper than {MAX_DEPTH} levels") from None
    check_value(value)
    return value


def check_value(value: Any) -> None:
    """Refuse nesting beyond MAX_DEPTH and strings holding lone surrogates (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_DEPTH:
            raise JSONRefused(f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if _SURROGATE.search(text):
        raise JSONRefused("a string holds a lone UTF-16 surrogate, which is not valid Unicode")
