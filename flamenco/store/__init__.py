"""Persistence: the `IStore` interface and its SQLite and MongoDB implementations."""

from flamenco.store.interface import IStore, StoreUnavailable

__all__ = ["IStore", "StoreUnavailable"]
