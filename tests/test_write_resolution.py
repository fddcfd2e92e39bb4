"""The lag of recorded signs of life stays well inside the timeouts that read them."""

from twisted.trial.unittest import TestCase

from flamenco.write_resolution import MAX_RESOLUTION_SECONDS, resolution_for


class ResolutionTests(TestCase):
    def test_default_timeouts_get_five_seconds(self):
        self.assertEqual(resolution_for(60), MAX_RESOLUTION_SECONDS)
        self.assertEqual(resolution_for(3600), MAX_RESOLUTION_SECONDS)

    def test_a_short_timeout_gets_a_twelfth_of_it(self):
        self.assertEqual(resolution_for(1.5), 0.125)

    def test_a_timeout_that_is_off_gets_the_default(self):
        self.assertEqual(resolution_for(0), MAX_RESOLUTION_SECONDS)
