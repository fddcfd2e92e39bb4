"""Sleep schedules (PROTOCOL §5.10.4): per Worker, days of the week and a time window.

Times are the Manager's wall-clock time (`timezone`, the system's by default), at minute
resolution. Inside the window on a listed day the Worker should be `asleep`, outside it
`awake`; on a day not listed the schedule has no opinion. A window whose end is before its
start runs over midnight (22:00-06:00). The schedule is looked at again at `next_check`: the
next start, end or midnight, computed on the calendar (not by adding hours), so days of 23 or
25 hours at DST changes come out right; a start in a skipped hour falls just after the gap.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from flamenco import statuses
from flamenco.documents import InvalidDocument
from flamenco.errors import BadRequest, UnknownWorker
from flamenco.periodic import PeriodicJob
from flamenco.store.farm import SleepSchedule
from flamenco.store.interface import IStore
from flamenco.timefmt import utc_now
from flamenco.workers import named_worker

log = Logger()

DAYS = ("mo", "tu", "we", "th", "fr", "sa", "su")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def parse_schedule(worker_id: str, doc: dict) -> SleepSchedule:
    """A ScheduleInfo body (§2.14), validated."""
    active = doc.get("schedule_active")
    if not isinstance(active, bool):
        raise InvalidDocument("field 'schedule_active' must be true or false",
                              {"field": "schedule_active"})
    days = doc.get("days_of_week") or ""
    if not isinstance(days, str) or any(day not in DAYS for day in days.lower().split()):
        raise InvalidDocument(f"field 'days_of_week' must be a subset of {' '.join(DAYS)!r}",
                              {"field": "days_of_week"})
    return SleepSchedule(worker_id, active, tuple(dict.fromkeys(days.lower().split())),
                         time_start=_clock_text(doc, "time_start"),
                         time_end=_clock_text(doc, "time_end"))


def _clock_text(doc: dict, key: str) -> str:
    value = doc.get(key) or ""
    if not isinstance(value, str) or (value and not _TIME.match(value)):
        raise InvalidDocument(f"field {key!r} must be HH:MM", {"field": key})
    return value


def _clock_time(text: str) -> time | None:
    return time(int(text[:2]), int(text[3:])) if text else None


def desired_status(schedule: SleepSchedule, now: datetime, zone: tzinfo) -> str | None:
    """`asleep`, `awake`, or None (today is not one of the schedule's days)."""
    local = now.astimezone(zone)
    if schedule.days_of_week and DAYS[local.weekday()] not in schedule.days_of_week:
        return None
    moment = local.time().replace(second=0, microsecond=0, tzinfo=None)
    start, end = _clock_time(schedule.time_start), _clock_time(schedule.time_end)
    if start is not None and end is not None and end < start:  # over midnight
        inside = moment >= start or moment < end
    else:
        inside = (start is None or moment >= start) and (end is None or moment < end)
    return statuses.W_ASLEEP if inside else statuses.W_AWAKE


def _at(day: date, moment: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, moment, tzinfo=zone).astimezone(timezone.utc)


def next_check(schedule: SleepSchedule, now: datetime, zone: tzinfo) -> datetime:
    """The earliest upcoming start, end or local midnight after `now` (UTC)."""
    today = now.astimezone(zone).date()
    candidates = []
    for day in (today, today + timedelta(days=1)):
        for moment in (_clock_time(schedule.time_start), _clock_time(schedule.time_end)):
            if moment is not None:
                candidates.append(_at(day, moment, zone))
    candidates.append(_at(today + timedelta(days=1), time(0, 0), zone))
    return min(moment for moment in candidates if moment > now)


class SleepScheduler(PeriodicJob):
    """Applies due schedules every minute (first 10 s after start), and at once when saved."""

    name = "sleep-scheduler"  # type: ignore[assignment]  # Service.name = None, unannotated
    lease_name = "sleep-scheduler"

    def __init__(self, store: IStore, clock: IReactorTime, *, zone: tzinfo | None,
                 lease_holder: str,
                 first: float = 10, interval: float = 60):
        super().__init__(store, clock, first=first, interval=interval,
                         lease_holder=lease_holder)
        self.zone = zone

    def _zone(self) -> tzinfo:
        if self.zone is not None:
            return self.zone
        system = datetime.now().astimezone().tzinfo
        assert system is not None  # astimezone() always sets one; typeshed says Optional
        return system

    async def run(self, now: datetime) -> int:
        due = await self.store.farm.sleep_schedules_due(now)
        for schedule in due:
            await self.apply(schedule, now)
        return len(due)

    async def apply(self, schedule: SleepSchedule, now: datetime) -> None:
        zone = self._zone()
        worker = await self.store.get_worker(schedule.worker_id)
        if worker is None:
            return
        wanted = desired_status(schedule, now, zone)
        if wanted is not None and wanted not in (worker.status, worker.status_requested):
            await self.store.update_worker(worker.id, status_requested=wanted,
                                           lazy_status_request=False)
            log.info("sleep schedule: worker {worker} asked to be {status}",
                     worker=worker.identifier, status=wanted)
        await self.store.farm.set_sleep_schedule(
            attrs.evolve(schedule, next_check=next_check(schedule, now, zone)))

    # -- operator actions --------------------------------------------------------------------------
    async def save(self, worker_id: str, doc: dict) -> SleepSchedule:
        """Store a ScheduleInfo body; an active schedule is applied at once."""
        worker = await self._worker(worker_id)
        if not worker.is_2x:
            raise BadRequest("a 2.0 Worker cannot be asked to sleep or wake up")
        schedule = parse_schedule(worker.id, doc)
        await self.store.farm.set_sleep_schedule(schedule)
        if schedule.active:
            await self.apply(schedule, utc_now(self.clock))
        return await self.store.farm.sleep_schedule(worker.id)

    async def get(self, worker_id: str) -> SleepSchedule:
        """The Worker's schedule; UnknownWorker (404) when it has none."""
        schedule = await self.store.farm.sleep_schedule((await self._worker(worker_id)).id)
        if schedule is None:
            raise UnknownWorker(f"worker {worker_id} has no sleep schedule")
        return schedule

    async def clear(self, worker_id: str) -> None:
        await self.store.farm.remove_sleep_schedule((await self._worker(worker_id)).id)

    async def _worker(self, worker_id: str):
        return await named_worker(self.store, worker_id)
