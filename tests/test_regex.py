"""Origin regexes on RE2 (the re2 extra): linear by construction, so none is refused for its
shape; what RE2 cannot run is E018, naming the construct. The guard for Python's engine is
tested in security/test_dos_bounds.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from corsengine import ConfigurationError, CORSMiddleware, Policy
from corsengine._config import read_config
from corsengine._patterns import Rules
from corsengine._regex import RE2Pattern, check_regex, re2_module
from corsengine.exceptions import ProviderError
from corsengine.providers import BaseProvider, RegexProvider
from corsengine.providers._document import parse_document

from .asgi import call, plain_app
from .security.test_dos_bounds import SAFE_REGEXES, SUPERLINEAR_REGEXES

# Origins on which Python's engine runs the superlinear regexes for seconds to centuries: an
# attacker's label of 'a's (the longest a label may be) that fails at the very end.
HOSTILE = [
    "https://" + "a" * 63 + ".example.org",
    "https://" + ".".join(["a" * 63] * 4) + ".example.org",
    "https://" + "ab" * 31 + ".example.org",
]


def is_re2(regex: object) -> bool:
    return isinstance(regex, RE2Pattern)


def test_regexes_compile_on_re2_when_it_is_installed() -> None:
    for rules in (
        Rules.from_entries([], regexes=[r"https://[a-z]+\.example\.com"]),
        RegexProvider(r"https://[a-z]+\.example\.com").rules,
        parse_document(
            {"origins": [], "regexes": [r"https://[a-z]+\.example\.com"]}, "doc", allow_regexes=True
        ).rules,
    ):
        assert is_re2(rules.regexes[0])
        assert rules.match("https://app.example.com", None) is None  # unparsed: no regex
        assert rules.regexes[0].fullmatch("https://app.example.com")
        assert not rules.regexes[0].fullmatch("https://app.example.com.evil.net")  # a full match


@pytest.mark.usefixtures("no_re2")
def test_without_re2_python_s_engine_is_used() -> None:
    assert isinstance(RegexProvider(r"https://[a-z]+\.example\.com").rules.regexes[0], re.Pattern)


# Refused by the guard without RE2 (test_dos_bounds.py) but for the lookahead, which RE2 lacks.
LINEAR_ON_RE2 = {name: p for name, p in SUPERLINEAR_REGEXES.items() if "(?=" not in p and "\\1" not in p}


@pytest.mark.parametrize("pattern", LINEAR_ON_RE2.values(), ids=LINEAR_ON_RE2.keys())
@pytest.mark.anyio
async def test_a_catastrophic_regex_is_accepted_and_linear_on_re2(pattern: str) -> None:
    regex = RegexProvider(pattern).rules.regexes[0]
    assert is_re2(regex)  # so the evaluations below cannot backtrack
    # Policy(...) would raise E008 here on Python's engine (test_dos_bounds.py): it accepts
    # the regex only because it compiled on RE2.
    policy = Policy(allow_origin_regex=pattern)
    for origin in HOSTILE:
        assert not (await policy.aevaluate(origin)).allowed
    middleware = CORSMiddleware(plain_app(), allow_origin_regex=pattern)
    status, headers, _ = await call(middleware, "GET", [(b"origin", HOSTILE[1].encode())])
    assert status == 200 and b"access-control-allow-origin" not in dict(headers)


# The guard's safe list, but for the lookahead, which RE2 lacks (E018 below).
SAFE_ON_BOTH = {name: p for name, p in SAFE_REGEXES.items() if "(?!" not in p}


@pytest.mark.parametrize("pattern", SAFE_ON_BOTH.values(), ids=SAFE_ON_BOTH.keys())
def test_ordinary_regexes_keep_their_meaning_on_re2(pattern: str) -> None:
    python, re2 = re.compile(pattern), RegexProvider(pattern).rules.regexes[0]
    for origin in [
        "https://app.example.com",
        "https://a.b.example.com",
        "https://pr-1.preview-2.example.com",
        "https://x-y-z-w.example.com",
        "http://localhost:8000",
        "https://example.com",
        "https://app.example.com.evil.net",
        "https://APP.example.com",
        *HOSTILE,
    ]:
        assert bool(re2.fullmatch(origin)) == bool(python.fullmatch(origin)), origin


NOT_IN_RE2 = {
    "backreference": (r"https://([a-z]+)\.\1\.example\.com", "a backreference"),
    "named-backreference": (r"https://(?P<x>[a-z]+)\.(?P=x)\.example\.com", "a backreference"),
    "lookahead": (r"https://(?=app)[a-z]+\.example\.com", "a lookahead"),
    "negative-lookahead": (r"https://(?!admin\.)[a-z]+\.example\.com", "a negative lookahead"),
    "lookbehind": (r"https://[a-z]+(?<!-)\.example\.com", "a negative lookbehind"),
    "atomic-group": (r"https://(?>[a-z]+)\.example\.com", "an atomic group"),
    "possessive": (r"https://[a-z]++\.example\.com", "a possessive quantifier"),
    "conditional": (r"https://(a)?(?(1)b|c)\.example\.com", "a conditional group"),
    "open-minimum": (r"https://[a-z]{,5}\.example\.com", "'{,n}' (RE2 reads it literally; write '{0,n}')"),
    "verbose": (r"(?x) https:// [a-z]+ \.example\.com", "verbose mode"),
    "nested-lookbehind": (r"https://(?:[a-z]+(?<!-)\.)+example\.com", "a negative lookbehind"),
    "end-of-string": (r"https://[a-z]+\.example\.com\Z", "it (invalid escape sequence: \\Z)"),
}


@pytest.mark.parametrize(("pattern", "construct"), NOT_IN_RE2.values(), ids=NOT_IN_RE2.keys())
def test_what_re2_cannot_run_is_e018_naming_the_construct(pattern: str, construct: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Policy(allow_origin_regex=pattern)
    assert raised.value.codes == ("corsengine.E018",)
    assert f"cannot run {construct}" in raised.value.problems[0].message
    assert "hint: RE2 keeps every regex linear" in str(raised.value)


def test_a_syntax_error_is_still_e007_on_re2() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Policy(allow_origin_regex="https://(x")
    assert raised.value.codes == ("corsengine.E007",)


def test_e018_in_a_file_names_the_field_and_a_document_is_rejected_whole(tmp_path: Path) -> None:
    path = tmp_path / "cors.toml"
    path.write_text('allow_origins = ["https://a.example"]\nallow_origin_regex = "https://(?!x)[a-z]+"\n')
    with pytest.raises(ConfigurationError) as raised:
        read_config(path).policy()
    [problem] = raised.value.problems
    assert (problem.code, problem.field, problem.line) == ("corsengine.E018", "allow_origin_regex", 2)  # type: ignore[attr-defined]
    with pytest.raises(ProviderError, match=r"corsengine\.E018"):
        parse_document({"origins": [], "regexes": [r"https://(a)\1"]}, "doc", allow_regexes=True)


class CountingRegex:
    """Wraps a compiled regex and counts the calls that reach it."""

    def __init__(self, regex: object) -> None:
        self.regex = regex
        self.pattern = getattr(regex, "pattern", "")
        self.calls = 0

    def fullmatch(self, value: str) -> object:
        self.calls += 1
        return self.regex.fullmatch(value)  # type: ignore[attr-defined]


class RegexRules(BaseProvider):
    def __init__(self, regex: CountingRegex) -> None:
        self.rules = Rules(regexes=(regex,))

    async def load(self) -> Rules:
        return self.rules


@pytest.mark.anyio
async def test_the_regex_is_asked_only_on_a_memo_miss() -> None:
    counting = CountingRegex(RegexProvider(r"https://(?:[a-z0-9]+\.)+example\.com").rules.regexes[0])
    policy = Policy(allow_origins=RegexRules(counting))
    for _ in range(5):
        assert (await policy.aevaluate("https://a.b.example.com")).allowed
        assert not (await policy.aevaluate("https://a.b.example.net")).allowed
    assert counting.calls == 2
    middleware = CORSMiddleware(plain_app(), policy=policy)
    for _ in range(5):
        _, headers, _ = await call(middleware, "GET", [(b"origin", b"https://c.example.com")])
        assert (b"access-control-allow-origin", b"https://c.example.com") in headers
    assert counting.calls == 3


def test_re2_is_imported_only_when_a_regex_is_compiled() -> None:
    code = (
        "import sys\n"
        "from corsengine import CORSMiddleware, Policy\n"
        "Policy(allow_origins=['https://*.example.com'])\n"
        "assert 're2' not in sys.modules\n"
        "Policy(allow_origin_regex='https://[a-z]+')\n"
        "assert 're2' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_same_regex_from_two_sources_is_kept_once() -> None:
    one = Rules.from_entries([], regexes=[r"https://[a-z]+\.example\.com"])
    two = Rules.from_entries(["https://a.example"], regexes=[r"https://[a-z]+\.example\.com"])
    assert len((one | two).regexes) == 1
    assert hash(one.regexes[0]) == hash(two.regexes[0])
    assert repr(one.regexes[0]) == "RE2Pattern('https://[a-z]+\\\\.example\\\\.com')"


def test_without_the_package_re2_module_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "re2", None)  # what an absent package looks like to import
    assert re2_module.__wrapped__() is None


# The guard on constructs the tables in test_dos_bounds.py do not reach.
GUARD = {
    "digit-class": (r"https://[\d]+\.example\.com", True),
    "negated-class": (r"https://(?:[^.x]+\.)+example\.com", True),
    "word-class": (r"https://(?:[\w-]+\.)+example\.com", True),
    "not-word-in-negated-class": (r"https://(?:[^\W_]+\.)+example\.com", True),
    "not-literal": (r"https://x[^x]*x\.example\.com", True),
    "atomic-group": (r"https://(?>[a-z]+)\.example\.com", True),
    "atomic-group-in-a-repeat": (r"https://(?:(?>[a-z]+)\.)+example\.com", True),
    "lookahead-in-a-repeat": (r"https://(?:(?=[a-z])[a-z0-9]+\.)+example\.com", True),
    "scoped-ignorecase": (r"https://(?i:(?:[a-z]+\.)+)example\.com", True),
    "conditional": (r"https://(a)?(?(1)b|c)\.example\.com", True),
    "backreference": (r"https://([a-z]+)-\1\.example\.com", True),
    "overlapping-categories": (r"https://(?:\d+[0-9]*\.)+example\.com", False),
    "scoped-ignorecase-overlap": (r"https://(?i:(?:[a-z]+A)+)\.example\.com", False),
    "conditional-in-a-repeat": (r"https://(x)?(?:(?(1)ab|ac)\.)+example\.com", False),
    # Linear in fact, but the guard does not follow a backreference: refused to be safe.
    "backreference-in-a-repeat": (r"https://(?:(a)\1x)+\.example\.com", False),
}


@pytest.mark.usefixtures("no_re2")
@pytest.mark.parametrize(("pattern", "accepted"), GUARD.values(), ids=GUARD.keys())
def test_the_guard_on_classes_groups_and_flags(pattern: str, accepted: bool) -> None:
    problem = check_regex(re.compile(pattern))
    assert (problem is None) is accepted, problem
