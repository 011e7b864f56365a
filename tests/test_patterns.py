"""Allowlist entries compiled into rules: exact, wildcard patterns, regex, null, '*'."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corsengine import ConfigurationError, _patterns
from corsengine._patterns import Rules, compile_entries, matches_origin

RULES = [
    "https://app.example.com",
    "https://*.example.org",
    "http://localhost:*",
    "https://*.corp.example:*",
    "https://*.ports.example:8443",
    "null",
]

CASES = [
    ("https://app.example.com", "https://app.example.com"),
    ("https://other.example.com", None),
    ("https://a.example.org", "https://*.example.org"),
    ("https://a.b.example.org", "https://*.example.org"),
    ("https://example.org", None),  # never the apex
    ("https://evilexample.org", None),  # whole labels only
    ("https://a.example.org.evil.com", None),
    ("http://a.example.org", None),  # the scheme is literal
    ("https://a.example.org:8443", None),  # no port in the pattern: default port only
    ("http://localhost", "http://localhost:*"),
    ("http://localhost:5173", "http://localhost:*"),
    ("https://localhost:5173", None),
    ("http://localhost.evil.com:5173", None),
    ("https://x.corp.example:9000", "https://*.corp.example:*"),
    ("https://x.corp.example", "https://*.corp.example:*"),
    ("https://x.ports.example:8443", "https://*.ports.example:8443"),
    ("https://x.ports.example", None),
    ("null", "null"),
    ("https://[::1]", None),
]


@pytest.mark.parametrize(("origin", "rule"), CASES, ids=[origin for origin, _ in CASES])
def test_rule_matching(origin: str, rule: str | None) -> None:
    rules = Rules.from_entries(RULES)
    assert matches_origin(rules, origin) == rule


def test_normalization_warns_and_keeps_the_canonical_form() -> None:
    rules, problems, notes = compile_entries(
        ["HTTPS://App.Example.COM:443/", "https://bücher.example", "http://[0:0::1]:80"]
    )
    assert problems == []
    assert rules.exact == {"https://app.example.com", "https://xn--bcher-kva.example", "http://[::1]"}
    assert len(notes) == 3


def test_star_and_regex() -> None:
    rules = Rules.from_entries(["*"])
    assert matches_origin(rules, "https://anything.example") == "*"
    assert matches_origin(rules, "https://bad origin") is None
    regex = Rules.from_entries([], regexes=[r"https://[a-z]+\.example\.net"])
    assert matches_origin(regex, "https://api.example.net") == r"regex https://[a-z]+\.example\.net"
    # Full match only: a prefix match would allow the attacker's domain.
    assert matches_origin(regex, "https://api.example.net.evil.com") is None


def test_union_and_entries() -> None:
    a = Rules.from_entries(["https://a.example", "https://*.x.example"])
    b = Rules.from_entries(["https://b.example"], regexes=["https://c\\.example"])
    union = a | b
    assert union.entries == {
        "https://a.example",
        "https://*.x.example",
        "https://b.example",
        "https://c\\.example",
    }
    assert (a | Rules()) is a
    assert (Rules() | b) is b
    assert not Rules()
    assert (Rules.from_entries(["*"]) | a).entries == a.entries | {"*"}


ERRORS = {
    "path": ("https://example.com/api", "corsengine.E001"),
    "query": ("https://example.com?a", "corsengine.E001"),
    "fragment": ("https://example.com#a", "corsengine.E001"),
    "userinfo": ("https://user@example.com", "corsengine.E002"),
    "no scheme": ("example.com", "corsengine.E003"),
    "wildcard without scheme": ("*.example.com", "corsengine.E003"),
    "bad scheme": ("1http://example.com", "corsengine.E003"),
    "bad host": ("https://exa mple.com", "corsengine.E004"),
    "bad port": ("https://example.com:99999", "corsengine.E004"),
    "non-numeric port": ("https://example.com:http", "corsengine.E004"),
    "bad ipv4": ("http://300.1.1.1", "corsengine.E004"),
    "bad ipv6": ("http://[zz::1]", "corsengine.E004"),
    "wildcard glued to a label": ("https://*example.com", "corsengine.E005"),
    "wildcard in the middle": ("https://a.*.example.com", "corsengine.E005"),
    "wildcard at the end": ("https://example.*", "corsengine.E005"),
    "wildcard scheme": ("*://example.com", "corsengine.E005"),
    "wildcard host": ("https://*", "corsengine.E005"),
    "partial port wildcard": ("https://example.com:8*", "corsengine.E005"),
    "public suffix": ("https://*.com", "corsengine.E006"),
    "two-label public suffix": ("https://*.co.uk", "corsengine.E006"),
    "shared hosting": ("https://*.github.io", "corsengine.E006"),
    "wildcard over an ip": ("http://*.10.0.0.1", "corsengine.E006"),
    "comma-separated": ("https://a.com,https://b.com", "corsengine.E010"),
}


@pytest.mark.parametrize(("entry", "code"), list(ERRORS.values()), ids=list(ERRORS))
def test_entries_that_can_never_match_are_errors(entry: str, code: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Rules.from_entries([entry])
    assert raised.value.codes == (code,)
    assert "hint" in str(raised.value) or code in str(raised.value)


@pytest.mark.usefixtures("no_re2")  # E008 is the guard of Python's engine
def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Rules.from_entries(["https://a.com/x", "b.com", 42], regexes=["(", "(a+)+"])  # type: ignore[list-item]
    assert raised.value.codes == (
        "corsengine.E001",
        "corsengine.E003",
        "corsengine.E017",
        "corsengine.E007",
        "corsengine.E008",
    )
    assert str(raised.value).startswith("5 CORS configuration problems:")


# --- the fast path for canonical exact origins ------------------------------------------------

_LABEL_CHARS = st.text(alphabet="abcxyz019-_", min_size=1, max_size=8) | st.sampled_from(
    ["xn--bcher-kva", "localhost", "example", "com", "0", "255", "a-", "-a", "A"]
)


@st.composite
def near_canonical(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "ws", "ftp"]))
    labels = draw(st.lists(_LABEL_CHARS, min_size=1, max_size=4))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080", ":0", ":08080", ":65535", ":65536", ":99999"]))
    tail = draw(st.sampled_from(["", "", "", "/", "."]))
    return f"{scheme}://{'.'.join(labels)}{port}{tail}"


def general_path(entry: str) -> tuple[frozenset[str], list[str]]:
    problems: list[_patterns.Problem] = []
    exact: set[str] = set()
    _patterns._compile_pattern(entry, problems, {}, {}, exact, [])
    return frozenset(exact), [problem.code for problem in problems]


@settings(max_examples=500, deadline=None, database=None)
@given(near_canonical())
def test_the_canonical_fast_path_agrees_with_the_general_path(entry: str) -> None:
    if _patterns._canonical_exact(entry):
        exact, problems = general_path(entry)
        assert (exact, problems) == (frozenset({entry}), []), entry


def test_the_fast_path_takes_the_common_forms_and_leaves_the_rest() -> None:
    taken = ["https://app.example.com", "http://localhost:3000", "https://a-b.c9.example:8443"]
    left = [
        "https://App.example.com",  # upper case: normalized with a warning
        "https://app.example.com:443",  # default port
        "http://127.0.0.1:8000",  # an IPv4 address
        "https://xn--bcher-kva.example",  # punycode: checked by IDNA
        "https://app.example.com/",  # a trailing slash
        "https://*.example.com",  # a pattern
    ]
    assert all(_patterns._canonical_exact(entry) for entry in taken)
    assert not any(_patterns._canonical_exact(entry) for entry in left)
