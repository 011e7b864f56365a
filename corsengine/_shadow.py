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
from typing import TYPE_CHECKING, Final, Literal

from ._lookup import Pending
from ._origin import quote
from ._ratelimit import LogRate
from .types import Clock, Scope

if TYPE_CHECKING:
    from ._policy import Policy

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


async def observe(
    enforced: Policy,
    candidate: Policy,
    origin: bytes,
    allowed: bool,
    scope: Scope | None,
    preflight: tuple[str, str | None, bool] | None,
) -> None:
    """``Policy.observe()``: ask ``candidate`` about a request ``enforced`` decided, through
    the candidate's own request API (its fast path first), and record a disagreement."""
    text = origin.decode("latin-1")
    if preflight is None:
        answer = candidate.actual_response(origin, scope)
        if isinstance(answer, Pending):
            answer = candidate.actual_response_for(origin, await candidate.resolve(text, scope))
        would = len(answer) > 1  # more than Vary: allowed
    else:
        rule = candidate.lookup(text, scope)
        if isinstance(rule, Pending):
            rule = await candidate.resolve(text, scope)
        would = candidate.decide(text, rule, *preflight[:2], True, preflight[2], explain=False).allowed
    if would == allowed:
        return
    method, headers, network = preflight or ("GET", None, False)
    kind = preflight is not None
    ours = await enforced.aevaluate(
        text, method, headers, preflight=kind, private_network=network, scope=scope
    )
    theirs = await candidate.aevaluate(
        text, method, headers, preflight=kind, private_network=network, scope=scope
    )
    flip: Flip = "would allow" if would else "would refuse"
    enforced.shadow_report.record(Disagreement(text, flip, kind, ours.reason, theirs.reason))
