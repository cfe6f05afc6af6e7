"""Crash restarts with exponential backoff (pure): the first restart of a crashed replica
is at once, the next ones wait 1 s, 2 s, 4 s ... up to 5 minutes; a replica that ran
10 minutes before crashing starts the count again."""

from __future__ import annotations

from paas.model import CrashState

FIRST_DELAY = 1.0
MAX_DELAY = 300.0
RESET_AFTER = 600.0


def delay_for(count: int) -> float:
    """Seconds to wait before restart number ``count`` (1 = the first)."""
    if count <= 1:
        return 0.0
    return min(FIRST_DELAY * float(2 ** (count - 2)), MAX_DELAY)


def after_crash(
    previous: CrashState | None, container_id: str, started_at: float | None, now: float
) -> CrashState:
    """The slot's state once ``container_id`` (started at ``started_at``) is seen dead."""
    if previous is not None and previous.container_id == container_id:
        return previous  # this crash was counted already
    ran = now - started_at if started_at else 0.0
    count = 1 if previous is None or ran >= RESET_AFTER else previous.count + 1
    return CrashState(count=count, restart_at=now + delay_for(count), container_id=container_id)
