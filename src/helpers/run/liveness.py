"""Whether the process behind a record is still there: the one liveness rule of the project.

Used for a run being written (``.tmp/<run_id>.<pid>.<n>``, helpers.run.store), a claim
(helpers.grid.claims) and a report build (helpers.report.build). On this host a pid decides:
alive, not a zombie (killed, not yet reaped), and, when its start time was recorded, the same
process (a pid the system reused for another is not the holder). From another host only a
heartbeat can: a holder is gone once its last heartbeat is older than the stated time, and a
heartbeat dated more than :data:`CLOCK_SKEW_S` ahead of this host's clock is not believed.
"""

from __future__ import annotations

import time

import psutil

#: Clocks of two hosts sharing a runs folder may differ this much; a heartbeat further in the
#: future was not written by a holder's clock (a hand-made or damaged record): stale.
CLOCK_SKEW_S = 60.0


def process_start(pid: int) -> float | None:
    """The start time of a live process ``pid`` (-1.0: alive, start time unknown), or None
    when there is none or it is a zombie."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:
        return -1.0  # alive (another user's), start time unknown


def pid_alive(pid: int, started: float | None = None) -> bool:
    """Whether ``pid`` is a live process of this host (the one started at ``started``, when
    given: a reused pid is not)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    now_started = process_start(pid)
    if now_started is None:
        return False
    return now_started < 0 or started is None or abs(now_started - started) < 1.0


def heartbeat_fresh(beat: float | None, stale_after: float, now: float | None = None) -> bool:
    """Whether a heartbeat taken at ``beat`` (epoch seconds) shows a holder still there: newer
    than ``stale_after`` seconds, and not from the future (beyond :data:`CLOCK_SKEW_S`)."""
    if not isinstance(beat, (int, float)) or isinstance(beat, bool):
        return False
    now = time.time() if now is None else now
    return now - stale_after < beat <= now + CLOCK_SKEW_S
