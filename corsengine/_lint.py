"""``corsengine lint``: settings that work but are risky, each with a stable code.

Errors (a configuration that can never work, or a regex with nested quantifiers) are
``ConfigurationError``\\ s raised by :class:`Policy`; these are warnings about valid ones.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from typing import Any, Final

from . import _regex
from ._codes import CODES, W101, W102, W103, W104, W105, W106, W107, W108, W109, W110
from ._config import ConfigProblem, LoadedConfig, by_line
from ._lines import KeyPath
from ._origin import parse_origin, quote
from ._patterns import compile_entries

__all__ = ["CHROMIUM_MAX_AGE", "WARNINGS", "lint"]

# The regex parser _regex already relies on (private to re); None if a future Python moves it.
_parser: Any = getattr(_regex, "_sre_parse", None)

# Chromium caps Access-Control-Max-Age at 2 hours (Firefox at 24 hours).
CHROMIUM_MAX_AGE: Final = 7200

# The registry's warnings, with the titles the docs' table shows.
WARNINGS: Final = {code: about.title for code, about in CODES.items() if about.severity == "warning"}


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _walk(items: Any) -> list[tuple[str, Any]]:
    return [(str(op), argument) for op, argument in items]


def _has_literal_dot(items: Any) -> bool:
    """True if a bare '.' stands where a literal dot was surely meant (not '.*', '.+')."""
    for name, argument in _walk(items):
        if name == "ANY":
            return True
        if name in _regex._REPEATS:
            sub = _walk(argument[2])
            if len(sub) == 1 and sub[0][0] == "ANY":
                continue  # ".*", ".+", ".{1,3}": a wildcard on purpose
            if _has_literal_dot(argument[2]):
                return True
        elif _has_literal_dot_inside(name, argument):
            return True
    return False


def _has_literal_dot_inside(name: str, argument: Any) -> bool:
    if name == "SUBPATTERN":
        return _has_literal_dot(argument[-1])
    return name == "BRANCH" and any(_has_literal_dot(branch) for branch in argument[1])


def _has_open_prefix(items: Any) -> bool:
    """True if '.*' or '.+' runs straight into a letter: 'https://.*example\\.com'."""
    sequence = _walk(items)
    for (name, argument), (next_name, next_argument) in itertools.pairwise(sequence):
        wildcard = name in _regex._REPEATS and [op for op, _ in _walk(argument[2])] == ["ANY"]
        if wildcard and next_name == "LITERAL" and chr(next_argument) not in "./:":
            return True
    for name, argument in sequence:
        if name == "SUBPATTERN" and _has_open_prefix(argument[-1]):
            return True
        if name == "BRANCH" and any(_has_open_prefix(branch) for branch in argument[1]):
            return True
    return False


_HTTP_IN_REGEX = re.compile(r"https\?|http\(s\)\?|\(https\?\)|http:|\(http\|https\)|\(https\|http\)")


def lint(loaded: LoadedConfig) -> list[ConfigProblem]:
    """Risky settings of a valid configuration, in file order."""
    config = loaded.config
    found: list[ConfigProblem] = []
    credentials = config.allow_credentials

    for index, entry in enumerate(config.allow_origins):
        key: KeyPath = ("allow_origins", index)
        rules, _, _ = compile_entries([entry])
        if credentials and (rules.allow_all or rules.subdomains or rules.any_port):
            found.append(
                loaded.problem(
                    W101,
                    key,
                    f"{quote(entry)} is a wildcard and allow_credentials is true",
                    "every origin it covers (a forgotten or taken-over subdomain, any local port) "
                    "can read authenticated responses; list the exact origins that need credentials",
                )
            )
        if "null" in rules.exact:
            found.append(
                loaded.problem(
                    W103,
                    key,
                    "'null' is allowed",
                    "sandboxed iframes, file:// pages and some redirects all send Origin: null, "
                    "so any site can produce it; remove it",
                )
            )
        hosts = [(scheme, host) for scheme, host, _ in (*rules.subdomains, *rules.any_port)]
        hosts += [(parsed.scheme, parsed.host) for parsed in map(parse_origin, rules.exact) if parsed]
        if any(scheme == "http" and not _is_loopback(host) for scheme, host in hosts):
            found.append(_http_warning(loaded, key, quote(entry)))

    regex = config.allow_origin_regex
    if regex is not None:
        regex_key: KeyPath = ("allow_origin_regex",)
        if credentials:
            found.append(
                loaded.problem(
                    W101,
                    regex_key,
                    f"the regex {quote(regex)} is used with allow_credentials=true",
                    "a regex is easy to get wrong and every origin it matches can read "
                    "authenticated responses; list the exact origins that need credentials",
                )
            )
        if _HTTP_IN_REGEX.search(regex) and "localhost" not in regex and "127\\.0" not in regex:
            found.append(_http_warning(loaded, regex_key, f"the regex {quote(regex)}"))
        if _parser is not None:  # pragma: no branch - None only on a future Python
            parsed = _parser.parse(regex)
            if _has_literal_dot(parsed):
                found.append(
                    loaded.problem(
                        W104,
                        regex_key,
                        f"the regex {quote(regex)} has an unescaped '.', which matches any character",
                        "escape dots meant literally: 'api\\.example\\.com' (else 'apiXexample.com' "
                        "matches, and anyone can register it)",
                    )
                )
            if _has_open_prefix(parsed):
                found.append(
                    loaded.problem(
                        W105,
                        regex_key,
                        f"the regex {quote(regex)} lets anything stand right before the domain name",
                        "'.*example\\.com' also matches 'evilexample.com'; end the wildcard on a "
                        "label boundary: '([a-z0-9-]+\\.)*example\\.com'",
                    )
                )

    if config.max_age > CHROMIUM_MAX_AGE:
        found.append(
            loaded.problem(
                W106,
                ("max_age",),
                f"max_age={config.max_age} is over {CHROMIUM_MAX_AGE} seconds",
                f"Chromium caps preflight caching at {CHROMIUM_MAX_AGE} s; a longer max_age only "
                "delays revocation in other browsers",
            )
        )
    if credentials and "*" in config.allow_headers:
        found.append(
            loaded.problem(
                W107,
                ("allow_headers", config.allow_headers.index("*")),
                "allow_headers=['*'] with allow_credentials=true mirrors every requested header",
                "list the headers the app reads; browsers treat '*' literally with credentials",
            )
        )
    if "*" in config.allow_methods:
        found.append(
            loaded.problem(
                W108,
                ("allow_methods", config.allow_methods.index("*")),
                "allow_methods=['*'] allows every method, DELETE and PUT included",
                "list the methods the app serves cross-origin",
            )
        )
    if config.allow_private_network:
        found.append(
            loaded.problem(
                W109,
                ("allow_private_network",),
                "allow_private_network=true lets public websites reach this private-network service",
                "only for devices and intranet services meant to be driven from public pages",
            )
        )
    if "*" in config.allow_headers and not any(
        name.lower() == "authorization" for name in config.allow_headers
    ):
        found.append(
            loaded.problem(
                W110,
                ("allow_headers", config.allow_headers.index("*")),
                "allow_headers=['*'] here never covers Authorization (Fetch's meaning, which a "
                "policy file and Policy follow); the drop-in CORSMiddleware's keyword form covers "
                "it, as Starlette's does",
                "if the app reads bearer tokens, list 'Authorization' next to '*'",
            )
        )
    found.sort(key=by_line)
    return found


def _http_warning(loaded: LoadedConfig, key: KeyPath, what: str) -> ConfigProblem:
    return loaded.problem(
        W102,
        key,
        f"{what} allows plain http",
        "anyone on the network path can inject script into an http page and act as that origin; "
        "use https (http is fine for localhost and loopback addresses)",
    )
