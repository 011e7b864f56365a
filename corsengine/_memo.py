"""Bounded memos: what one allowlist snapshot has learned about the origins it has seen.

Each memo belongs to one `State` of the resolver, so a swap, a refresh or a load that
changed the rules starts empty ones: nothing a memo holds can outlive the allowlist it was
learned from. A memo is cleared when full, so a flood of distinct origins keeps at most
``size`` entries (and clearing is cheaper per request than any eviction order). The request
path reads ``entries`` directly: a dict read, not a method call.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

from .types import Clock

if TYPE_CHECKING:
    from ._decide import Headers, PreflightAnswer

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")
V_co = TypeVar("V_co", covariant=True)
K_contra = TypeVar("K_contra", contravariant=True)

MEMO_SIZE: Final = 4096
PREFLIGHT_MEMO_SIZE: Final = 1024
PreflightKey = tuple[bytes, bytes, bytes | None, bool]


class Memo(Generic[K, V]):
    """Answers that hold as long as the snapshot: a plain dict, bounded.

    Examples:
        >>> memo: Memo[str, int] = Memo(size=2)
        >>> memo.put("a", 1); memo.put("b", 2); memo.entries
        {'a': 1, 'b': 2}
        >>> memo.put("c", 3); memo.entries  # full: cleared first
        {'c': 3}
    """

    __slots__ = ("entries", "size")

    def __init__(self, size: int = MEMO_SIZE) -> None:
        self.entries: dict[K, V] = {}
        self.size = size

    def put(self, key: K, value: V) -> None:
        entries = self.entries
        if len(entries) >= self.size:
            entries.clear()
        entries[key] = value

    def __len__(self) -> int:
        return len(self.entries)


class TimedMemo(Generic[K, V]):
    """Answers that expire: a predicate's cached answer folded in, or any prepared answer of
    a snapshot that has a deadline (then ``Policy.answers`` and ``Policy.preflights``).

    Examples:
        >>> from corsengine.testing import FakeClock
        >>> clock = FakeClock()
        >>> memo: TimedMemo[str, str | None] = TimedMemo(clock)
        >>> memo.put("https://a.example", "partners", until=clock() + 60)
        >>> memo.get("https://a.example", "unknown")
        'partners'
        >>> clock.advance(60)
        >>> memo.get("https://a.example", "unknown")
        'unknown'
    """

    __slots__ = ("clock", "entries", "size")

    def __init__(self, clock: Clock, size: int = MEMO_SIZE) -> None:
        self.entries: dict[K, tuple[V, float]] = {}
        self.clock = clock
        self.size = size

    def get(self, key: K, default: D | None = None) -> V | D | None:
        """The value of ``key`` while it lives, else ``default`` (one clock read on a hit)."""
        entry = self.entries.get(key)
        if entry is None or entry[1] <= self.clock():
            return default
        return entry[0]

    def put(self, key: K, value: V, *, until: float = math.inf) -> None:
        entries = self.entries
        if len(entries) >= self.size:
            entries.clear()
        entries[key] = (value, until)

    def __len__(self) -> int:
        return len(self.entries)


class Malformed:
    """What the rules say of an Origin that is not a serialized origin: refused unread."""

    __repr__ = object.__repr__


MALFORMED: Final = Malformed()

Verdict = str | None | Malformed
"""What an allowlist's rules say of one origin: the rule allowing it, None, or MALFORMED."""


class Memos:
    """Every memo of one allowlist snapshot (see `State`)."""

    __slots__ = (
        "answers",
        "decisions",
        "folded",
        "preflights",
        "timed_answers",
        "timed_preflights",
        "verdicts",
    )

    def __init__(self, clock: Clock) -> None:
        # Origin -> what the rules say: holds as long as the snapshot.
        self.verdicts: Memo[str, Verdict] = Memo()
        # Origin -> the predicates' answer, when they decide from the origin alone.
        self.folded: TimedMemo[str, str | None] = TimedMemo(clock)
        # Origin bytes -> an actual response's CORS headers (Vary last; State.refusal when
        # refused), from the rules...
        self.answers: Memo[bytes, Headers] = Memo()
        # ...or from a folded predicate answer, until it expires.
        self.timed_answers: TimedMemo[bytes, Headers] = TimedMemo(clock)
        # (Origin, -Request-Method, -Request-Headers, -Private-Network) as sent -> the preflight's
        # encoded answer, when the rules decided the origin...
        self.preflights: Memo[PreflightKey, PreflightAnswer] = Memo(PREFLIGHT_MEMO_SIZE)
        # ...or from a predicate's folded answer, until it expires.
        self.timed_preflights: TimedMemo[PreflightKey, PreflightAnswer] = TimedMemo(
            clock, PREFLIGHT_MEMO_SIZE
        )
        # The same with the rule, whoever decided it (a predicate's answer is never reused
        # unless the rule is the same).
        self.decisions: Memo[tuple[PreflightKey, str | None], PreflightAnswer] = Memo(PREFLIGHT_MEMO_SIZE)


class Prepared(Protocol[K_contra, V_co]):
    """What ``Policy.answers`` and ``Policy.preflights`` are: a dict, or a `TimedMemo`."""

    def get(self, key: K_contra, /) -> V_co | None: ...
