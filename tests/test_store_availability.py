"""An outage of an open store is two log lines: one warning when lost, one when back."""

from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from flamenco.store.availability import Availability
from flamenco.store.interface import StoreUnavailable


class AvailabilityTests(TestCase):
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self):
        return [(event["log_level"], formatEvent(event)) for event in self.events
                if event.get("log_namespace") == "flamenco.store.availability"]

    def test_many_failures_then_many_successes_log_twice(self):
        availability = Availability("sqlite:m.sqlite")
        availability.opened()
        for _ in range(5):
            availability.failed(StoreUnavailable("SQLite error: disk I/O error"))
        self.assertTrue(availability.lost)
        for _ in range(5):
            availability.succeeded()
        self.assertFalse(availability.lost)
        lines = self.lines()
        self.assertEqual([level for level, _ in lines], [LogLevel.warn, LogLevel.warn])
        self.assertIn("database sqlite:m.sqlite unreachable: SQLite error: disk I/O error",
                      lines[0][1])
        self.assertIn("database sqlite:m.sqlite answers again", lines[1][1])

    def test_failures_before_the_store_opened_are_not_an_outage(self):
        availability = Availability("mongodb://db:27017/fm")
        availability.failed(StoreUnavailable("the MongoDB store is not open"))
        availability.succeeded()
        self.assertEqual(self.lines(), [])
