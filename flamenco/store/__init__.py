"""Persistence: the `IStore` interface and its SQLite and MongoDB implementations."""

from flamenco.config import ConfigError
from flamenco.store.interface import IStore, StoreUnavailable

#: What `database_url: mongodb://...` needs installed (the `mongodb` extra).
MONGODB_EXTRA = "flamenco-manager[mongodb]"


def store_for(config) -> IStore:
    """The store `config.database_url` names (empty or sqlite:PATH, or mongodb://...).

    ConfigError when it names MongoDB and the MongoDB driver is not installed."""
    kind, location = config.store_location
    if kind == "sqlite":
        from flamenco.store.sqlite import SQLiteStore

        return SQLiteStore(location, sync=config.database_sync)
    try:
        from flamenco.store.mongo import MongoStore
    except ImportError:
        raise ConfigError("database_url: a mongodb:// URL needs the MongoDB driver (txmongo,"
                          f" pymongo), which is not installed: pip install '{MONGODB_EXTRA}'"
                          ) from None
    return MongoStore(location)


__all__ = ["IStore", "StoreUnavailable", "store_for"]
