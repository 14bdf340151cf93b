"""How much memory a refinement job needs, estimated before it starts (issue 18).

A job keeps every frame's poses (as read) and every refined frame (all joints listed) until the
result is written at the end, then holds the result as a dictionary and as JSON text. Measured
on CPython 3.11: about 850 bytes per joint per person and frame over all of these, plus a few
kilobytes per frame, plus the body model, torch and the optimizer (about 1.5 GB). A job file
is parsed into Python objects first, which costs about 25 times its size in text.

No torch, no body model: ``engine.commands.refine`` calls this right after parsing the JSON and
before building the job or loading the body."""

from __future__ import annotations

import os
import resource
from pathlib import Path

# Joints per body model (the engine's rigs): refined results list every joint.
BODY_JOINTS: dict[str, int] = {"anny": 104, "smplx": 55}

BYTES_PER_JOINT = 850
BYTES_PER_FRAME = 4_000
BASE_BYTES = 1_500_000_000
PARSE_BYTES_PER_TEXT_BYTE = 25


def estimate_job_bytes(frames: int, people: int, body_kind: str) -> int:
    """Peak memory of refining ``frames`` frames of ``people`` people, in bytes."""
    joints = BODY_JOINTS.get(body_kind, max(BODY_JOINTS.values()))
    return BASE_BYTES + frames * (BYTES_PER_FRAME + max(people, 1) * joints * BYTES_PER_JOINT)


def max_frames(people: int, body_kind: str, available: int) -> int:
    joints = BODY_JOINTS.get(body_kind, max(BODY_JOINTS.values()))
    per_frame = BYTES_PER_FRAME + max(people, 1) * joints * BYTES_PER_JOINT
    return max(0, (available - BASE_BYTES) // per_frame)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_available() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(0, int(limit) - used)
    except (OSError, ValueError):
        return None


def available_bytes() -> int | None:
    """Memory this process can still use: the least of the machine's available memory, its
    cgroup's room and its address-space limit; None when none of them can be read."""
    candidates = [_meminfo_available(), _cgroup_available()]
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            candidates.append(soft)
    except (ValueError, OSError):
        pass
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


def gigabytes(count: int) -> str:
    return f"{count / 1e9:.1f} GB"
