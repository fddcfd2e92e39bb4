"""Persistence: the `IStore` interface and its SQLite and MongoDB implementations."""

from flamenco.store.interface import IStore, StoreUnavailable


def store_for(config) -> IStore:
    """The store `config.database_url` names (empty or sqlite:PATH, or mongodb://...)."""
    kind, location = config.store_location
    if kind == "sqlite":
        from flamenco.store.sqlite import SQLiteStore

        return SQLiteStore(location, sync=config.database_sync)
    from flamenco.store.mongo import MongoStore

    return MongoStore(location)


__all__ = ["IStore", "StoreUnavailable", "store_for"]
