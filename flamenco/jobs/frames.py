"""Frame ranges as Flamenco writes them (`1-10,20,30-40`) and splitting them into chunks."""

from __future__ import annotations

import re

#: More frames than this in one job (counting overlaps) are refused.
MAX_FRAMES = 1_000_000
_PART = re.compile(r"^\s*(-?\d+)\s*(?:(?:-|\.\.)\s*(-?\d+)\s*)?$")


def parse_frames(text: str) -> list[int]:
    """The frames of `text` in order, without duplicates; ValueError says what is wrong."""
    frames: dict[int, None] = {}
    counted = 0
    if not text.strip():
        raise ValueError("no frames given")
    for part in text.split(","):
        match = _PART.match(part)
        if match is None:
            raise ValueError(f"{part.strip()!r} is not a frame or a range like 1-10")
        start = int(match[1])
        end = int(match[2]) if match[2] is not None else start
        if end < start:
            raise ValueError(f"range {part.strip()!r} ends before it starts")
        counted += end - start + 1
        if counted > MAX_FRAMES:
            raise ValueError(f"more than {MAX_FRAMES:,} frames")
        frames.update(dict.fromkeys(range(start, end + 1)))
    return list(frames)


def chunks(frames: list[int], size: int) -> list[list[int]]:
    """Consecutive groups of at most `size` frames."""
    return [frames[start:start + size] for start in range(0, len(frames), size)]


def as_range_text(frames: list[int]) -> str:
    """Compact text for a sorted group: `1..10` for a run, `1,3,5` otherwise (Blender's
    `--render-frame` syntax, which the Workers' `blender_render` passes on)."""
    runs: list[list[int]] = []
    for frame in frames:
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    return ",".join(f"{a}" if a == b else f"{a}..{b}" for a, b in runs)
