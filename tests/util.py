"""Small helpers shared by the tests."""

import functools

from twisted.internet import defer


def async_test(function):
    """Let trial run an `async def` test method (it waits on the returned Deferred)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return defer.ensureDeferred(function(*args, **kwargs))

    return wrapper
