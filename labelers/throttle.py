"""Global caps on calls to the labeling API, shared by every worker process.

Two caps, both optional: calls in flight at once (a semaphore whose slots expire, so a killed
worker cannot hold one forever) and calls per second (GCRA: each call reserves the next slot
in time and sleeps until it). Production keeps the state in Redis; the embedded default runs
on one machine by construction, so a locked file there is shared by all its processes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import redis
from django.conf import settings

T = TypeVar("T")
logger = logging.getLogger(__name__)

SLOT_TTL_SECONDS = 300  # longer than any call (read timeout); a dead holder frees in time

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
redis.call('SET', KEYS[1], tostring(tat + tonumber(ARGV[1])), 'EX', 3600)
return tostring(tat - now)
"""


class RedisState:
    def __init__(self, url: str, prefix: str = "modqueue:throttle"):
        self.redis = redis.Redis.from_url(url)
        self.prefix = prefix
        self.slots_key, self.rate_key = f"{prefix}:slots", f"{prefix}:rate"
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._reserve = self.redis.register_script(_RESERVE)

    def try_acquire(self, token: str, limit: int) -> bool:
        return bool(self._acquire(keys=[self.slots_key], args=[limit, SLOT_TTL_SECONDS, token]))

    def release(self, token: str) -> None:
        self.redis.zrem(self.slots_key, token)

    def reserve(self, interval: float) -> float:
        return float(self._reserve(keys=[self.rate_key], args=[interval]))

    def read(self, name: str) -> dict[str, Any]:
        raw = self.redis.get(f"{self.prefix}:{name}")
        return json.loads(raw) if raw else {}

    def update(self, name: str, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply `change` to a small JSON object atomically across workers (optimistic:
        redone if another worker wrote it meanwhile)."""
        key = f"{self.prefix}:{name}"

        def apply(pipe: Any) -> T:
            raw = pipe.get(key)
            state = json.loads(raw) if raw else {}
            result = change(state)
            pipe.multi()
            pipe.set(key, json.dumps(state), ex=86400)
            return result

        result = self.redis.transaction(cast(Any, apply), key, value_from_callable=True)
        return cast(T, result)


class FileState:
    def __init__(self, path: Path):
        self.path = path
        path.touch(exist_ok=True)

    @contextmanager
    def _locked(self):
        with open(self.path, "r+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                raw = handle.read()
                state = json.loads(raw) if raw else {"tat": 0.0, "slots": {}}
                yield state
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(state))
                handle.flush()  # before the unlock, or the next holder reads stale state
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def try_acquire(self, token: str, limit: int) -> bool:
        now = time.time()
        with self._locked() as state:
            slots = {k: v for k, v in state["slots"].items() if v > now - SLOT_TTL_SECONDS}
            acquired = len(slots) < limit
            if acquired:
                slots[token] = now
            state["slots"] = slots
        return acquired

    def release(self, token: str) -> None:
        with self._locked() as state:
            state["slots"].pop(token, None)

    def reserve(self, interval: float) -> float:
        now = time.time()
        with self._locked() as state:
            tat = max(state["tat"], now)
            state["tat"] = tat + interval
        return tat - now

    def read(self, name: str) -> dict[str, Any]:
        return self.update(name, dict)

    def update(self, name: str, change: Callable[[dict[str, Any]], T]) -> T:
        with self._locked() as state:
            return change(state.setdefault(name, {}))


class SlotAbandoned(Exception):
    """The caller's claim on its work ran out while it waited for a slot: it must not call."""


class Throttle:
    def __init__(self, *, max_in_flight: int, per_second: float, state):
        self.max_in_flight = max_in_flight
        self.per_second = per_second
        self.state = state

    @property
    def limited(self) -> bool:
        return self.max_in_flight > 0 or self.per_second > 0

    @contextmanager
    def slot(
        self, *, keep: Callable[[], bool] | None = None, keep_every: float = 5.0
    ) -> Iterator[None]:
        """Wait for a call slot. A caller that holds a lease on its work passes `keep`: it is
        called at least every `keep_every` seconds while waiting and once more just before the
        slot is handed over (when a cap is on); if it answers False (the lease was lost to
        another attempt), the wait ends with SlotAbandoned and no call is made."""
        token = uuid.uuid4().hex
        kept_at = time.monotonic()

        def keep_alive() -> None:
            nonlocal kept_at
            if keep is not None and time.monotonic() - kept_at >= keep_every:
                if not keep():
                    raise SlotAbandoned
                kept_at = time.monotonic()

        acquired = False
        try:
            if self.max_in_flight > 0:
                delay = 0.005
                while not self.state.try_acquire(token, self.max_in_flight):
                    time.sleep(delay)
                    delay = min(delay * 2, 0.1)
                    keep_alive()
                acquired = True
            if self.per_second > 0:
                wait = self.state.reserve(1.0 / self.per_second)
                # The clock read after the reservation: read before it, the wait (counted
                # from the state's own clock, a round trip later) ended early by that trip.
                wait_until = time.monotonic() + wait
                while (left := wait_until - time.monotonic()) > 0:
                    time.sleep(min(left, keep_every))
                    keep_alive()
            # The call starts now: the lease must cover it from here, whatever the wait was.
            if keep is not None and self.limited and not keep():
                raise SlotAbandoned
            yield
        finally:
            if acquired:
                try:
                    self.state.release(token)
                except Exception:
                    # Redis restarting: the slot frees itself after SLOT_TTL_SECONDS. Raising
                    # here would throw away the answer of the call this slot was for.
                    logger.warning("cannot release a call slot; it expires", exc_info=True)


_states: dict[str, RedisState | FileState] = {}
_cached: dict[tuple, Throttle] = {}


def shared_state() -> RedisState | FileState:
    """Where state shared by all workers lives: Redis if configured, else a locked file."""
    url = settings.LABEL_THROTTLE_REDIS_URL
    prefix = f"{settings.REDIS_KEY_PREFIX}modqueue:throttle"
    where = f"{url} {prefix}" if url else str(Path(settings.DATA_DIR) / "throttle.json")
    if where not in _states:
        _states[where] = RedisState(url, prefix=prefix) if url else FileState(Path(where))
    return _states[where]


def get_throttle() -> Throttle:
    state = shared_state()
    key = (settings.LABEL_MAX_IN_FLIGHT, settings.LABEL_MAX_CALLS_PER_SECOND, id(state))
    if key not in _cached:
        _cached[key] = Throttle(max_in_flight=key[0], per_second=key[1], state=state)
    return _cached[key]
