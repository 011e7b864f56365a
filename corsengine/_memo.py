"""Bounded memos: what one allowlist snapshot has learned about the origins it has seen.

Each memo belongs to one `State` of the resolver, so a swap, a refresh or a load that
changed the rules starts empty ones: nothing a memo holds can outlive the allowlist it was
learned from. A memo is cleared when full, so a flood of distinct origins keeps at most
``size`` entries (and clearing is cheaper per request than any eviction order). The request
path reads dicts directly (``entries``, `Prepared`'s ``answers`` and ``preflights``): a dict
read, not a method call.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from .types import Clock

if TYPE_CHECKING:
    from ._decide import Headers, PreflightAnswer

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

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
    """Answers that expire, each read with a clock read: the predicates' cached answers, folded
    in by origin.

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


class Prepared:
    """One snapshot's prepared answers, read as plain dicts: ``answers`` (Origin as sent -> an
    actual response's CORS headers, Vary last) and ``preflights`` (Origin, -Request-Method,
    -Request-Headers, -Private-Network as sent -> the encoded answer).

    Each entry is kept until a time: forever for an allowlist that never expires, else the
    snapshot's deadline or a predicate's cached answer's expiry, whichever is sooner. ``until``
    is the earliest such time: a reader compares it with the clock before reading the dicts
    and calls ``expire()`` once it has passed. A hit then costs one comparison, not a clock
    read per entry; and no comparison at all for an allowlist that never expires.

    Examples:
        >>> prepared = Prepared()
        >>> prepared.keep_answer(b"https://a.example", [], until=10.0)
        >>> prepared.keep_answer(b"https://b.example", [], until=20.0)
        >>> prepared.until
        10.0
        >>> prepared.expire(now=10.0)
        >>> list(prepared.answers), prepared.until
        ([b'https://b.example'], 20.0)
    """

    __slots__ = ("_heap", "_lock", "_order", "_untils", "answers", "preflights", "until")

    def __init__(self) -> None:
        self.answers: dict[bytes, Headers] = {}
        self.preflights: dict[PreflightKey, PreflightAnswer] = {}
        self.until = math.inf
        # (until, order, the dict, key) of every entry that expires, the earliest first; order
        # breaks ties, so two dicts are never compared.
        self._heap: list[tuple[float, int, dict[Any, Any], Hashable]] = []
        self._untils: dict[Hashable, float] = {}  # each expiring key's time (keys never collide)
        self._order = itertools.count()
        self._lock = threading.Lock()  # kept from any thread: evaluate(), refresh()

    def keep_answer(self, origin: bytes, headers: Headers, until: float = math.inf) -> None:
        self._keep(self.answers, MEMO_SIZE, origin, headers, until)

    def keep_preflight(self, key: PreflightKey, answer: PreflightAnswer, until: float = math.inf) -> None:
        self._keep(self.preflights, PREFLIGHT_MEMO_SIZE, key, answer, until)

    def _keep(self, entries: dict[Any, Any], size: int, key: Hashable, value: object, until: float) -> None:
        with self._lock:
            if len(entries) >= size:
                # A flood of distinct origins: everything goes, the times with it, so nothing
                # grows past the bounds.
                self.answers.clear()
                self.preflights.clear()
                self._heap.clear()
                self._untils.clear()
                self.until = math.inf
            if until != math.inf:
                # The time first, then the entry: whoever finds the entry finds its time.
                if until < self.until:
                    self.until = until
                self._untils[key] = until
                heapq.heappush(self._heap, (until, next(self._order), entries, key))
            entries[key] = value

    def expire(self, now: float) -> None:
        """Drop every entry whose time has come; ``until`` becomes the next one's."""
        with self._lock:
            heap, untils = self._heap, self._untils
            while heap and heap[0][0] <= now:
                until, _, entries, key = heapq.heappop(heap)
                if untils.get(key) == until:  # not kept again since, with a later time
                    del untils[key]
                    entries.pop(key, None)
            self.until = heap[0][0] if heap else math.inf

    def __len__(self) -> int:
        return len(self.answers) + len(self.preflights)


class Malformed:
    """What the rules say of an Origin that is not a serialized origin: refused unread."""

    __repr__ = object.__repr__


MALFORMED: Final = Malformed()

Verdict = str | None | Malformed
"""What an allowlist's rules say of one origin: the rule allowing it, None, or MALFORMED."""


class Memos:
    """Every memo of one allowlist snapshot (see `State`)."""

    __slots__ = ("decisions", "folded", "prepared", "verdicts")

    def __init__(self, clock: Clock) -> None:
        # Origin -> what the rules say: holds as long as the snapshot.
        self.verdicts: Memo[str, Verdict] = Memo()
        # Origin -> the predicates' answer, when they decide from the origin alone.
        self.folded: TimedMemo[str, str | None] = TimedMemo(clock)
        # The answers prepared from them, read by adapters before asking.
        self.prepared = Prepared()
        # A preflight's encoded answer by its key and rule, whoever decided it (a predicate's
        # answer is never reused unless the rule is the same).
        self.decisions: Memo[tuple[PreflightKey, str | None], PreflightAnswer] = Memo(PREFLIGHT_MEMO_SIZE)
