"""User-supplied origin regexes: compiled on RE2 when it is installed, else guarded.

With the ``re2`` extra (google-re2), every regex runs in time linear in the origin, so none
is refused for its shape; a regex using what RE2 cannot run (a backreference, a lookaround)
is a configuration error naming the construct. Without it, Python's backtracking engine is
used and regexes that can backtrack catastrophically are refused at construction. Origins
are at most 326 bytes, but a repeat that can match the same text in more than one way inside
another repeat (``(a+)+``, ``(a|aa)*``) costs seconds to hours on 326 bytes, and three
repeats in a row that can each take the same characters (``.*.*.*``) cost milliseconds per
origin. The guard reasons on character sets, never on timing: see docs/configuration.md.
Either way the regex must also compile on Python's ``re``, so a policy means the same
thing, and ``corsengine lint`` can read it, with or without RE2.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any, Final, Protocol

from ._codes import E007, E008, E018
from ._origin import quote
from .exceptions import Problem

__all__ = ["OriginRegex", "RE2Pattern", "check_regex", "compile_origin_regex", "re2_module"]

try:  # The parser is private; guard so a future Python only loses this check.
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _sre_parse = None

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
# Three repeats in a row that can take the same characters backtrack in O(n**3) on a
# refused origin of n bytes: 5-20 ms at 326 bytes. Two, O(n**2), stay well under 1 ms.
MAX_OVERLAPPING_REPEATS: Final = 2


class OriginRegex(Protocol):
    """A compiled origin regex: Python's ``re.Pattern`` or RE2's, used with fullmatch only."""

    @property
    def pattern(self) -> str: ...

    def fullmatch(self, string: str, /) -> object: ...


class RE2Pattern:
    """An origin regex compiled on RE2, asked through a one-regex ``re2.Set``.

    ``re2.Set.FullMatchSet().Match`` answers in about the time of Python's ``fullmatch``
    (0.7 µs); the module's own ``fullmatch`` walks match spans in a Python generator (6 µs).
    Only whether the origin matches is needed, so the set is all a lookup asks.
    """

    __slots__ = ("_set", "pattern")

    def __init__(self, re2: Any, pattern: str, options: Any) -> None:
        self.pattern = pattern
        self._set = re2.Set.FullMatchSet(options)
        self._set.Add(pattern)
        self._set.Compile()

    def fullmatch(self, string: str, /) -> bool:
        return self._set.Match(string) is not None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RE2Pattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"RE2Pattern({self.pattern!r})"


@cache
def re2_module() -> Any:
    """google-re2's ``re2`` module, imported on first use; None when it is not installed."""
    try:
        import re2  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        return None
    return re2


def compile_origin_regex(text: str, problems: list[Problem]) -> OriginRegex | None:
    """Compile an origin regex (always used with fullmatch), reporting errors as problems."""
    try:
        regex = re.compile(text)
    except (re.error, TypeError) as error:
        problems.append(
            Problem(
                E007,
                f"origin regex {quote(str(text))} does not compile: {error}",
                "check the syntax; the regex must match the whole origin",
                field="allow_origin_regex",
            )
        )
        return None
    re2 = re2_module()
    if re2 is None:
        problem = check_regex(regex)
        if problem is not None:
            problems.append(problem)
            return None
        return regex
    construct = _not_in_re2(regex)
    if construct is None:
        options = re2.Options()
        options.log_errors = False  # the error is reported here, not on stderr
        try:
            re2.compile(text, options)  # for its error message; the set only says it failed
            return RE2Pattern(re2, text, options)
        except re2.error as error:
            detail = error.args[0] if error.args else ""
            detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
            construct = f"it ({detail})"
    problems.append(
        Problem(
            E018,
            f"origin regex {quote(text)}: RE2, the linear-time engine, cannot run {construct}",
            "RE2 keeps every regex linear in the origin's length; rewrite it without that construct "
            "(a wildcard pattern such as 'https://*.example.com' often says the same)",
            field="allow_origin_regex",
        )
    )
    return None


