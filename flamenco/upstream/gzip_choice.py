"""Whether task-update pushes go gzip-compressed to the Server: learnt once, remembered, re-probed.

A Server refuses gzip bodies with `415`, or, when it cannot decode them at all, fails to parse
the body and answers `400` (a refusal only if the same body uncompressed is then accepted; the
client decides that). The refusal is stored as a setting, per Server URL, so that a restarted
Manager does not learn it again at every start; a refusing Server is offered one gzip push per
`reprobe_after` seconds (of the injected clock), in case it was upgraded meanwhile.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco.store.interface import IStore, StoreUnavailable

#: Setting key prefix; the value is the clock time (Unix seconds) of the latest refusal.
SETTING_PREFIX = "gzip_refused_by:"
REPROBE_SECONDS = 24 * 3600.0


class GzipChoice:
    log = Logger()

    def __init__(self, store: IStore | None, clock: IReactorTime, server_url: str, *,
                 enabled: bool = True, reprobe_after: float = REPROBE_SECONDS):
        self.store = store  # None: the decision lives in memory only (tests, bench)
        self.clock = clock
        self.enabled = enabled  # False: configured off (`upstream_gzip: false`), never probed
        self.reprobe_after = reprobe_after
        self.key = SETTING_PREFIX + server_url.rstrip("/")
        #: When the Server last refused gzip (clock seconds), or None while it accepts it.
        self.refused_at: float | None = None
        self._loaded = store is None

    @property
    def in_use(self) -> bool:
        """Pushes are compressed now, as far as this process knows (the upstream health)."""
        return self.enabled and self.refused_at is None

    async def compress(self) -> bool:
        """Gzip the next push? (Also True when a refusing Server is due for a re-probe.)"""
        if not self.enabled:
            return False
        if not self._loaded and self.store is not None:
            try:
                stored = await self.store.get_setting(self.key)
            except StoreUnavailable:
                return self.refused_at is None  # asked again at the next push
            self._loaded = True
            try:
                self.refused_at = float(stored) if stored else None
            except ValueError:
                self.refused_at = None
        if self.refused_at is None:
            return True
        return self.clock.seconds() - self.refused_at >= self.reprobe_after

    async def refused(self, code: int) -> None:
        """The Server refused a gzip body that it accepts uncompressed."""
        first = self.refused_at is None
        self.refused_at = self.clock.seconds()
        await self._remember(repr(self.refused_at))
        hours = self.reprobe_after / 3600
        if first:
            self.log.warn("the Server refused a gzip-compressed push ({code}); pushing "
                          "uncompressed from now on, trying gzip again every {hours:g} h",
                          code=code, hours=hours)
        else:
            self.log.debug("the Server still refuses gzip-compressed pushes ({code}); trying "
                           "again in {hours:g} h", code=code, hours=hours)

    async def accepted(self) -> None:
        """The Server accepted a gzip body."""
        if self.refused_at is None:
            return
        self.refused_at = None
        await self._remember(None)
        self.log.info("the Server accepts gzip-compressed pushes now; compressing them again")

    async def _remember(self, value: str | None) -> None:
        if self.store is None:
            return
        try:
            await self.store.set_setting(self.key, value)
        except StoreUnavailable as error:  # it still holds until this Manager stops
            self.log.warn("could not store the gzip decision: {error}", error=str(error))
