"""The per-origin decision cache of a predicate: LRU, each answer expiring after a TTL.

Not cachetools.TTLCache: its ``get`` costs about 1 µs, ten times an OrderedDict's, and this
cache is read on every request a predicate decides (see docs/design.md).
"""

from __future__ import annotations

from collections import OrderedDict

from .types import Clock


class DecisionCache:
    """At most ``maxsize`` answers; each one is forgotten ``ttl`` seconds after it was stored."""

    __slots__ = ("_clock", "_data", "maxsize", "ttl")

    def __init__(self, maxsize: int, ttl: float, clock: Clock) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self._clock = clock
        self._data: OrderedDict[str, tuple[bool, float]] = OrderedDict()

    def get(self, origin: str) -> bool | None:
        """The cached answer, or None when absent or expired."""
        entry = self.entry(origin)
        return None if entry is None else entry[0]

    def entry(self, origin: str) -> tuple[bool, float] | None:
        """The cached answer with the moment it expires, or None when absent or expired."""
        entry = self._data.get(origin)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._data[origin]
            return None
        self._data.move_to_end(origin)  # least recently used goes first
        return entry

    def __setitem__(self, origin: str, answer: bool) -> None:
        data = self._data
        if origin in data:
            data.move_to_end(origin)
        elif len(data) >= self.maxsize:
            data.popitem(last=False)
        data[origin] = (answer, self._clock() + self.ttl)

    def __len__(self) -> int:
        return len(self._data)
