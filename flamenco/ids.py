"""ObjectId helpers: every identifier on the wire is a 24-hex MongoDB ObjectId."""

import re

from bson.objectid import ObjectId

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")


def is_object_id(value: object) -> bool:
    return isinstance(value, str) and bool(_OBJECT_ID.match(value))


def normalise_object_id(value: str) -> str:
    """Lower-case form; the original accepted upper-case hex when parsing."""
    return value.lower()


def new_object_id() -> str:
    """A genuine ObjectId (timestamp + random + counter), as the Server requires."""
    return str(ObjectId())
