"""A small per-process cache whose entries expire, for data every request reads."""

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A per-process map whose entries are read again after `seconds`.

    For data every request needs and that changes rarely (a source, its routing); saves in
    this process call clear(), other processes see a change within `seconds`.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._entries: dict[Hashable, tuple[V, float]] = {}

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        hit = self._entries.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[1] < self.seconds:
            return hit[0]
        value = load()
        self._entries[key] = (value, now)
        return value

    def clear(self, **_) -> None:
        self._entries.clear()
