"""Task log files on the Manager (PROTOCOL §6.7): one file per task, every line exactly once.

`<root>/job-<first 4 of job>/<job>/task-<task>.txt`. How exactly-once holds:

1. The store keeps, per task, a `LogMark`: how many bytes of the file are committed, and the
   digest of the last Worker update appended.
2. An update's log is appended *before* the update is queued: the file is first cut back to
   the committed length (dropping what an earlier, unfinished attempt may have left), then
   the text is appended, then the update is queued together with the new mark (in one
   transaction on SQLite; on MongoDB the mark is written right after the update). Only after
   that does the Worker get its `204`.
3. Killed before the update and its mark are stored, the Manager never said `204`: the Worker
   sends the update again, and step 2 cuts the file back and appends it once more, so the
   file holds it once. Killed after, or when only the `204` was lost: the Worker's re-send has
   the stored digest and is recognised (its sign of life still counts; nothing is appended or
   queued again). Were the mark stored after the update in a separate commit, a kill between
   the two would queue the re-send a second time, and the Server would get its log twice.
4. Rotation (when a task is handed out again) renames the file before the mark is reset, so
   a kill in between leaves a shorter file than the mark says, and appends start at the
   file's real end (the mark is only an upper bound).

Appends to one task are serialised in this process (`lock`). File work is small and runs on
the reactor thread; compressing rotated logs runs in a thread. With several Managers, put
`task_logs_path` on storage they share.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil

from twisted.internet import defer
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from flamenco.store.farm import LogMark
from flamenco.store.interface import IStore

log = Logger()

MISSING_LOG = b"log file does not exist on Flamenco Manager\n"
#: `log_tail` holds at most this many lines (§2.4b).
TAIL_LINES = 10


def update_digest(worker_id: str, fields: dict) -> str:
    """What recognises a Worker's re-send: its ID and the exact update it sent."""
    raw = json.dumps([worker_id, fields], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def log_tail(text: str) -> str:
    """The last ≤10 lines, whitespace-trimmed, `\\n`-joined and -terminated; "" if none."""
    lines = text.strip().splitlines()[-TAIL_LINES:]
    return "\n".join(lines) + "\n" if lines else ""


class TaskLogs:
    def __init__(self, store: IStore, root: str):
        self.store = store
        self.root = os.path.abspath(root)
        self._locks: dict[str, defer.DeferredLock] = {}
        self._compressing: dict[str, defer.Deferred] = {}  # task ID -> compression running

    def path(self, job_id: str, task_id: str) -> str:
        return os.path.join(self.root, f"job-{job_id[:4]}", job_id, f"task-{task_id}.txt")

    def lock(self, task_id: str) -> defer.DeferredLock:
        return self._locks.setdefault(task_id, defer.DeferredLock())

    def _release(self, task_id: str) -> None:
        lock = self._locks.get(task_id)
        if lock is not None and not lock.locked and not lock.waiting:
            del self._locks[task_id]

    async def is_resend(self, task_id: str, digest: str) -> bool:
        mark = await self.store.farm.log_mark(task_id)
        return mark is not None and bool(digest) and mark.digest == digest

    async def logged(self, task_id: str, text: str, digest: str, queue) -> None:
        """Append `text` to the task's file, then `queue(mark)`: queue the update together
        with the file's new mark (None: no file), as the module docstring describes. Holds
        the task's lock."""
        async with self.lock(task_id):
            try:
                await queue(await self._append(task_id, text, digest))
            finally:
                self._release(task_id)

    async def _append(self, task_id: str, text: str, digest: str) -> LogMark | None:
        mark = await self.store.farm.log_mark(task_id)
        if mark is None:
            task = await self.store.get_task(task_id)
            if task is None or not task.job:
                return None  # no job known: no file (§6.7)
            mark = LogMark(task.job, 0)
        path = self.path(mark.job_id, task_id)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = (text if text.endswith("\n") else text + "\n").encode("utf-8")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        with os.fdopen(fd, "r+b") as stream:
            start = min(stream.seek(0, os.SEEK_END), mark.length)
            stream.truncate(start)
            stream.seek(start)
            stream.write(data)
        return LogMark(mark.job_id, start + len(data), digest or mark.digest)

    # -- rotation --------------------------------------------------------------------------------
    async def rotate(self, task_id: str, job_id: str) -> None:
        """The task is handed out again: its log so far becomes `.txt.1.gz` (older ones move
        up one number) and a new file starts. The compression runs in a thread after this
        returns, so that handing out the task does not wait for it."""
        if not job_id:
            return
        async with self.lock(task_id):
            try:
                path = self.path(job_id, task_id)
                rotating = path + ".rotating"
                if task_id in self._compressing:
                    await self._compressing[task_id]
                if os.path.exists(rotating):  # a rotation the Manager was killed in
                    await deferToThread(_shift_and_compress, path, rotating)
                if os.path.exists(path):
                    os.replace(path, rotating)
                await self.store.farm.set_log_mark(task_id, LogMark(job_id, 0))
                if os.path.exists(rotating):
                    self._compress_later(task_id, path, rotating)
            finally:
                self._release(task_id)

    def _compress_later(self, task_id: str, path: str, rotating: str) -> None:
        compressing = deferToThread(_shift_and_compress, path, rotating)
        self._compressing[task_id] = compressing

        def done(result):
            if self._compressing.get(task_id) is compressing:
                del self._compressing[task_id]
            if isinstance(result, Failure):
                log.failure("compressing the rotated log of task {task} failed", result,
                            task=task_id)
            return None

        compressing.addBoth(done)

    def when_compressed(self) -> defer.Deferred:
        """Fires when no rotated log is being compressed (tests, shutdown)."""
        return defer.gatherResults(list(self._compressing.values()), consumeErrors=True)

    # -- reading ---------------------------------------------------------------------------------
    def find(self, job_id: str, task_id: str) -> tuple[str, bool] | None:
        """(path, is gzip) of the task's current log: the plain file, else its `.gz`."""
        path = self.path(job_id, task_id)
        if os.path.isfile(path):
            return path, False
        if os.path.isfile(path + ".gz"):
            return path + ".gz", True
        return None

    async def gzipped_for_upload(self, job_id: str, task_id: str) -> bytes:
        """The log as `task-<id>.txt.gz` (level 9), made anew unless a newer one exists."""
        path = self.path(job_id, task_id)
        async with self.lock(task_id):
            try:
                if not os.path.exists(path) and not os.path.exists(path + ".gz"):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as stream:
                        stream.write(MISSING_LOG)
                return await deferToThread(_gzip_for_upload, path)
            finally:
                self._release(task_id)

    # -- removal ---------------------------------------------------------------------------------
    def remove(self, job_id: str, task_id: str) -> int:
        """Delete every file of the task's log (housekeeping); returns how many."""
        if not job_id:
            return 0
        path = self.path(job_id, task_id)
        folder, name = os.path.split(path)
        removed = 0
        try:
            entries = os.listdir(folder)
        except FileNotFoundError:
            return 0
        for entry in entries:
            if entry == name or entry.startswith(name + "."):
                os.remove(os.path.join(folder, entry))
                removed += 1
        for empty in (folder, os.path.dirname(folder)):
            try:
                os.rmdir(empty)
            except OSError:
                break  # not empty
        return removed


def _rotated(path: str, number: int) -> str:
    return f"{path}.{number}.gz"


def _shift_and_compress(path: str, rotating: str) -> None:
    number = 1
    while os.path.exists(_rotated(path, number)):
        number += 1
    for older in range(number, 1, -1):
        os.replace(_rotated(path, older - 1), _rotated(path, older))
    partial = _rotated(path, 1) + ".partial"
    with open(rotating, "rb") as source, gzip.open(partial, "wb", compresslevel=9) as target:
        shutil.copyfileobj(source, target)
    os.replace(partial, _rotated(path, 1))
    os.remove(rotating)


def _gzip_for_upload(path: str) -> bytes:
    packed = path + ".gz"
    if os.path.exists(path) and (not os.path.exists(packed)
                                 or os.path.getmtime(packed) < os.path.getmtime(path)):
        with open(path, "rb") as source:
            data = gzip.compress(source.read(), compresslevel=9)
        with open(packed + ".partial", "wb") as target:
            target.write(data)
        os.replace(packed + ".partial", packed)
        return data
    with open(packed, "rb") as stream:
        return stream.read()


def read_tail(path: str, lines: int) -> bytes:
    """The last `lines` lines of a plain file, read from its end in blocks."""
    with open(path, "rb") as stream:
        end = stream.seek(0, os.SEEK_END)
        data, position = b"", end
        while position > 0 and data.count(b"\n") <= lines:
            step = min(65536, position)
            position -= step
            stream.seek(position)
            data = stream.read(step) + data
    kept = data.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return b"".join(kept)
