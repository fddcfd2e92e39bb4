"""ObjectId helpers: every identifier on the wire is a 24-hex MongoDB ObjectId.

`new_object_id` makes them without `bson`, so that the SQLite-only Manager needs no MongoDB
driver: 12 bytes as MongoDB's own driver lays them out (4-byte big-endian Unix time, 5 random
bytes chosen once per process, 3-byte counter from a random start).
"""

import itertools
import os
import re
import threading
import time
from typing import TypeGuard

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{24}$")
_COUNTER_MODULUS = 1 << 24

_lock = threading.Lock()
_process_id: int | None = None
_process_random = b""
_counter = itertools.count()


def is_object_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(_OBJECT_ID.match(value))


def normalise_object_id(value: str) -> str:
    """Lower-case form; the original accepted upper-case hex when parsing."""
    return value.lower()


def new_object_id() -> str:
    """A genuine ObjectId (timestamp + random + counter), as the Server requires."""
    global _process_id, _process_random, _counter
    with _lock:
        if _process_id != os.getpid():  # first use, or a forked child: its own random part
            _process_id = os.getpid()
            _process_random = os.urandom(5)
            _counter = itertools.count(int.from_bytes(os.urandom(3), "big"))
        seconds = int(time.time()) & 0xFFFFFFFF
        count = next(_counter) % _COUNTER_MODULUS
        raw = seconds.to_bytes(4, "big") + _process_random + count.to_bytes(3, "big")
    return raw.hex()
