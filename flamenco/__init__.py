"""Flamenco Manager: relays tasks from a Flamenco Server to a farm of Workers."""

__version__ = "2.1.0"
