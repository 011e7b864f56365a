"""DoS bounds: every piece of attacker-controlled input costs a bounded amount of work."""

from __future__ import annotations

import re

import pytest

from corsengine import ConfigurationError, Policy
from corsengine._regex import check_regex

# Each of these takes from a second to hours on a 326-byte origin with Python's backtracking
# engine, without nesting one quantifier inside another.
SUPERLINEAR_REGEXES = {
    "alternation-with-common-prefix": r"https://(a|a)*\.example\.com",
    "overlapping-alternation": r"https://(a|aa)*\.example\.com",
    "multi-char-alternation": r"https://(?:ab|a)+\.example\.com",
    "four-adjacent-dot-stars": r"https://.*.*.*.*\.example\.com",
    "four-adjacent-classes": r"https://[a-z]*[a-z]*[a-z]*[a-z]*x\.example\.com",
    "nested-inside-lookahead": r"https://(?=(a+)+b)[a-z]+\.example\.com",
}


@pytest.mark.parametrize("pattern", SUPERLINEAR_REGEXES.values(), ids=SUPERLINEAR_REGEXES.keys())
def test_superlinear_regex_without_nesting_is_refused_with_e008(pattern: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Policy(allow_origin_regex=pattern)
    assert "corsengine.E008" in str(caught.value)


SAFE_REGEXES = {
    "optional-subdomain": r"https://([a-z0-9-]+\.)?example\.com",
    "fixed-alternation": r"https://(app|admin)\.example\.com",
    "single-char-alternation-repeat": r"https://(?:a|b)+\.example\.com",
    "three-labels": r"https://[a-z0-9-]+\.[a-z0-9-]+\.[a-z]+",
    "any-port": r"http://localhost(:[0-9]+)?",
    "alternation-with-repeat": r"https://(app|[a-z]+-dev)\.example\.com",
    "negative-lookahead": r"https://(?![a-z]*evil)[a-z]+\.example\.com",
}


@pytest.mark.parametrize("pattern", SAFE_REGEXES.values(), ids=SAFE_REGEXES.keys())
def test_ordinary_regexes_are_accepted(pattern: str) -> None:
    assert check_regex(re.compile(pattern)) is None
    Policy(allow_origin_regex=pattern)


# --- the origin is checked before any provider, predicate or regex ----------------------

HUGE_ORIGIN = "https://" + "a" * 10_000 + ".example.com"


class RegexSpy:
    """Stands in for a compiled regex in Rules and records every call."""

    pattern = "spy"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def fullmatch(self, value: str) -> None:
        self.calls.append(value)


def test_huge_origin_never_reaches_a_callable_on_a_cold_cache() -> None:
    calls: list[int] = []

    def origins() -> list[str]:
        calls.append(1)
        return ["https://app.example.com"]

    policy = Policy(origins)
    decision = policy.evaluate(HUGE_ORIGIN)
    assert not decision.allowed
    assert "over the 326-byte limit" in decision.reason
    assert calls == []


# --- Access-Control-Request-Headers ----------------------------------------------------


@pytest.mark.parametrize(
    "requested",
    ["x-a,\r\nx-b", "x-a,\nx-b", "x-a ,\x0bx-b", "\x1cx-a,x-b\x1f", "x-a,\tx-b  "],
    ids=["crlf", "lf", "vertical-tab", "file-separators", "tab-and-spaces"],
)
def test_star_headers_echo_only_the_validated_names(requested: str) -> None:
    policy = Policy(["https://app.example.com"], allow_headers=["*"])
    decision = policy.evaluate("https://app.example.com", "GET", requested, preflight=True)
    assert decision.allowed
    assert decision.headers["Access-Control-Allow-Headers"] == "x-a, x-b"
