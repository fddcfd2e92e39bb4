"""Serving a task's log file (PROTOCOL §3.13): whole, its tail, or head and tail."""

from __future__ import annotations

import os

from twisted.web.iweb import IRequest

from flamenco.task_logs import TaskLogs, read_tail

#: Files shorter than this are sent whole; longer ones as head + marker + tail (§3.13).
WHOLE_BELOW = 15 * 1024
HEAD_BYTES = 5 * 1024
TAIL_BYTES = 10 * 1024


def log_file_response(request: IRequest, task_logs: TaskLogs, job_id: str, task_id: str,
                      tail_lines: int | None) -> bytes | None:
    """The body to send, headers set; None when the task has no log file."""
    found = task_logs.find(job_id, task_id)
    if found is None:
        return None
    path, is_gzip = found
    name = os.path.basename(path)
    if is_gzip:
        request.setHeader(b"Content-Type", b"text/plain")
        request.setHeader(b"Content-Encoding", b"gzip")
        request.setHeader(b"Content-Disposition", f'attachment; filename="{name}"'.encode())
        with open(path, "rb") as stream:
            return stream.read()
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    if tail_lines is not None:
        return read_tail(path, tail_lines)
    agent = (request.getHeader(b"user-agent") or b"").decode("latin-1")
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        if size < WHOLE_BELOW or agent.startswith(("Wget/", "curl/")):
            return stream.read()
        head = stream.read(HEAD_BYTES)
        stream.seek(size - TAIL_BYTES)
        tail = stream.read()
    tail = tail[tail.find(b"\n") + 1:]  # from the next full line
    skipped = size - len(head) - len(tail)
    marker = (f"\n\n[... {skipped} bytes skipped; wget or curl get the whole file, "
              f"or ask for ?tail=N lines ...]\n\n").encode()
    return head + marker + tail
