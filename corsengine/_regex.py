"""Guards for user-supplied origin regexes.

Origins are at most 326 bytes, so even a backtracking regex is bounded, but a nested
quantifier such as ``(a+)+`` still turns 326 bytes into seconds of CPU. Such regexes are
refused at construction.
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
        elif name == "SUBPATTERN":
            if _has_nested_quantifier(argument[-1], inside_repeat):
                return True
        elif name == "BRANCH" and any(_has_nested_quantifier(b, inside_repeat) for b in argument[1]):
            return True
    return False


def check_regex(regex: re.Pattern[str]) -> Problem | None:
    """A problem if the regex has a quantifier nested in another (catastrophic backtracking)."""
    if _sre_parse is None:  # pragma: no cover
        return None
    parsed = _sre_parse.parse(regex.pattern, regex.flags)
    if _has_nested_quantifier(list(parsed), inside_repeat=False):
        return Problem(
            "corsengine.E008",
            f"origin regex {regex.pattern!r} nests a quantifier inside another",
            "nested quantifiers such as (a+)+ backtrack exponentially; use a wildcard pattern "
            "like 'https://*.example.com' or a regex without nested repeats",
        )
    return None