# --- what RE2 does not run, named from Python's parse -----------------------------------------

_RE2_MISSING: Final = {
    "GROUPREF": "a backreference (\\1, (?P=name))",
    "GROUPREF_EXISTS": "a conditional group ((?(1)...|...))",
    "ATOMIC_GROUP": "an atomic group ((?>...))",
    "POSSESSIVE_REPEAT": "a possessive quantifier (*+, ++, ?+)",
}
_OPEN_MIN: Final = re.compile(r"(?<!\\)\{,\d*\}")


def _not_in_re2(regex: re.Pattern[str]) -> str | None:
    if _OPEN_MIN.search(regex.pattern):
        # Python reads {,n} as {0,n}; RE2 reads it as the five characters: same text, two meanings.
        return "'{,n}' (RE2 reads it literally; write '{0,n}')"
    if regex.flags & re.VERBOSE:
        return "verbose mode ((?x))"
    if _sre_parse is None:  # pragma: no cover
        return None
    return _find_missing(_sre_parse.parse(regex.pattern))


def _find_missing(items: Any) -> str | None:
    for op, argument in items:
        name = str(op)
        if name in _RE2_MISSING:
            return _RE2_MISSING[name]
        if name in ("ASSERT", "ASSERT_NOT"):
            direction = "lookahead" if argument[0] == 1 else "lookbehind"
            return f"a {'negative ' if name == 'ASSERT_NOT' else ''}{direction}"
        for sub in _children(name, argument):
            found = _find_missing(sub)
            if found is not None:
                return found
    return None


def _children(name: str, argument: Any) -> list[Any]:
    if name in _REPEATS:
        return [argument[2]]
    if name in ("SUBPATTERN", "ASSERT", "ASSERT_NOT"):
        return [argument[-1]]
    if name == "ATOMIC_GROUP":
        return [argument]
    if name == "BRANCH":
        return list(argument[1])
    if name == "GROUPREF_EXISTS":
        return [branch for branch in argument[1:] if branch is not None]
    return []


# --- the guard for Python's backtracking engine -----------------------------------------------
#
# Character sets are 128-bit masks: the regex only ever sees a serialized origin, which is
# ASCII, so what a class matches beyond ASCII never matters. For each piece of the regex:
# chars (what it may consume), first (what it may start with) and whether it may match "".

ASCII: Final = (1 << 128) - 1
_DIGITS: Final = sum(1 << c for c in range(ord("0"), ord("9") + 1))
_LOWER: Final = sum(1 << c for c in range(ord("a"), ord("z") + 1))
_UPPER: Final = _LOWER >> 32
_WORD: Final = _DIGITS | _LOWER | _UPPER | 1 << ord("_")
_SPACE: Final = sum(1 << ord(c) for c in " \t\n\r\f\v") | 1 << 0x1C | 1 << 0x1D | 1 << 0x1E | 1 << 0x1F
_CATEGORIES: Final = {
    "CATEGORY_DIGIT": _DIGITS,
    "CATEGORY_WORD": _WORD,
    "CATEGORY_SPACE": _SPACE,
    "CATEGORY_LINEBREAK": 1 << ord("\n"),
}
_ZERO_WIDTH: Final = {"AT", "ASSERT", "ASSERT_NOT"}


class _Catastrophic(Exception):
    """The regex can backtrack catastrophically; the message says where."""


def _bit(code: int) -> int:
    return 1 << code if code < 128 else 0


def _fold(mask: int) -> int:
    return mask | (mask & _UPPER) << 32 | (mask & _LOWER) >> 32


def _class_mask(items: Any) -> int:
    mask, negate = 0, False
    for op, argument in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            mask |= _bit(argument)
        elif name == "RANGE":
            mask |= sum(_bit(code) for code in range(argument[0], min(argument[1], 127) + 1))
        elif name == "CATEGORY":
            category = str(argument)
            if category.startswith("CATEGORY_NOT_"):
                mask |= ASCII & ~_CATEGORIES.get(category.replace("_NOT", ""), 0)
            else:
                mask |= _CATEGORIES.get(category, ASCII)
        else:  # pragma: no cover - a class item a future Python adds: assume the worst
            mask |= ASCII
    return ASCII & ~mask if negate else mask


