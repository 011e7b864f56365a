"""Report-only rollouts: a candidate policy judged on live traffic without deciding anything.

The enforced policy answers every request; the candidate (``Policy(..., shadow=candidate)``)
is asked about the same request, and each disagreement is counted and logged, at a bounded
rate: one line per origin and kind per minute, and at most ``LOG_LINES_PER_MINUTE`` in all, so
that a flood of distinct origins cannot fill the disk.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass
from typing import Final, Literal

from ._cache import DecisionCache
from ._origin import quote
from .types import Clock

logger = logging.getLogger("corsengine")

LOG_LINES_PER_MINUTE: Final = 20
KEPT: Final = 100  # the most recent disagreements kept for inspection

Flip = Literal["would allow", "would refuse"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One request the candidate would have decided otherwise."""

    origin: str
    flip: Flip
    preflight: bool
    enforced_reason: str
    candidate_reason: str


class ShadowReport:
    """Counts and the most recent disagreements between the enforced policy and a candidate."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.counts: Counter[Flip] = Counter()
        self.recent: deque[Disagreement] = deque(maxlen=KEPT)
        self._logged: DecisionCache[bool] = DecisionCache(4096, 60.0, clock)
        self._window_start = -60.0
        self._lines = 0

    def record(self, disagreement: Disagreement) -> None:
        self.counts[disagreement.flip] += 1
        self.recent.append(disagreement)
        key = (disagreement.origin, disagreement.flip, disagreement.preflight)
        if self._logged.get(key) is not None:
            return
        now = self.clock()
        if now - self._window_start >= 60.0:
            self._window_start, self._lines = now, 0
        if self._lines >= LOG_LINES_PER_MINUTE:
            return
        self._lines += 1
        self._logged.put(key, True)
        logger.warning(
            "corsengine: the shadow policy %s %s from %s (enforced: %s; shadow: %s)",
            disagreement.flip,
            "a preflight" if disagreement.preflight else "a request",
            quote(disagreement.origin),
            disagreement.enforced_reason,
            disagreement.candidate_reason,
        )
