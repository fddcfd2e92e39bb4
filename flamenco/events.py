"""The in-process event bus: what changed on the farm, for `/events` and the dashboard.

Every event gets the next integer `id`. The last `capacity` events are kept so that a client
reconnecting with `Last-Event-ID` receives what it missed; a client that fell further behind
gets a `reset` event first (it should reload its view).
"""

from __future__ import annotations

import collections
from typing import Callable

import attrs
from twisted.logger import Logger

log = Logger()


@attrs.frozen
class Event:
    id: int
    type: str
    data: dict


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self, capacity: int = 1000):
        self._buffer: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._subscribers: list[Subscriber] = []
        self._last_id = 0

    @property
    def last_id(self) -> int:
        return self._last_id

    def publish(self, type: str, data: dict) -> Event:
        self._last_id += 1
        event = Event(self._last_id, type, data)
        self._buffer.append(event)
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the others
                log.failure("event subscriber failed on {type}", type=type)
        return event

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every new event; returns the function that unsubscribes."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def since(self, last_seen: int) -> tuple[list[Event], bool]:
        """Events after `last_seen`, and whether some were already dropped from the buffer."""
        missed = [event for event in self._buffer if event.id > last_seen]
        oldest_kept = self._buffer[0].id if self._buffer else self._last_id + 1
        lost = last_seen < self._last_id and last_seen + 1 < oldest_kept
        return missed, lost