class _Guard:
    """Walks Python's parse of a regex; raises _Catastrophic where backtracking can explode."""

    def __init__(self, fold: bool) -> None:
        self.fold = fold
        self.longest_chain = 0

    # -- facts about a piece --

    def single(self, name: str, argument: Any) -> int | None:
        """The mask of a piece that consumes exactly one character, else None."""
        if name == "LITERAL":
            mask = _bit(argument)
        elif name == "NOT_LITERAL":
            mask = ASCII & ~_bit(argument)
        elif name == "ANY":
            mask = ASCII
        elif name == "IN":
            mask = _class_mask(argument)
        else:
            return None
        return _fold(mask) if self.fold else mask

    def facts(self, items: Sequence[Any]) -> tuple[int, int, bool]:
        """(chars, first, nullable) of a sequence."""
        chars = first = 0
        nullable = True
        for op, argument in items:
            c, f, n = self.piece(str(op), argument)
            chars |= c
            if nullable:
                first |= f
            nullable = nullable and n
        return chars, first, nullable

    def piece(self, name: str, argument: Any) -> tuple[int, int, bool]:
        mask = self.single(name, argument)
        if mask is not None:
            return mask, mask, False
        if name in _REPEATS:
            chars, first, nullable = self.facts(argument[2])
            return chars, first, nullable or argument[0] == 0
        if name == "BRANCH" or name == "GROUPREF_EXISTS":
            branches = argument[1] if name == "BRANCH" else [b or [] for b in argument[1:]]
            facts = [self.facts(branch) for branch in branches]
            chars = first = 0
            for c, f, _ in facts:
                chars, first = chars | c, first | f
            return chars, first, any(n for _, _, n in facts)
        if name == "SUBPATTERN":
            return self.facts(argument[-1])
        if name == "ATOMIC_GROUP":
            return self.facts(argument)
        if name == "GROUPREF":
            return ASCII, ASCII, True
        return 0, 0, True  # anchors and lookarounds consume nothing

    def follows(self, items: Sequence[Any], follow: int) -> list[int]:
        """For each piece, the characters that may come right after it."""
        after = [0] * len(items)
        for index in range(len(items) - 1, -1, -1):
            after[index] = follow
            _, first, nullable = self.piece(str(items[index][0]), items[index][1])
            follow = first | (follow if nullable else 0)
        return after

    # -- inside a repeat: every choice must be settled by the next character --

    def inside_repeat(self, items: Sequence[Any], follow: int) -> None:
        for (op, argument), after in zip(items, self.follows(items, follow), strict=True):
            name = str(op)
            if name in _REPEATS:
                _low, high, sub = argument
                # A repeat that can match nothing overlaps itself here too: its first characters
                # are part of what may follow it (the next iteration of the enclosing repeat).
                _, first, _ = self.facts(sub)
                if first & after:
                    raise _Catastrophic(
                        "a repeat inside a repeat, where the next character cannot tell whether "
                        "the inner one goes on"
                    )
                self.inside_repeat(sub, (first if high > 1 else 0) | after)
            elif name in ("BRANCH", "GROUPREF_EXISTS"):
                branches = argument[1] if name == "BRANCH" else [b or [] for b in argument[1:]]
                seen = 0
                for branch in branches:
                    _, first, nullable = self.facts(branch)
                    first |= after if nullable else 0
                    if first & seen:
                        raise _Catastrophic(
                            "alternatives inside a repeat that can start with the same character"
                        )
                    seen |= first
                    self.inside_repeat(branch, after)
            elif name == "GROUPREF":
                raise _Catastrophic("a backreference inside a repeat")
            elif name in ("ASSERT", "ASSERT_NOT"):
                self.inside_repeat(argument[1], 0)
            elif name == "SUBPATTERN":
                self.inside_repeat(argument[-1], after)
            elif name == "ATOMIC_GROUP":
                self.inside_repeat(argument, after)

    # -- outside repeats: count repeats in a row that can take the same characters --

    def chain(self, items: Sequence[Any], follow: int, state: tuple[int, int]) -> tuple[int, int]:
        """Thread (repeats in the current chain, characters they can take) through a sequence."""
        for (op, argument), after in zip(items, self.follows(items, follow), strict=True):
            state = self.link(str(op), argument, after, state)
        return state

    def link(self, name: str, argument: Any, after: int, state: tuple[int, int]) -> tuple[int, int]:
        run, taken = state
        mask = self.single(name, argument)
        if mask is not None:
            # A character the chain could also have taken keeps the split points ambiguous.
            return state if mask & taken else (0, 0)
        if name in _REPEATS:
            low, high, sub = argument
            chars, first, _ = self.facts(sub)
            if high <= 1:  # an optional part: taken or skipped
                return _merge(state, self.chain(sub, after, state))
            self.inside_repeat(sub, first | after)
            took = (run + 1, taken | chars) if first & taken else (1, chars)
            self.longest_chain = max(self.longest_chain, took[0])
            return _merge(state, took) if low == 0 else took
        if name == "GROUPREF":
            took = (run + 1, ASCII)
            self.longest_chain = max(self.longest_chain, took[0])
            return _merge(state, took)
        if name in ("BRANCH", "GROUPREF_EXISTS"):
            branches = argument[1] if name == "BRANCH" else [b or [] for b in argument[1:]]
            merged = (0, 0)
            for branch in branches:
                merged = _merge(merged, self.chain(branch, after, state))
            return merged
        if name in ("ASSERT", "ASSERT_NOT"):
            self.chain(argument[1], 0, state)  # tried at each split point of the chain
            return state
        if name == "SUBPATTERN":
            return self.chain(argument[-1], after, state)
        if name == "ATOMIC_GROUP":
            return self.chain(argument, after, state)
        return state  # anchors


