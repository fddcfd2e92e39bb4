"""The verified-secret cache: lifetime and its bound (on a Clock)."""

from twisted.internet import task
from twisted.trial.unittest import TestCase

from flamenco.workers import CredentialCache
from tests.factories import worker


class CredentialCacheTests(TestCase):
    def test_entries_expire_and_are_dropped_once_per_lifetime(self):
        clock = task.Clock()
        cache = CredentialCache(clock, lifetime=300)
        first, second = worker(), worker(nickname="render-02")
        cache.remember(first, b"secret")
        self.assertTrue(cache.knows(first, b"secret"))
        self.assertFalse(cache.knows(first, b"other"))
        clock.advance(301)
        self.assertFalse(cache.knows(first, b"secret"))
        cache.remember(second, b"secret")  # the first remember after a lifetime prunes
        self.assertEqual(set(cache._entries), {second.id})
        self.assertTrue(cache.knows(second, b"secret"))
