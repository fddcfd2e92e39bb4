"""Whether this Manager can serve its Workers now (`/readyz`): its store answers a query."""

from __future__ import annotations

import attrs

from flamenco.store.interface import IStore, StoreUnavailable


@attrs.frozen
class Readiness:
    ready: bool
    #: The store's description (`IStore.description`).
    store: str
    #: Why the store cannot be used, when not ready.
    reason: str = ""


class StoreReadiness:
    def __init__(self, store: IStore):
        self.store = store

    async def check(self) -> Readiness:
        try:
            await self.store.count_workers()
        except StoreUnavailable as error:
            return Readiness(False, self.store.description, str(error))
        return Readiness(True, self.store.description)
