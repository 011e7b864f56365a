"""Allowlist entries compiled once into rules that answer in a few dict lookups.

An entry is an exact origin (``https://app.example.com``), ``null``, ``*``, or a wildcard
pattern. Patterns never become user regexes: ``https://*.example.com`` is a suffix lookup
("one or more labels, never the apex"), ``http://localhost:*`` is a host lookup with any
port, and ``https://*.example.com:*`` combines both. The scheme is always literal.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final

from ._codes import E003, E005, E006, E010, E017
from ._origin import Origin, normalize_host, normalize_port, parse_origin, quote, split_configured
from ._regex import OriginRegex, compile_origin_regex
from ._suffixes import public_suffix_under
from .exceptions import ConfigurationError, Problem

ANY_PORT: Final = -1


def _empty() -> Mapping[tuple[str, str, int | None], str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Rules:
    """A snapshot of an allowlist: what a provider returns and the resolver caches.

    Build one with ``Rules.from_entries`` (or ``compile_entries``); the fields are lookup
    tables prepared for the request path, and ``|`` merges two snapshots.

    Examples:
        >>> from corsengine.providers import Rules
        >>> rules = Rules.from_entries(["https://app.example.com", "https://*.partner.example"])
        >>> sorted(rules.entries)
        ['https://*.partner.example', 'https://app.example.com']
        >>> rules.match("https://eu.partner.example", None) is None  # None: a malformed origin
        True
        >>> from corsengine._origin import parse_origin
        >>> rules.match("https://eu.partner.example", parse_origin("https://eu.partner.example"))
        'https://*.partner.example'
        >>> sorted((rules | Rules.from_entries(["http://localhost:*"])).entries)
        ['http://localhost:*', 'https://*.partner.example', 'https://app.example.com']
    """

    exact: frozenset[str] = frozenset()
    # (scheme, parent domain, port or ANY_PORT or None for the default) -> the pattern text
    subdomains: Mapping[tuple[str, str, int | None], str] = field(default_factory=_empty)
    # (scheme, host, ANY_PORT) -> the pattern text, for "http://localhost:*"
    any_port: Mapping[tuple[str, str, int | None], str] = field(default_factory=_empty)
    regexes: tuple[OriginRegex, ...] = ()
    allow_all: bool = False
    # ``entries``, computed once (a 100,000-origin snapshot takes about 10 ms to list).
    _entries: frozenset[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_entries(cls, entries: Iterable[str], *, regexes: Iterable[str] = ()) -> Rules:
        """Compile entries, raising ConfigurationError listing every invalid one."""
        rules, problems, _ = compile_entries(entries, regexes=regexes)
        if problems:
            raise ConfigurationError(problems)
        return rules

    @property
    def entries(self) -> frozenset[str]:
        """Every rule as text: exact origins, patterns, ``*`` and regexes."""
        if self._entries is not None:
            return self._entries
        if not (self.subdomains or self.any_port or self.regexes or self.allow_all):
            return self.exact  # exact origins only (the usual list): no copy of 100,000 entries
        texts = set(self.exact)
        texts.update(self.subdomains.values())
        texts.update(self.any_port.values())
        texts.update(regex.pattern for regex in self.regexes)
        if self.allow_all:
            texts.add("*")
        entries = frozenset(texts)
        object.__setattr__(self, "_entries", entries)  # frozen, but this is a cache of its own fields
        return entries

    def __bool__(self) -> bool:
        return bool(self.exact or self.subdomains or self.any_port or self.regexes or self.allow_all)

    def match(self, origin: str, parsed: Origin | None) -> str | None:
        """The text of the rule that allows ``origin``, or None.

        ``parsed`` is ``parse_origin(origin)``; None means the value is malformed, which
        only an exact ``null`` entry can still match.
        """
        if origin in self.exact:
            return origin
        if parsed is None:
            return None
        if self.any_port:
            rule = self.any_port.get((parsed.scheme, parsed.host, ANY_PORT))
            if rule is not None:
                return rule
        if self.subdomains:
            rule = self._match_subdomain(parsed)
            if rule is not None:
                return rule
        for regex in self.regexes:
            if regex.fullmatch(origin):
                return f"regex {regex.pattern}"
        # Last: a "*" that is refused with credentials must not hide another member's pattern.
        return "*" if self.allow_all else None

    def _match_subdomain(self, parsed: Origin) -> str | None:
        host, scheme, port = parsed.host, parsed.scheme, parsed.port
        if host.startswith("["):
            return None
        # Walk the parent domains: "a.b.example.com" tries "b.example.com", "example.com",
        # "com". The apex itself is never tried, so "*.example.com" never allows
        # "example.com"; and only whole labels are compared, so "evilexample.com" fails.
        dot = host.find(".")
        while dot >= 0:
            parent = host[dot + 1 :]
            rule = self.subdomains.get((scheme, parent, port)) or self.subdomains.get(
                (scheme, parent, ANY_PORT)
            )
            if rule is not None:
                return rule
            dot = host.find(".", dot + 1)
        return None

    def __or__(self, other: Rules) -> Rules:
        if not other:
            return self
        if not self:
            return other
        return Rules(
            exact=self.exact | other.exact,
            subdomains=MappingProxyType({**self.subdomains, **other.subdomains}),
            any_port=MappingProxyType({**self.any_port, **other.any_port}),
            regexes=self.regexes + tuple(r for r in other.regexes if r not in self.regexes),
            allow_all=self.allow_all or other.allow_all,
        )


def _wildcard_problem(raw: str, what: str) -> Problem:
    return Problem(
        E005,
        f"misplaced wildcard in {quote(raw)}: {what}",
        "wildcards take the form 'https://*.example.com' (whole leftmost labels) "
        "or 'http://localhost:*' (any port)",
    )


def _compile_pattern(
    raw: str,
    problems: list[Problem],
    subdomains: dict[tuple[str, str, int | None], str],
    any_port: dict[tuple[str, str, int | None], str],
    exact: set[str],
    warnings: list[str],
) -> None:
    start = len(problems)
    if raw.strip().startswith("*:"):
        problems.append(_wildcard_problem(raw, "the scheme cannot be a wildcard"))
        return
    parts = split_configured(raw, problems)
    if parts is None:
        if raw.strip().startswith("*.") and problems:
            problems[-1] = Problem(
                E003,
                f"wildcard {quote(raw)} has no scheme",
                f"write the scheme, e.g. 'https://{raw.strip()}'",
            )
        return
    scheme, host, port_text = parts.scheme, parts.host, parts.port
    subdomain_wildcard = host.startswith("*.")
    parent = host[2:] if subdomain_wildcard else host
    if "*" in parent:
        where = "only the whole leftmost label may be '*'"
        problems.append(_wildcard_problem(raw, where))
        return
    if host == "*":
        problems.append(_wildcard_problem(raw, "use '*' alone to allow every origin"))
        return
    normalized = normalize_host(raw, parent, problems)
    port: int | None
    if port_text == "*":
        port = ANY_PORT
    else:
        if port_text is not None and "*" in port_text:
            problems.append(_wildcard_problem(raw, "a port wildcard is ':*' alone"))
            return
        port = normalize_port(raw, scheme, port_text, problems)
    if len(problems) > start or normalized is None:
        return
    if subdomain_wildcard:
        # "*.localhost" stays local (RFC 6761); a wildcard over an IP address is no domain.
        ip = normalized.startswith("[") or normalized[-1].isdigit()
        suffix = None if normalized == "localhost" or ip else public_suffix_under(normalized)
        if ip or suffix is not None:
            below = (
                f" ({quote(suffix)} is on the Public Suffix List)" if suffix not in (None, normalized) else ""
            )
            problems.append(
                Problem(
                    E006,
                    f"wildcard {quote(raw)} covers a public suffix or shared hosting domain{below}",
                    "anyone can register a name under it; list your own domain instead, "
                    "e.g. 'https://*.yourapp.example'",
                )
            )
            return
        subdomains[(scheme, normalized, port)] = raw.strip()
    elif port == ANY_PORT:
        any_port[(scheme, normalized, ANY_PORT)] = raw.strip()
    else:
        canonical = Origin(scheme, normalized, port).serialized
        if canonical != raw:
            warnings.append(f"origin {quote(raw)} was normalized to {quote(canonical)}")
        exact.add(canonical)


# An exact origin already in canonical form, as databases and documents usually hold them:
# lower-case http(s), a host of ASCII labels (at most 63 characters, no leading or trailing
# hyphen, no punycode label, left to the general path) whose last label starts with a letter (so never an
# IPv4 address), at most 253 characters in all, and a port that is not the scheme's default.
# Such an entry is stored as it is, without the general path's splitting, IDNA and
# re-serializing. Anything else (upper case, IP addresses, patterns, a default port, a
# trailing slash or dot) takes the general path; a property test holds the two paths equal.
# Written for Python's regex engine: no capturing groups, possessive repeats, so that nothing
# is kept for backtracking from one label or one entry to the next.
_LABEL_SHAPE = r"(?!xn--)[a-z0-9][a-z0-9-]{0,62}+(?<!-)"
_HOST_SHAPE = (
    r"(?=[a-z0-9.-]{1,253}+(?![a-z0-9.-]))"  # at most 253 characters
    rf"(?:{_LABEL_SHAPE}\.)*+(?=[a-z]){_LABEL_SHAPE}"
)
_PORT_SHAPE = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_ORIGIN_SHAPE = (
    rf"http(?:://{_HOST_SHAPE}(?::(?!80\b){_PORT_SHAPE})?"
    rf"|s://{_HOST_SHAPE}(?::(?!443\b){_PORT_SHAPE})?)"
)
_CANONICAL_EXACT: Final = re.compile(_ORIGIN_SHAPE).fullmatch
# The same, over many entries joined by newlines: one call of the regex engine checks a
# whole chunk, which costs a fraction of a call per entry.
_CANONICAL_LINES: Final = re.compile(rf"(?:{_ORIGIN_SHAPE}\n)*+{_ORIGIN_SHAPE}").fullmatch
_CHUNK: Final = 512


def _canonical_exact(entry: str) -> bool:
    return _CANONICAL_EXACT(entry) is not None


# ``active`` while a compile runs in a worker thread (``providers.dynamic.off_loop_if``).
in_worker_thread = threading.local()


def _all_canonical(chunk: Sequence[object]) -> bool:
    """True when every entry of ``chunk`` is a canonical exact origin (see above)."""
    try:
        text = "\n".join(chunk)  # type: ignore[arg-type]  # TypeError: not all strings
    except TypeError:
        return False
    # An entry holding a newline would pass as two lines: the count rules it out. A subclass
    # of str may redefine equality and hashing: it takes the general path, which stores a str.
    return (
        text.count("\n") == len(chunk) - 1
        and _CANONICAL_LINES(text) is not None
        and {*map(type, chunk)} == {str}
    )


def compile_entries(
    entries: Iterable[str], *, regexes: Iterable[str] = ()
) -> tuple[Rules, list[Problem], list[str]]:
    """Compile allowlist entries into Rules; returns (rules, problems, warnings).

    Nothing is raised: callers decide whether problems are fatal (configuration) or reject
    a refreshed document as a whole (providers).
    """
    items: Sequence[object] = entries if isinstance(entries, list | tuple) else list(entries)
    problems: list[Problem] = []
    warnings: list[str] = []
    exact: set[str] = set()
    subdomains: dict[tuple[str, str, int | None], str] = {}
    any_port: dict[tuple[str, str, int | None], str] = {}
    allow_all = False
    pause = getattr(in_worker_thread, "active", False)
    for start in range(0, len(items), _CHUNK):
        if pause and start:
            # In a worker thread: the GIL goes to the event loop between chunks, which would
            # otherwise wait for CPython's switch interval (5 ms) to take it back.
            time.sleep(0)
        chunk = items[start : start + _CHUNK]
        if _all_canonical(chunk):
            # Every entry a canonical exact origin (the usual list): taken whole, a chunk at a
            # time, so that a compile in a worker thread lets the event loop run in between.
            exact.update(chunk)  # type: ignore[arg-type]  # all str, checked
            continue
        for index, entry in enumerate(chunk, start):
            if type(entry) is str and _CANONICAL_EXACT(entry) is not None:
                exact.add(entry)
                continue
            found = len(problems)
            if _compile_entry(entry, problems, warnings, exact, subdomains, any_port):
                allow_all = True
            _place(problems, found, index, "allow_origins")
    compiled = []
    for index, text in enumerate(regexes):
        found = len(problems)
        compiled.append(compile_regex(text, problems))
        _place(problems, found, index)
    rules = Rules(
        exact=frozenset(exact),
        subdomains=MappingProxyType(subdomains),
        any_port=MappingProxyType(any_port),
        regexes=tuple(regex for regex in compiled if regex is not None),
        allow_all=allow_all,
    )
    return rules, problems, warnings


def _compile_entry(
    entry: object,
    problems: list[Problem],
    warnings: list[str],
    exact: set[str],
    subdomains: dict[tuple[str, str, int | None], str],
    any_port: dict[tuple[str, str, int | None], str],
) -> bool:
    """The general path for one entry, into the tables given; True when it is ``*``."""
    if not isinstance(entry, str):
        problems.append(
            Problem(
                E017,
                f"allowlist entry {entry!r} is a {type(entry).__name__}, not a string",
                "origins are strings such as 'https://example.com'",
            )
        )
        return False
    text = entry.strip()
    if text == "*":
        return True
    if text == "null":
        exact.add("null")
    elif "," in text:
        problems.append(
            Problem(
                E010,
                f"allowlist entry {quote(entry)} is a comma-separated string",
                "give one origin per list item",
            )
        )
    else:
        _compile_pattern(entry, problems, subdomains, any_port, exact, warnings)
    return False


def _place(problems: list[Problem], start: int, index: int, field: str | None = None) -> None:
    """Say which entry the problems from ``start`` on are about (their helpers cannot know)."""
    for at in range(start, len(problems)):
        problems[at] = replace(problems[at], field=field or problems[at].field, index=index)


def entry_index(entries: object, entry: str) -> int | None:
    """The position of ``entry`` (such as ``"*"``) in a list of entries, if it is a list."""
    if isinstance(entries, Sequence) and not isinstance(entries, str):
        for index, item in enumerate(entries):
            if isinstance(item, str) and item.strip() == entry:
                return index
    return None


def compile_regex(text: str, problems: list[Problem]) -> OriginRegex | None:
    """Compile an origin regex (always used with fullmatch), reporting errors as problems."""
    return compile_origin_regex(text, problems)


def matches_origin(rules: Rules, origin: str) -> str | None:
    """Convenience for tests and tools: parse then match."""
    return rules.match(origin, parse_origin(origin))
