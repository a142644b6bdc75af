"""Bounded retries with exponential backoff, for device operations that are safe to repeat.

The one place the retry policy lives. Safe to repeat: a hash-cached push (the phone writes a
temp name and renames it, and the cache skips what already arrived), a pull (written locally
to a temp name), a read-only shell command (probe, thermal snapshot), an idempotent one
(``chmod``, ``mkdir -p``). Not repeated here: a benchmark_model invocation. A crash or a
timeout is a finding and is recorded; only a cell whose *connection* was lost is measured
again, by the bench, after the phone is back (``harness/bench/run.py``).

Transient failures are the ones a lab sees when a link drops or a phone goes away and comes
back: :class:`DeviceUnavailable` (offline, connection lost), :class:`DeviceNotFound` (the adb
server no longer lists it), :class:`AdbUnavailable` (the adb server restarted) and
:class:`DeviceTimeout` (no answer). Anything else (a full disk, a bad path) fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from harness.errors import (
    AdbUnavailable,
    DeviceNotFound,
    DeviceTimeout,
    DeviceUnavailable,
    HarnessError,
)

log = logging.getLogger("harness.retry")

T = TypeVar("T")

TRANSIENT: tuple[type[HarnessError], ...] = (
    DeviceUnavailable,
    DeviceNotFound,
    AdbUnavailable,
    DeviceTimeout,
)


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries; before try n+1 wait ``min(cap, first * factor**(n-1))`` seconds."""

    attempts: int = 4
    first: float = 0.5
    factor: float = 2.0
    cap: float = 8.0

    def delays(self) -> list[float]:
        return [min(self.cap, self.first * self.factor**n) for n in range(self.attempts - 1)]

    @property
    def total(self) -> float:
        """Longest time spent waiting between tries."""
        return sum(self.delays())


# Transfers and read-only commands: 4 tries over 0.5 + 1 + 2 = 3.5 s of backoff, plus the
# recovery (adb connect) before each retry.
TRANSFER = Backoff()


def backoff_within(budget: float, first: float = 0.5, factor: float = 2.0, cap: float = 8.0):
    """The delays of an exponential backoff that together fit ``budget`` seconds (the last
    one shortened to fit), e.g. how long a bench waits for a lost phone to come back."""
    delays: list[float] = []
    delay = first
    while budget > 1e-9:
        step = min(delay, cap, budget)
        delays.append(step)
        budget -= step
        delay *= factor
    return delays


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    policy: Backoff = TRANSFER,
    recover: Callable[[float], None] | None = None,
    on_retry: Callable[[str, HarnessError], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on a transient failure wait, ``recover`` (e.g. reconnect the phone, given
    the time it may take) and try again, at most ``policy.attempts`` times in all. The last
    failure is re-raised with the number of tries in its message (same type, same exit code).
    """
    delays = policy.delays()
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except TRANSIENT as exc:
            if attempt >= policy.attempts:
                raise type(exc)(f"{exc} ({what}: gave up after {attempt} tries)") from exc
            delay = delays[attempt - 1]
            log.info("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
            if on_retry is not None:
                on_retry(what, exc)
            sleep(delay)
            if recover is not None:
                try:
                    recover(delay)
                except HarnessError as again:  # not back yet: the next try will tell
                    log.info("recovery before retrying %s failed: %s", what, again)
    raise AssertionError("unreachable")  # pragma: no cover
