"""A bounded log rate: one line per key per window, and at most so many lines per window in all.

Shared by everything that logs about requests (shadow disagreements, refused origins, a
decision listener that raises), so that a flood of distinct origins cannot fill the disk.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

from ._cache import DecisionCache
from .types import Clock

LOG_LINES_PER_MINUTE: Final = 20
WINDOW: Final = 60.0
KEYS: Final = 4096  # keys remembered per window; past it the oldest is forgotten (LRU)


class LogRate:
    """``allow(key)`` is True at most once per key per minute, and ``per_minute`` times in all.

    ``take_suppressed()`` says how many lines were refused since it was last asked, so that the
    next line can say so.
    """

    __slots__ = ("_clock", "_lines", "_logged", "_suppressed", "_window_start", "per_minute")

    def __init__(self, clock: Clock, per_minute: int = LOG_LINES_PER_MINUTE) -> None:
        self._clock = clock
        self.per_minute = per_minute
        self._logged: DecisionCache[bool] = DecisionCache(KEYS, WINDOW, clock)
        self._window_start = -WINDOW
        self._lines = 0
        self._suppressed = 0

    def allow(self, key: Hashable) -> bool:
        if self._logged.get(key) is not None:
            self._suppressed += 1
            return False
        now = self._clock()
        if now - self._window_start >= WINDOW:
            self._window_start, self._lines = now, 0
        if self._lines >= self.per_minute:
            self._suppressed += 1
            return False
        self._lines += 1
        self._logged.put(key, True)
        return True

    def take_suppressed(self) -> int:
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed
