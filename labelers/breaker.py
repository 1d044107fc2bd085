"""A circuit breaker for the labeling API, shared by every worker.

A storm of passing faults (a share of 5xx and 429s) is ridden out by retrying each label with
capped backoff. Only when the API as a whole is failing (more than LABEL_BREAKER_FAILURE_RATIO
of at least LABEL_BREAKER_MIN_CALLS calls in the last LABEL_BREAKER_WINDOW seconds, across all
workers, failed transiently) does the breaker open: no label is sent for a cool-down, which
doubles each time the API is still failing (LABEL_BREAKER_COOLDOWN up to
LABEL_BREAKER_MAX_COOLDOWN). Then one probe call goes through (half-open); its success closes
the breaker, its failure opens it again.

The state lives where the throttle keeps its own (Redis, or a locked file in DATA_DIR), as one
small JSON object: outcome counts per second of the window, and the open/probe deadlines.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from labelers.throttle import shared_state

# Others wait at most this long for a probe before looking again (a probe can take as long
# as a call; its success should release them soon after).
PROBE_RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class Policy:
    window: float
    min_calls: int
    failure_ratio: float
    cooldown: float
    max_cooldown: float
    probe_seconds: float  # a probe not reported back in this time is taken as lost


@dataclass(frozen=True)
class BreakerStatus:
    open: bool
    paused_until: datetime | None  # None while closed, or while a probe is out (half-open)


def policy_from_settings() -> Policy:
    return Policy(
        window=settings.LABEL_BREAKER_WINDOW,
        min_calls=settings.LABEL_BREAKER_MIN_CALLS,
        failure_ratio=settings.LABEL_BREAKER_FAILURE_RATIO,
        cooldown=settings.LABEL_BREAKER_COOLDOWN,
        max_cooldown=settings.LABEL_BREAKER_MAX_COOLDOWN,
        probe_seconds=settings.LABEL_CONNECT_TIMEOUT + settings.LABEL_READ_TIMEOUT + 5,
    )


def _open(state: dict[str, Any], now: float, cooldown: float) -> None:
    state.update(open_until=now + cooldown, cooldown=cooldown, probe_until=0.0, buckets={})


def _closed(state: dict[str, Any]) -> bool:
    return not state.get("open_until")


def ask(state: dict[str, Any], now: float, policy: Policy) -> float:
    """Seconds to wait before calling (0: call now). Hands out the half-open probe."""
    if _closed(state):
        return 0.0
    if now < state["open_until"]:
        return state["open_until"] - now
    if now < state.get("probe_until", 0.0):
        return min(state["probe_until"] - now, PROBE_RECHECK_SECONDS)
    state["probe_until"] = now + policy.probe_seconds
    return 0.0


def record(state: dict[str, Any], now: float, ok: bool, policy: Policy) -> float:
    """Count a call's outcome; returns how long calls now wait (0: the breaker is closed)."""
    return record_counts(state, now, 1 if ok else 0, 0 if ok else 1, policy)


def record_counts(
    state: dict[str, Any], now: float, ok_count: int, failed_count: int, policy: Policy
) -> float:
    """Count calls' outcomes (successes, failures); returns how long calls now wait."""
    if not _closed(state):
        if now < state["open_until"]:
            # Calls sent before the breaker opened: they say nothing about the API's recovery.
            return state["open_until"] - now
        if not failed_count:  # the probe got through: the API is back
            state.clear()
            return 0.0
        # The probe failed: the API is still down; wait longer this time.
        _open(state, now, min(state.get("cooldown", 0.0) * 2, policy.max_cooldown))
        return state["cooldown"]
    second = int(now)
    buckets = {
        key: counts
        for key, counts in state.get("buckets", {}).items()
        if int(key) > second - policy.window
    }
    counts = buckets.setdefault(str(second), [0, 0])
    counts[0] += ok_count
    counts[1] += failed_count
    state["buckets"] = buckets
    calls = sum(ok_n + failed_n for ok_n, failed_n in buckets.values())
    failed = sum(failed_n for _, failed_n in buckets.values())
    if calls >= policy.min_calls and failed > calls * policy.failure_ratio:
        _open(state, now, policy.cooldown)
        return policy.cooldown
    return 0.0


# Per process: when the shared state was last seen closed, and successes not yet written.
# A label is sent every few milliseconds; reading and rewriting the shared state for each
# one (a Redis WATCH/MULTI round, or a file lock, contended by every worker) cost more than
# the rest of the breaker. Successes are written at most once a second per process, and a
# closed breaker is re-read at most once a second: another process's opening is seen within
# a second, this process's own at once. A failure is written at once, with the successes
# counted so far, so the failure ratio stays right.
_tally_lock = threading.Lock()
_tally: dict[str, float] = {"ok": 0, "since": 0.0, "closed_seen_at": 0.0}
TALLY_SECONDS = 1.0


class Breaker:
    def __init__(self, *, state, policy: Policy):
        self.state = state
        self.policy = policy
        self._probe = False

    def wait_seconds(self) -> float:
        """Seconds before a label may be sent (0: now; the caller may be the probe)."""
        now = time.monotonic()
        if now - _tally["closed_seen_at"] < TALLY_SECONDS:
            return 0.0
        if _closed(self.state.read("breaker")):  # the common case reads, never writes
            _tally["closed_seen_at"] = now
            return 0.0
        wait = self.state.update("breaker", lambda s: ask(s, time.time(), self.policy))
        self._probe = wait == 0.0
        return wait

    def record(self, *, ok: bool) -> float:
        with _tally_lock:
            if ok:
                _tally["ok"] += 1
            due = time.monotonic() - _tally["since"] >= TALLY_SECONDS
            if ok and not self._probe and not due:
                return 0.0
            ok_count, _tally["ok"], _tally["since"] = int(_tally["ok"]), 0, time.monotonic()
        failed_count = 0 if ok else 1
        wait = self.state.update(
            "breaker",
            lambda s: record_counts(s, time.time(), ok_count, failed_count, self.policy),
        )
        if wait > 0:
            _tally["closed_seen_at"] = 0.0  # open now: this process stops at once
        return wait

    def status(self) -> BreakerStatus:
        state = self.state.read("breaker")
        if _closed(state):
            return BreakerStatus(open=False, paused_until=None)
        until = state["open_until"]
        paused = datetime.fromtimestamp(until, tz=UTC) if until > time.time() else None
        return BreakerStatus(open=True, paused_until=paused)

    def reset(self) -> None:
        with _tally_lock:
            _tally.update(ok=0, since=0.0, closed_seen_at=0.0)
        self.state.update("breaker", lambda s: s.clear())


def get_breaker() -> Breaker:
    return Breaker(state=shared_state(), policy=policy_from_settings())


def breaker_status() -> BreakerStatus:
    """Whether labels are held back because the API is failing, and until when."""
    return get_breaker().status()
