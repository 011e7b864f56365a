"""Report-only rollouts: a candidate policy judged on live traffic without deciding anything.

The enforced policy answers every request; the candidate (``Policy(..., shadow=candidate)``)
is asked about the same request, and each disagreement is counted and logged, at a bounded
rate (``_ratelimit.LogRate``): one line per origin and kind per minute, and at most 20 in all,
so that a flood of distinct origins cannot fill the disk.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass
from typing import Final, Literal

from ._origin import quote
from ._ratelimit import LogRate
from .types import Clock

logger = logging.getLogger("corsengine")

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
        self._rate = LogRate(clock)

    def record(self, disagreement: Disagreement) -> None:
        self.counts[disagreement.flip] += 1
        self.recent.append(disagreement)
        key = (disagreement.origin, disagreement.flip, disagreement.preflight)
        if not self._rate.allow(key):
            return
        logger.warning(
            "corsengine: the shadow policy %s %s from %s (enforced: %s; shadow: %s)",
            disagreement.flip,
            "a preflight" if disagreement.preflight else "a request",
            quote(disagreement.origin),
            disagreement.enforced_reason,
            disagreement.candidate_reason,
        )
