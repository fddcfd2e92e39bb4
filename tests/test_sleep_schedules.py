"""Sleep schedules (PROTOCOL §5.10.4): the rules, midnight and DST, and the operator API."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from twisted.trial.unittest import TestCase

from flamenco import statuses
from flamenco.documents import InvalidDocument
from flamenco.sleep_schedules import desired_status, next_check, parse_schedule
from flamenco.store.farm import SleepSchedule
from tests.inprocess import InProcessManager

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
UTC = timezone.utc


def local(*args):
    return datetime(*args, tzinfo=AMSTERDAM).astimezone(UTC)


def schedule(days="", start="", end=""):
    return SleepSchedule("w", True, tuple(days.split()), start, end)


class RuleTests(TestCase):
    def test_window_days_and_overnight(self):
        night = schedule(start="22:00", end="06:00")
        self.assertEqual(desired_status(night, local(2018, 1, 10, 23, 0), AMSTERDAM), "asleep")
        self.assertEqual(desired_status(night, local(2018, 1, 10, 5, 59), AMSTERDAM), "asleep")
        self.assertEqual(desired_status(night, local(2018, 1, 10, 6, 0), AMSTERDAM), "awake")
        office = schedule(days="mo tu we th fr", start="09:00", end="17:30")
        wednesday, saturday = local(2018, 1, 10, 12, 0), local(2018, 1, 13, 12, 0)
        self.assertEqual(desired_status(office, wednesday, AMSTERDAM), "asleep")
        self.assertIsNone(desired_status(office, saturday, AMSTERDAM))
        self.assertEqual(desired_status(schedule(end="08:00"), wednesday, AMSTERDAM), "awake")
        self.assertEqual(desired_status(schedule(), wednesday, AMSTERDAM), "asleep")

    def test_next_check_is_the_next_start_end_or_midnight(self):
        office = schedule(start="09:00", end="17:30")
        self.assertEqual(next_check(office, local(2018, 1, 10, 8, 0), AMSTERDAM),
                         local(2018, 1, 10, 9, 0))
        self.assertEqual(next_check(office, local(2018, 1, 10, 9, 0), AMSTERDAM),
                         local(2018, 1, 10, 17, 30))
        self.assertEqual(next_check(office, local(2018, 1, 10, 20, 0), AMSTERDAM),
                         local(2018, 1, 11, 0, 0))
        self.assertEqual(next_check(schedule(), local(2018, 1, 10, 23, 59), AMSTERDAM),
                         local(2018, 1, 11, 0, 0))

    def test_dst_changes(self):
        # 2018-03-25: 02:00 CET jumps to 03:00 CEST (a 23-hour day).
        spring = schedule(start="02:30", end="23:00")
        after_midnight = next_check(spring, local(2018, 3, 25, 0, 0), AMSTERDAM)
        self.assertEqual(after_midnight, datetime(2018, 3, 25, 1, 30, tzinfo=UTC))  # 03:30 CEST
        self.assertEqual(next_check(schedule(), local(2018, 3, 25, 0, 0), AMSTERDAM)
                         - local(2018, 3, 25, 0, 0), timedelta(hours=23))
        # 2018-10-28: 03:00 CEST falls back to 02:00 CET (a 25-hour day).
        self.assertEqual(next_check(schedule(), local(2018, 10, 28, 0, 0), AMSTERDAM)
                         - local(2018, 10, 28, 0, 0), timedelta(hours=25))
        self.assertEqual(next_check(schedule(start="12:00"), local(2018, 10, 28, 0, 0),
                                    AMSTERDAM), datetime(2018, 10, 28, 11, 0, tzinfo=UTC))

    def test_parsing(self):
        parsed = parse_schedule("w", {"schedule_active": True, "days_of_week": "Mo we",
                                      "time_start": "09:00", "time_end": "17:30"})
        self.assertEqual(parsed, SleepSchedule("w", True, ("mo", "we"), "09:00", "17:30"))
        for bad in ({}, {"schedule_active": "yes"},
                    {"schedule_active": True, "days_of_week": "monday"},
                    {"schedule_active": True, "time_start": "9:00"},
                    {"schedule_active": True, "time_end": "24:00"}):
            self.assertRaises(InvalidDocument, parse_schedule, "w", bad)


class ScheduleAPITests(TestCase):
    async def farm(self):
        m = InProcessManager(self, sleep_schedule_timezone="Europe/Amsterdam",
                             task_logs_path=self.mktemp())
        await m.start()
        m.manager.services.startService()
        self.addCleanup(m.manager.services.stopService)
        return m

    async def set_schedule(self, m, worker_id, body, content_type=b"application/json"):
        import json

        return await m.request("POST", f"/set-sleep-schedule/{worker_id}",
                               body=json.dumps(body).encode(),
                               headers={b"Content-Type": content_type})

    async def test_a_schedule_puts_a_worker_to_sleep_and_wakes_it(self):
        m = await self.farm()  # the clock is at T0: Wednesday 10:15 in Amsterdam
        worker = await m.register(generation="2.x")
        self.assertEqual((await m.request("POST", "/task", auth=worker)).code, 204)
        saved = await self.set_schedule(m, worker[0], {
            "schedule_active": True, "days_of_week": "we", "time_start": "10:00",
            "time_end": "10:30"})
        self.assertEqual(saved.code, 200, saved.body)
        self.assertEqual(saved.json["next_check"], "2018-01-10T09:30:00Z")
        # Applied at once, immediately: the worker is told on its next request.
        answer = await m.request("POST", "/task", auth=worker)
        self.assertEqual((answer.code, answer.json), (423, {"status_requested": "asleep"}))
        await m.request("POST", "/ack-status-change/asleep", auth=worker)
        m.clock.advance(10 * 60)
        self.assertEqual((await m.request("GET", "/status-change", auth=worker)).code, 204)
        m.clock.advance(6 * 60)  # past 10:30; the scheduler runs every minute
        answer = await m.request("GET", "/status-change", auth=worker)
        self.assertEqual((answer.code, answer.json), (200, {"status_requested": "awake"}))
        await m.request("POST", "/ack-status-change/awake", auth=worker)
        record = await m.store.get_worker(worker[0])
        self.assertEqual((record.status, record.status_requested), (statuses.W_AWAKE, ""))
        got = await m.request("GET", f"/sleep-schedule/{worker[0]}")
        self.assertEqual(got.json["next_check"], "2018-01-10T23:00:00Z")  # local midnight
        # Cleared: nothing more happens.
        self.assertEqual((await m.request("DELETE", f"/sleep-schedule/{worker[0]}")).code, 204)
        self.assertEqual((await m.request("GET", f"/sleep-schedule/{worker[0]}")).code, 404)

    async def test_refusals(self):
        m = await self.farm()
        old_style = await m.register(generation="2.0")
        modern = await m.register(generation="2.x")
        body = {"schedule_active": True}
        refused = await self.set_schedule(m, old_style[0], body)
        self.assertEqual(refused.code, 400)
        self.assertEqual((await self.set_schedule(m, modern[0], body, b"text/plain")).code, 406)
        self.assertEqual((await self.set_schedule(m, modern[0], {"schedule_active": 1})).code,
                         400)
        self.assertEqual((await self.set_schedule(m, "5a1f0d119f1b2c0d4e5f6a71", body)).code,
                         404)
        inactive = await self.set_schedule(m, modern[0], {"schedule_active": False})
        self.assertEqual(inactive.code, 200)
        self.assertEqual((await m.store.get_worker(modern[0])).status_requested, "")
