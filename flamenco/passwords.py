"""Worker secrets as stored bcrypt hashes.

bcrypt reads at most 72 bytes of a secret (bcrypt 5 raises `ValueError` beyond that; older
versions silently ignored the rest). Longer secrets are pre-hashed rather than refused: the
Workers generate their secrets themselves, so a refusal would leave such a Worker unable ever
to register. A secret of 72 bytes or fewer is hashed exactly as before, so hashes stay
readable by earlier Managers sharing the database; a longer one is hashed as the base64 of its
SHA-256 (no NUL bytes, which bcrypt would stop at) and stored with `PREHASHED` in front, which
no plain bcrypt hash starts with. Hashes made by older bcrypt versions from longer secrets
cover their first 72 bytes, and are checked that way.

Both functions are slow on purpose (the cost); call them through `hashing.HashingPool`.
"""

from __future__ import annotations

import base64
import hashlib

import bcrypt

BCRYPT_MAX_BYTES = 72
PREHASHED = b"$fm-sha256$"


def _prehash(secret: bytes) -> bytes:
    return base64.b64encode(hashlib.sha256(secret).digest())


def hash_secret(secret: bytes, cost: int) -> bytes:
    if len(secret) <= BCRYPT_MAX_BYTES:
        return bcrypt.hashpw(secret, bcrypt.gensalt(cost))
    return PREHASHED + bcrypt.hashpw(_prehash(secret), bcrypt.gensalt(cost))


def check_secret(secret: bytes, stored: bytes) -> bool:
    try:
        if stored.startswith(PREHASHED):
            return bcrypt.checkpw(_prehash(secret), stored[len(PREHASHED):])
        return bcrypt.checkpw(secret[:BCRYPT_MAX_BYTES], stored)
    except ValueError:  # not a bcrypt hash at all: nothing matches it
        return False
