"""A small per-process cache whose entries expire, for data every request reads."""

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import cachetools

V = TypeVar("V")


class TTLCache(Generic[V]):
    """A per-process map whose entries are read again after `seconds`, holding at most
    `maxsize` entries (the least recently used go first), so that keys chosen by outsiders
    (a webhook URL's slug) cannot grow a process's memory.

    For data every request needs and that changes rarely (a source, its routing); saves in
    this process call clear(), other processes see a change within `seconds`. Safe to share
    between a worker's threads.
    """

    def __init__(self, seconds: float, maxsize: int = 10_000):
        self.seconds = seconds
        self._entries: cachetools.TTLCache[Hashable, V] = cachetools.TTLCache(
            maxsize=maxsize, ttl=seconds, timer=time.monotonic
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        with self._lock:
            try:
                return self._entries[key]
            except KeyError:
                pass
        value = load()
        with self._lock:
            self._entries[key] = value
        return value

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self, **_) -> None:
        with self._lock:
            self._entries.clear()
