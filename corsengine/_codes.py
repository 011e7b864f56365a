"""Every code corsengine reports, and what it means: one registry.

A problem is created with one of these constants (``Problem(E009, ...)``), never with the
code spelled out, so a code that is not here cannot be raised (a test holds the package to
it). Each code has a severity (an error refuses the configuration; a warning is a ``lint``
finding about one that works) and the title that the docs' tables show: the table of
``docs/configuration.md`` lists the errors and the one of ``docs/cli.md`` the warnings, and a
test holds both equal to this registry (django-cors-headers' ``checks.py`` is the model).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

__all__ = ["CODES", "Code"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Code:
    """A code, its severity, and its title (Markdown, as the docs' tables show it)."""

    code: str
    severity: Severity
    title: str


_codes: dict[str, Code] = {}


def _add(number: str, severity: Severity, title: str) -> str:
    code = f"corsengine.{number}"
    if code in _codes:  # pragma: no cover - a slip in this module, caught at import
        raise ValueError(f"{code} is registered twice")
    _codes[code] = Code(code, severity, title)
    return code


def _error(number: str, title: str) -> str:
    return _add(number, "error", title)


def _warning(number: str, title: str) -> str:
    return _add(number, "warning", title)


# The titles are the docs' tables, word for word, Markdown included.
E001: Final = _error("E001", "an origin with a path, query or fragment")
E002: Final = _error("E002", "an origin with userinfo (`user@`)")
E003: Final = _error("E003", "no scheme, or an invalid one (including a wildcard written without a scheme)")
E004: Final = _error("E004", "an invalid host or port")
E005: Final = _error(
    "E005",
    "a misplaced wildcard (`https://*example.com`, `https://a.*.example.com`, `*://…`, `:8*`)",
)
E006: Final = _error(
    "E006",
    "a wildcard over a name on the [Public Suffix List](https://publicsuffix.org/) (ICANN and "
    "private sections), or over a name with such a suffix below it (`https://*.com`, "
    "`https://*.co.uk`, `https://*.github.io`, `https://*.pythonanywhere.com`, "
    "`https://*.amazonaws.com`)",
)
E007: Final = _error("E007", "a regex that does not compile (on Python's `re`)")
E008: Final = _error(
    "E008",
    "without RE2: a regex that can backtrack catastrophically ([what is refused](#origin-regexes))",
)
E009: Final = _error("E009", "`max_age` outside 0 to 86400 or not an integer")
E010: Final = _error("E010", "a comma-separated string where a list is meant")
E011: Final = _error("E011", "`null` allowed together with credentials")
E012: Final = _error(
    "E012",
    "`*`, or a catch-all `allow_origin_regex` (`.*`, `https?://.*`), with credentials in the "
    "native `Policy` without the explicit opt-in (the drop-in mirrors the origin as Starlette "
    "does and logs a warning)",
)
E013: Final = _error("E013", "a `preflight_status` that is not 2xx")
E014: Final = _error("E014", "a method that is not an HTTP token")
E015: Final = _error("E015", "a header name that is not an HTTP token")
E016: Final = _error(
    "E016",
    "`allow_origins`, `allow_methods`, `allow_headers` or `expose_headers` of an unsupported type"
    " (a number, `None`)",
)
E017: Final = _error("E017", "an allowlist entry that is not a string")
E018: Final = _error(
    "E018",
    "with RE2: a regex using what RE2 cannot run (a backreference, a lookahead or lookbehind, an "
    "atomic group, a possessive quantifier, a conditional group, `{,n}`, `(?x)`), named in the "
    "message",
)
E019: Final = _error(
    "E019",
    "`allow_credentials`, `allow_private_network` or another flag (of a policy or a provider) "
    'that is not `True` or `False` (`"false"` is a truthy string)',
)
E020: Final = _error(
    "E020",
    "a policy file that cannot be read, or is neither `.toml` nor `.json` ([cli.md](cli.md))",
)
E021: Final = _error("E021", "a policy file with a TOML or JSON syntax error or a duplicate JSON key")
E022: Final = _error("E022", "a policy file with an unknown key or a value of the wrong type")
E023: Final = _error(
    "E023",
    '`expose_headers=["*"]` with credentials: Fetch reads `*` as a header named `*` on '
    "credentialed responses",
)
E024: Final = _error(
    "E024",
    "a provider option of the wrong type or out of range: a string, a bool, `None`, NaN or "
    "infinity where seconds are meant, a zero or negative interval, TTL or timeout, `min_ttl` "
    "over `max_ttl`, a count that is not a whole number ([providers.md](providers.md))",
)
E025: Final = _error(
    "E025",
    "a provider source that can never be read: a URL that is not `http(s)://` (remote) or "
    "`redis://`, `rediss://`, `unix://` (Redis), a file whose format is neither JSON nor TOML",
)
E026: Final = _error(
    "E026",
    "a user function of the wrong shape: `allow_origins` taking arguments, a predicate not taking"
    " `(origin)` or `(origin, scope)`, a `cache_key` not taking `(origin, scope)` or given to a "
    "predicate of the origin alone, a change listener not taking `(change)`, a decision listener "
    "not taking `(event)`",
)
E027: Final = _error(
    "E027",
    "`routes=` that is not a mapping of path prefixes (starting with `/`) to `Policy` objects",
)
E028: Final = _error("E028", "`shadow=` that is not a `Policy`")
E030: Final = _error(
    "E030",
    "`corsengine redis add` / `add_origins()` given `*` without `allow_any=True` "
    "([providers.md](providers.md))",
)
W101: Final = _warning(
    "W101",
    "credentials with a wildcard pattern, a regex or `*`: every origin they cover can read "
    "authenticated responses",
)
W102: Final = _warning(
    "W102",
    "a plain-http origin (or a regex allowing http) other than localhost and loopback addresses",
)
W103: Final = _warning("W103", "the `null` origin is allowed (sandboxed iframes and `file://` pages send it)")
W104: Final = _warning(
    "W104",
    "a regex with an unescaped `.` (`https://api.example.com` also matches `https://apiXexample.com`)",
)
W105: Final = _warning(
    "W105",
    "a regex lets anything stand right before the domain (`https://.*example\\.com` matches "
    "`evilexample.com`)",
)
W106: Final = _warning("W106", "`max_age` over 7200 seconds, Chromium's cap")
W107: Final = _warning("W107", '`allow_headers = ["*"]` with credentials')
W108: Final = _warning("W108", '`allow_methods = ["*"]`')
W109: Final = _warning("W109", "`allow_private_network = true`")
W110: Final = _warning(
    "W110",
    '`allow_headers = ["*"]` without `Authorization`: a policy file follows Fetch, where `*` '
    "never covers `Authorization` (the drop-in `CORSMiddleware`'s keyword form follows Starlette,"
    " where it does)",
)

CODES: Final[Mapping[str, Code]] = MappingProxyType(_codes)
