"""Guards for user-supplied origin regexes.

Origins are at most 326 bytes, so even a backtracking regex is bounded, but a nested
quantifier such as ``(a+)+``, an alternation under a repeat such as ``(a|aa)*``, or four
adjacent repeats such as ``.*.*.*.*`` still turn 326 bytes into seconds (or hours) of CPU.
Such regexes are refused at construction.
"""

from __future__ import annotations

import re
from typing import Any

from .exceptions import Problem

try:  # The parser is private; guard so a future Python only loses this check.
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _sre_parse = None

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
# Backtracking over k adjacent repeats costs O(n**k): 3 is ~10 ms on 326 bytes, 4 is ~1 s.
MAX_UNBOUNDED_REPEATS = 3


def _has_nested_quantifier(items: Any, inside_repeat: bool) -> bool:
    for op, argument in items:
        name = str(op)
        if name in _REPEATS:
            _low, high, sub = argument
            unbounded = high is _sre_parse.MAXREPEAT or high > 1
            if unbounded and inside_repeat:
                return True
            if _has_nested_quantifier(sub, inside_repeat or unbounded):
                return True
        elif name in ("SUBPATTERN", "ASSERT", "ASSERT_NOT"):
            if _has_nested_quantifier(argument[-1], inside_repeat):
                return True
        # Alternatives under a repeat can match the same text many ways: (a|aa)* is
        # exponential although no quantifier is nested. (Single characters, (a|b), are
        # parsed into one class and never reach here.)
        elif name == "BRANCH" and (
            inside_repeat or any(_has_nested_quantifier(b, inside_repeat) for b in argument[1])
        ):
            return True
    return False


def _unbounded_repeats(items: Any) -> int:
    count = 0
    for op, argument in items:
        name = str(op)
        if name in _REPEATS:
            _low, high, sub = argument
            count += (high is _sre_parse.MAXREPEAT or high > 1) + _unbounded_repeats(sub)
        elif name in ("SUBPATTERN", "ASSERT", "ASSERT_NOT"):
            count += _unbounded_repeats(argument[-1])
        elif name == "BRANCH":
            count += max(_unbounded_repeats(branch) for branch in argument[1])
    return count


def check_regex(regex: re.Pattern[str]) -> Problem | None:
    """A problem if the regex has a quantifier nested in another (catastrophic backtracking)."""
    if _sre_parse is None:  # pragma: no cover
        return None
    parsed = list(_sre_parse.parse(regex.pattern, regex.flags))
    if _has_nested_quantifier(parsed, inside_repeat=False):
        return Problem(
            "corsengine.E008",
            f"origin regex {regex.pattern!r} nests a quantifier or an alternation inside a repeat",
            "nested repeats such as (a+)+ or (a|aa)* backtrack exponentially; use a wildcard "
            "pattern like 'https://*.example.com' or a regex without nested repeats",
        )
    if _unbounded_repeats(parsed) > MAX_UNBOUNDED_REPEATS:
        return Problem(
            "corsengine.E008",
            f"origin regex {regex.pattern!r} has more than {MAX_UNBOUNDED_REPEATS} unbounded repeats",
            "each repeat multiplies the backtracking; use a wildcard pattern like "
            "'https://*.example.com' or fewer '*', '+' and '{m,n}'",
        )
    return None
