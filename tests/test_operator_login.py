"""The operator's login (`admin_password`) without HTTP: sessions, their end, the throttle."""

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from flamenco.operator_login import (
    FAILURE_WINDOW, MAX_FAILURES, SESSION_SECONDS, LoginThrottled, OperatorLogin, WrongPassword,
    hash_password,
)

PASSWORD = "correct horse"
ADDRESS = "10.0.0.5"


class OperatorLoginTests(TestCase):
    def setUp(self):
        self.clock = Clock()
        self.login = OperatorLogin(hash_password(PASSWORD, rounds=4), self.clock)

    async def test_a_session_lasts_its_lifetime_and_no_longer(self):
        token = await self.login.log_in(ADDRESS, PASSWORD)
        self.clock.advance(SESSION_SECONDS - 1)
        self.assertTrue(self.login.session_valid(token))
        self.clock.advance(1)
        self.assertFalse(self.login.session_valid(token))

    async def test_logging_out_ends_the_session(self):
        token = await self.login.log_in(ADDRESS, PASSWORD)
        self.login.log_out(token)
        self.assertFalse(self.login.session_valid(token))
        self.assertFalse(self.login.session_valid("made-up"))

    async def test_failed_logins_are_throttled_per_address_for_the_window(self):
        for _ in range(MAX_FAILURES):
            with self.assertRaises(WrongPassword):
                await self.login.log_in(ADDRESS, "wrong")
        with self.assertRaises(LoginThrottled) as throttled:
            await self.login.log_in(ADDRESS, PASSWORD)
        self.assertGreater(throttled.exception.retry_after, 0)
        self.assertTrue(await self.login.log_in("10.0.0.6", PASSWORD))  # another address
        self.clock.advance(FAILURE_WINDOW)
        self.assertTrue(await self.login.log_in(ADDRESS, PASSWORD))

    def test_without_a_password_no_login_is_needed(self):
        self.assertTrue(self.login.needs_login)
        self.assertFalse(OperatorLogin("", self.clock).needs_login)
