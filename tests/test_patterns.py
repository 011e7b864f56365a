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


def general_entries(entries: list[object]) -> tuple[Rules, list[str], list[str]]:
    """compile_entries without any fast path: every entry through the general path."""
    problems: list[_patterns.Problem] = []
    warnings: list[str] = []
    exact: set[str] = set()
    subdomains: dict[tuple[str, str, int | None], str] = {}
    any_port: dict[tuple[str, str, int | None], str] = {}
    allow_all = False
    for entry in entries:
        allow_all |= _patterns._compile_entry(entry, problems, warnings, exact, subdomains, any_port)
    rules = Rules(frozenset(exact), subdomains, any_port, allow_all=allow_all)
    return rules, [str(problem) for problem in problems], warnings


def compiled(entries: list[object]) -> tuple[Rules, list[str], list[str]]:
    rules, problems, warnings = compile_entries(entries)  # type: ignore[arg-type]
    return rules, [str(problem) for problem in problems], warnings


_ENTRIES = near_canonical() | st.sampled_from(
    ["*", "null", "https://*.example.com", "http://localhost:*", "https://bücher.example", " https://a.b"]
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(_ENTRIES, max_size=12), st.integers(min_value=0, max_value=3))
def test_compiling_a_list_agrees_with_the_general_path(entries: list[str], copies: int) -> None:
    # Repeated, the list spans several chunks: whole canonical chunks and mixed ones.
    many: list[object] = list(entries) * (copies * _patterns._CHUNK // max(len(entries), 1) + 1)
    assert compiled(many) == general_entries(many)


@pytest.mark.parametrize(
    "entry",
    [
        "https://APP.example.com",
        "https://app.example.com:443",
        "http://app.example.com:80",
        "https://app.example.com/",
        "https://app.example.com.",
        "https://bücher.example",  # IDNA: encoded to punycode by the general path
        "https://xn--bcher-kva.example",
        "http://127.0.0.1",
        "https://app.example.com:0443",
        "https://app.example.com:65536",
        "https://-app.example.com",
        "https://app-.example.com",
        "https://app..example.com",
        "https://" + "a" * 64 + ".example",
        "https://" + "a." * 126 + "example",  # 254 characters of host
        " https://app.example.com",
        "https://app.example.com\n",
    ],
)
def test_a_non_canonical_entry_never_takes_the_fast_path(entry: str) -> None:
    assert not _patterns._canonical_exact(entry)
    assert not _patterns._all_canonical([entry])
    assert not _patterns._all_canonical(["https://a.example", entry, "https://b.example"])
    assert compiled([entry]) == general_entries([entry])


def test_the_fast_path_takes_the_longest_canonical_host() -> None:
    host = "a." * 124 + "example"  # 255 characters: too long
    assert not _patterns._canonical_exact(f"https://{host}")
    assert _patterns._canonical_exact(f"https://{host[2:]}")  # 253: the limit
    assert _patterns._canonical_exact("https://" + "a" * 63 + ".example:65535")


def test_an_entry_holding_a_newline_is_refused_even_when_its_lines_are_canonical() -> None:
    entries = ["https://a.example", "https://b.example\nhttps://c.example"]
    assert not _patterns._all_canonical(entries)
    rules, problems, _ = compiled(entries)
    assert rules.exact == {"https://a.example"} and problems


def test_a_str_subclass_is_stored_as_a_plain_string() -> None:
    class Sneaky(str):
        __hash__ = str.__hash__

    entries: list[object] = [Sneaky("https://a.example"), "https://b.example"]
    assert not _patterns._all_canonical(entries)
    rules, problems, _ = compiled(entries)
    assert rules.exact == {"https://a.example", "https://b.example"} and not problems
    assert {type(origin) for origin in rules.exact} == {str}


def test_problems_keep_the_order_of_the_entries_across_chunks() -> None:
    canonical = [f"https://t{index}.example" for index in range(3 * _patterns._CHUNK)]
    entries: list[object] = [*canonical, "ftp:/x", *canonical, 7, "https://a.example/path"]
    rules, problems, _ = compiled(entries)
    assert rules.exact == set(canonical)
    assert [problem.split(":", 1)[0] for problem in problems] == [
        "corsengine.E003",
        "corsengine.E017",
        "corsengine.E001",
    ]
    assert (rules, problems) == general_entries(entries)[:2]


def test_entries_of_exact_origins_only_are_the_exact_set_itself() -> None:
    # No copy of a 100,000-origin list at every reload; with a pattern, every rule as text.
    exact_only = Rules.from_entries(["https://a.example", "https://b.example"])
    assert exact_only.entries is exact_only.exact
    mixed = Rules.from_entries(["https://a.example", "https://*.b.example"], regexes=[r"https://c\.example"])
    assert mixed.entries == {"https://a.example", "https://*.b.example", r"https://c\.example"}
    assert Rules.from_entries(["*"]).entries == {"*"}
