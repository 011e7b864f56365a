"""Matching: the rule an allowlist snapshot gives an origin, from what is at hand.

Functions of one `State` (the snapshot a request read) and an origin: what the rules say
(memoized in the snapshot), the predicates' cached answers (folded in when they depend on the
origin alone), and which of a snapshot's memos may keep an answer. Nothing here does I/O:
when an answer needs it, the result is PENDING and ``Policy.resolve()`` takes over.
"""

from __future__ import annotations

import math
from typing import Final

from ._events import Reason, RuleKind
from ._memo import MALFORMED, Verdict
from ._origin import MAX_ORIGIN_LENGTH, parse_origin
from ._resolver import State
from .types import Clock, Scope

__all__ = ["PENDING", "Pending", "lookup", "rules_say"]


class Pending:
    """What ``Policy.lookup()`` returns when the answer needs I/O (a load, a predicate call)."""

    __repr__ = object.__repr__


PENDING: Final = Pending()
_MISSING: Final = object()


def rules_say(state: State, origin: str) -> Verdict:
    """What the snapshot's rules say of ``origin``: a rule, None, or MALFORMED (memoized)."""
    if len(origin) > MAX_ORIGIN_LENGTH:
        return MALFORMED  # refused unread and never memoized: a flood of them keeps nothing
    verdicts = state.memos.verdicts
    verdict = verdicts.entries.get(origin, _MISSING)
    if verdict is _MISSING:
        rules = state.rules
        if origin in rules.exact:
            verdict = origin
        else:
            # The grammar check comes before any pattern, regex or predicate sees it.
            parsed = parse_origin(origin)
            verdict = MALFORMED if parsed is None else rules.match(origin, parsed)
        verdicts.put(origin, verdict)
    return verdict  # type: ignore[return-value]


def lookup(state: State, origin: str, scope: Scope | None, clock: Clock) -> str | Pending | None:
    """The rule allowing ``origin`` in ``state``: its text, None, or PENDING (I/O needed)."""
    deadline = state.deadline
    if deadline < math.inf and deadline <= clock():  # a static list never reads the clock
        # A malformed origin can match nothing: it never triggers a provider load.
        if origin != "null" and parse_origin(origin) is None:
            return None
        return PENDING
    verdict = rules_say(state, origin)
    if type(verdict) is str:
        return verdict
    if verdict is None and state.predicates:
        # The predicates' answer, folded in until it expires: a warm predicate costs one
        # dict read and a clock read, like a callable's TTL.
        folded = state.memos.folded.get(origin, _MISSING)
        if folded is not _MISSING:
            return folded  # type: ignore[return-value]
        return _predicates_now(state, origin, scope)
    return None


def _predicates_now(state: State, origin: str, scope: Scope | None) -> str | Pending | None:
    """The predicates' cached answers (folded in when they depend on the origin alone);
    PENDING when one must be asked."""
    answer: str | None = None
    expires = math.inf
    for asker in state.predicates:
        try:
            key = asker.predicate.key(origin, scope)
        except Exception:
            return PENDING  # resolve() records the failure
        failed = asker.failures.entry(origin if key is None else key)
        if failed is not None:
            expires = min(expires, failed[1])  # refused by this one for now
            continue
        if key is None:
            return PENDING  # an answer that is never reused: ask
        entry = asker.answers.entry(key)
        if entry is None:
            return PENDING
        # The folded answer lives no longer than any cached answer it was made from.
        expires = min(expires, entry[1])
        if entry[0]:
            answer = asker.name
            break
    if state.foldable:
        state.memos.folded.put(origin, answer, until=expires)
    return answer


def decided_by_rules(state: State, origin: str) -> bool:
    """True when the snapshot's rules alone decided ``origin`` (just looked up): the answer
    holds as long as the snapshot, for every request."""
    verdict = state.memos.verdicts.entries.get(origin, _MISSING)
    return type(verdict) is str or verdict is MALFORMED or (verdict is None and not state.predicates)


def folded_until(state: State, origin: str) -> float | None:
    """When the predicates' folded answer for ``origin`` expires; None: it is not folded
    (a request-aware predicate's answer, never reused for another request)."""
    entry = state.memos.folded.entries.get(origin)
    return None if entry is None else entry[1]


def rule_kind(state: State, origin: str, rule: str) -> RuleKind:
    """What kind of rule ``rule`` is, for a `DecisionEvent`."""
    if rule == "*":
        return "star"
    if rule == "null":
        return "null"
    if rule == origin:
        return "exact"
    if any(asker.name == rule for asker in state.predicates):
        return "predicate"
    if rule.startswith("regex "):  # how Rules.match names a regex's match
        return "regex"
    return "pattern"


def refusal_kind(state: State, origin: str, rule: str | None, source_failing: bool) -> Reason:
    """Why ``origin`` was refused, for a `DecisionEvent` (what the memo learned, else parsed)."""
    if rule == "*":
        return "credentials-star"
    if rule == "null":
        return "credentials-null"
    # What the rules said is memoized: None for a well-formed origin they do not match.
    verdict = state.memos.verdicts.entries.get(origin, _MISSING)
    if verdict is MALFORMED:
        return "malformed-origin"
    unknown = verdict is _MISSING and origin != "null"
    if unknown and (len(origin) > MAX_ORIGIN_LENGTH or parse_origin(origin) is None):
        return "malformed-origin"
    return "source-failing" if source_failing else "no-rule"
