"""Thumbnails of the images Workers report with `/output-produced` (2.x "latest image").

The paths are as the Worker sees them; the Manager can read them when the render output is on
storage it shares. Each readable image is downscaled with Pillow in a thread (EXR and other
formats Pillow cannot open are skipped with an info line) and the last `keep` thumbnails are
kept in memory as JPEG.
"""

from __future__ import annotations

import collections
import io

import attrs
from PIL import Image
from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.logger import Logger

from flamenco.events import EventBus
from flamenco.timefmt import rfc3339, utc_now

log = Logger()
MAX_SIDE = 640


@attrs.frozen
class Thumbnail:
    id: int
    worker: str
    path: str
    width: int
    height: int
    at: str
    jpeg: bytes = attrs.field(repr=False)

    def to_json(self) -> dict:
        return {"id": self.id, "worker": self.worker, "path": self.path, "width": self.width,
                "height": self.height, "at": self.at, "url": f"/api/images/{self.id}.jpg"}


def make_thumbnail(path: str, max_side: int = MAX_SIDE) -> tuple[bytes, int, int]:
    """JPEG bytes and size of `path` downscaled to fit `max_side`; raises OSError/ValueError."""
    with Image.open(path) as image:
        image.thumbnail((max_side, max_side))
        converted = image.convert("RGB")
    buffer = io.BytesIO()
    converted.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), converted.width, converted.height


class Previews:
    def __init__(self, bus: EventBus, clock, keep: int = 5):
        self.bus = bus
        self.clock = clock
        self._kept: collections.deque[Thumbnail] = collections.deque(maxlen=keep)
        self._next_id = 1
        self._pending: list[defer.Deferred] = []

    def note(self, worker_identifier: str, paths: list[str]) -> None:
        """Make the thumbnail in the background; the Worker's request does not wait for it."""
        made = defer.ensureDeferred(self.produced(worker_identifier, paths))
        made.addErrback(lambda failure: log.failure("making a preview failed", failure))
        self._pending.append(made)
        made.addBoth(lambda _: self._pending.remove(made))

    def when_idle(self) -> defer.Deferred:
        """Fires when every thumbnail asked for so far is made (tests, bench)."""
        return defer.DeferredList(list(self._pending)).addCallback(lambda _: None)

    def latest(self) -> list[Thumbnail]:
        return list(reversed(self._kept))

    def get(self, thumbnail_id: int) -> Thumbnail | None:
        return next((t for t in self._kept if t.id == thumbnail_id), None)

    async def produced(self, worker_identifier: str, paths: list[str]) -> Thumbnail | None:
        """Make a thumbnail of the last image among `paths` the Manager can open."""
        for path in reversed(paths):
            try:
                jpeg, width, height = await deferToThread(make_thumbnail, path)
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                log.info("no preview of {path}: {error}", path=path, error=error)
                continue
            thumbnail = Thumbnail(self._next_id, worker_identifier, path, width, height,
                                  rfc3339(utc_now(self.clock)), jpeg)
            self._next_id += 1
            self._kept.append(thumbnail)
            self.bus.publish("image", thumbnail.to_json())
            return thumbnail
        return None