def _merge(one: tuple[int, int], other: tuple[int, int]) -> tuple[int, int]:
    return max(one[0], other[0]), one[1] | other[1]


def _uses_ignorecase(items: Any) -> bool:
    for op, argument in items:
        name = str(op)
        if name == "SUBPATTERN" and argument[1] & re.IGNORECASE:
            return True
        if any(_uses_ignorecase(sub) for sub in _children(name, argument)):
            return True
    return False


def check_regex(regex: re.Pattern[str]) -> Problem | None:
    """A problem if the regex can backtrack catastrophically on Python's engine."""
    if _sre_parse is None:  # pragma: no cover
        return None
    parsed = _sre_parse.parse(regex.pattern, regex.flags)
    guard = _Guard(fold=bool(parsed.state.flags & re.IGNORECASE) or _uses_ignorecase(parsed))
    hint = (
        "install corsengine[re2] to run every regex in linear time, or use a wildcard pattern "
        "like 'https://*.example.com'"
    )
    try:
        guard.chain(list(parsed), 0, (0, 0))
    except _Catastrophic as error:
        return Problem(
            E008,
            f"origin regex {quote(regex.pattern)} can backtrack exponentially: {error} "
            "(as in (a+)+, (a|aa)* or ([a-z]+[a-z0-9]*)+)",
            f"end a repeated group on a character it cannot otherwise contain, as in "
            f"'(?:[a-z0-9-]+\\.)+'; or {hint}",
            field="allow_origin_regex",
        )
    if guard.longest_chain > MAX_OVERLAPPING_REPEATS:
        return Problem(
            E008,
            f"origin regex {quote(regex.pattern)} has {guard.longest_chain} repeats in a row that can "
            "take the same characters (as in .*.*.*)",
            f"each one multiplies the backtracking by the origin's length; separate them by a "
            f"character they cannot take, as in '[a-z0-9-]+\\.[a-z0-9-]+'; or {hint}",
            field="allow_origin_regex",
        )
    return None
