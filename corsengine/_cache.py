"""The per-key decision cache of a predicate: LRU, each answer expiring after a TTL.

Not cachetools.TTLCache: its ``get`` costs about 1 µs, ten times an OrderedDict's, and this
cache is read on every request a predicate decides (see docs/design.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from .types import Clock

V = TypeVar("V")


class DecisionCache(Generic[V]):
    """At most ``maxsize`` answers; each one is forgotten ``ttl`` seconds after it was stored.

    ``maxsize`` 0 keeps nothing: every lookup misses.
    """

    __slots__ = ("_clock", "_data", "maxsize", "ttl")

    def __init__(self, maxsize: int, ttl: float, clock: Clock) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[V, float]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        """The cached answer, or None when absent or expired."""
        entry = self.entry(key)
        return None if entry is None else entry[0]

    def entry(self, key: Hashable) -> tuple[V, float] | None:
        """The cached answer with the moment it expires, or None when absent or expired."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._data[key]
            return None
        self._data.move_to_end(key)  # least recently used goes first
        return entry

    def put(self, key: Hashable, answer: V, ttl: float | None = None) -> None:
        """Store ``answer`` for ``ttl`` seconds (the cache's own TTL by default)."""
        if self.maxsize <= 0:
            return
        data = self._data
        if key in data:
            data.move_to_end(key)
        elif len(data) >= self.maxsize:
            data.popitem(last=False)
        data[key] = (answer, self._clock() + (self.ttl if ttl is None else ttl))

    def __setitem__(self, key: Hashable, answer: V) -> None:
        self.put(key, answer)

    def __len__(self) -> int:
        return len(self._data)
