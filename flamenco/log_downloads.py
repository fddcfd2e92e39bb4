"""What `GET /logfile/{job}/{task}` sends (PROTOCOL §3.13): whole, its tail, or head and tail."""

from __future__ import annotations

import os

import attrs

from flamenco.errors import UnknownTask
from flamenco.task_logs import TaskLogs, read_tail

#: Files shorter than this are sent whole; longer ones as head + marker + tail (§3.13).
WHOLE_BELOW = 15 * 1024
HEAD_BYTES = 5 * 1024
TAIL_BYTES = 10 * 1024
#: Clients that get the whole file whatever its size (they are used to save it).
WHOLE_FOR_AGENTS = ("Wget/", "curl/")


@attrs.frozen
class LogDownload:
    """The bytes to send; `gzipped` ones are the `.gz` file, sent as an attachment `name`."""

    body: bytes = attrs.field(repr=False)
    name: str
    gzipped: bool = False


class LogDownloads:
    def __init__(self, task_logs: TaskLogs | None):
        #: None when the Manager keeps no task logs (`task_logs_path` empty).
        self.task_logs = task_logs

    def download(self, job_id: str, task_id: str, tail_lines: int | None,
                 user_agent: str) -> LogDownload:
        """The task's log as the client should get it; UnknownTask (404) when it has none."""
        found = self.task_logs.find(job_id, task_id) if self.task_logs is not None else None
        if found is None:
            raise UnknownTask(f"no log file for task {task_id} of job {job_id}")
        path, is_gzip = found
        name = os.path.basename(path)
        if is_gzip:
            with open(path, "rb") as stream:
                return LogDownload(stream.read(), name, gzipped=True)
        if tail_lines is not None:
            return LogDownload(read_tail(path, tail_lines), name)
        return LogDownload(_shortened(path, whole=user_agent.startswith(WHOLE_FOR_AGENTS)), name)


def _shortened(path: str, *, whole: bool) -> bytes:
    """The file, or its head and tail with a marker between when it is long and not `whole`."""
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        if size < WHOLE_BELOW or whole:
            return stream.read()
        head = stream.read(HEAD_BYTES)
        stream.seek(size - TAIL_BYTES)
        tail = stream.read()
    tail = tail[tail.find(b"\n") + 1:]  # from the next full line
    skipped = size - len(head) - len(tail)
    marker = (f"\n\n[... {skipped} bytes skipped; wget or curl get the whole file, "
              f"or ask for ?tail=N lines ...]\n\n").encode()
    return head + marker + tail
