"""Host name resolution that the Manager's own thread-pool work cannot hold up.

Twisted's default resolver runs `getaddrinfo` on the reactor's shared thread pool for every
host name, IP literals included, so the Server link waited behind whatever else was queued
there (bcrypt jobs of a registration storm: "DNS lookup failed: Couldn't find the hostname
'127.0.0.1'"). This resolver answers IP literals at once, without a thread, and resolves real
names on a small pool of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from twisted.internet._resolver import GAIResolver, HostResolution
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import (
    IAddress, IHostnameResolver, IHostResolution, IResolutionReceiver)
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

#: Threads for real name look-ups; a Manager resolves one or two names (the Server, MongoDB).
LOOKUP_THREADS = 2


@implementer(IHostnameResolver)
class DedicatedResolver:
    def __init__(self, reactor, threads: int = LOOKUP_THREADS):
        self._pool = ThreadPool(minthreads=0, maxthreads=threads, name="flamenco-name-lookup")
        self._pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)
        self._names = GAIResolver(reactor, getThreadPool=lambda: self._pool)

    def stop(self) -> None:
        self._pool.stop()

    def resolveHostName(self, resolutionReceiver: IResolutionReceiver, hostName: str,
                        portNumber: int = 0,
                        addressTypes: Sequence[type[IAddress]] | None = None,
                        transportSemantics: str = "TCP") -> IHostResolution:
        literal = _literal(hostName, portNumber, transportSemantics)
        if literal is None:
            return self._names.resolveHostName(resolutionReceiver, hostName, portNumber,
                                               addressTypes, transportSemantics)
        resolution = HostResolution(hostName)
        resolutionReceiver.resolutionBegan(resolution)
        if addressTypes is None or type(literal) in addressTypes:
            resolutionReceiver.addressResolved(literal)
        resolutionReceiver.resolutionComplete()
        return resolution


def _literal(host: str, port: int, semantics: str) -> IPv4Address | IPv6Address | None:
    kind: Literal["TCP", "UDP"] = "UDP" if semantics == "UDP" else "TCP"
    if isIPAddress(host):
        return IPv4Address(kind, host, port)
    if isIPv6Address(host):
        return IPv6Address(kind, host.strip("[]"), port)
    return None


def install(reactor) -> DedicatedResolver:
    """Make `reactor` resolve through a DedicatedResolver (for every HostnameEndpoint)."""
    resolver = DedicatedResolver(reactor)
    reactor.installNameResolver(resolver)
    return resolver
