"""A policy's options, validated and compiled once: the `Settings` every decision reads.

``compile_settings()`` is where every keyword of ``Policy`` (and so of the drop-in
``CORSMiddleware`` and of a policy file) is checked: all problems are collected and raised
together, each with its code. ``DEFAULTS`` is the single home of the Starlette-compatible
defaults. ``origins_provider()`` turns ``allow_origins`` (a list, a function or a provider)
into the provider the resolver serves.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, cast

from ._callables import accepts, name_of
from ._codes import E009, E011, E012, E013, E014, E015, E016, E019, E023, E026
from ._patterns import Rules, compile_regex, entry_index
from .exceptions import ConfigurationError, Problem
from .providers._base import UnionProvider
from .providers._options import string_not_list
from .providers.dynamic import CallableProvider
from .providers.static import StaticProvider, compile_and_warn
from .types import Provider

logger = logging.getLogger("corsengine")

# Starlette's list, so that allow_methods=["*"] means the same in the drop-in.
ALL_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY")
# Fetch: CORS-safelisted request headers, always allowed (Starlette lists them too).
SAFELISTED_HEADERS: Final = ("Accept", "Accept-Language", "Content-Language", "Content-Type")
MAX_MAX_AGE: Final = 86400
TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Origins no allowlist has reason to allow together: a regex that fully matches two of them
# allows (nearly) every origin, which with credentials is E012's misconfiguration.
_PROBE_ORIGINS: Final = (
    "https://corsengine-probe.invalid",
    "http://attacker.example.net",
    "https://xn--80ak6aa92e.xn--p1ai",
    "http://198.51.100.7:8080",
)

OriginsSpec = Iterable[str] | Callable[[], Any] | Provider

# Starlette's CORSMiddleware defaults, which Policy, the drop-in and policy files share.
DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        "allow_origins": (),
        "allow_methods": ("GET",),
        "allow_headers": (),
        "allow_credentials": False,
        "allow_origin_regex": None,
        "allow_private_network": False,
        "expose_headers": (),
        "max_age": 600,
        "preflight_status": 200,
    }
)


@dataclass(frozen=True, slots=True)
class Settings:
    """A policy's options as the decision reads them: validated, normalized, pre-encoded."""

    allow_credentials: bool
    allow_private_network: bool
    starlette_compatible: bool
    unsafe_allow_any_origin_with_credentials: bool
    allow_methods: tuple[str, ...]
    methods: frozenset[str]
    # The safelisted headers and the explicit names, sorted; "*" is allow_all_headers.
    allow_headers: tuple[str, ...]
    headers: frozenset[str]  # allow_headers, lower case
    allow_all_headers: bool
    # Fetch: a "*" in Access-Control-Allow-Headers never covers Authorization; Starlette's
    # "*" mirrors whatever is asked, Authorization included.
    star_covers_authorization: bool
    expose_headers: tuple[str, ...]
    max_age: int
    preflight_status: int
    regex: Rules  # allow_origin_regex, its own member of the allowlist
    # Prepared once: the tail of every allowed actual response, and of every preflight.
    actual_tail: Mapping[str, str]
    encoded_tail: tuple[tuple[bytes, bytes], ...]
    methods_value: str
    headers_value: str


def compile_settings(
    *,
    allow_origins: OriginsSpec,
    allow_methods: object,
    allow_headers: object,
    allow_credentials: object,
    allow_origin_regex: str | None,
    allow_private_network: object,
    expose_headers: object,
    max_age: object,
    preflight_status: object,
    unsafe_allow_any_origin_with_credentials: object,
    starlette_compatible: object,
    problems: list[Problem],
) -> tuple[Settings, Provider]:
    """The settings of these options and the provider of ``allow_origins``; each problem found
    is appended to ``problems``, in the order of the arguments.

    The result is meaningful only when no problem was found (the caller raises then).
    """
    credentials = _flag("allow_credentials", allow_credentials, problems)
    private_network = _flag("allow_private_network", allow_private_network, problems)
    compatible = _flag("starlette_compatible", starlette_compatible, problems)
    unsafe = _flag(
        "unsafe_allow_any_origin_with_credentials", unsafe_allow_any_origin_with_credentials, problems
    )
    origins = origins_provider(allow_origins, problems)
    regex = Rules()
    if allow_origin_regex is not None:
        compiled = compile_regex(allow_origin_regex, problems)
        regex = Rules(regexes=(compiled,)) if compiled is not None else regex
    methods = _names("allow_methods", allow_methods, E014, problems)
    if "*" in methods:
        methods = list(ALL_METHODS)
    headers = _names("allow_headers", allow_headers, E015, problems)
    expose = _names("expose_headers", expose_headers, E015, problems)
    if "*" in expose and credentials:
        problems.append(
            Problem(
                E023,
                "expose_headers=['*'] with allow_credentials=True exposes no header at all",
                "Fetch reads '*' as a header literally named '*' on credentialed responses; "
                "list the headers to expose, e.g. expose_headers=['X-Total']",
                field="expose_headers",
                index=entry_index(expose_headers, "*"),
            )
        )
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 0 <= max_age <= MAX_MAX_AGE:
        problems.append(
            Problem(
                E009,
                f"max_age={max_age!r} is out of range",
                f"use whole seconds from 0 to {MAX_MAX_AGE}; browsers cap it lower anyway",
                field="max_age",
            )
        )
        max_age = 0
    if isinstance(preflight_status, bool) or preflight_status not in range(200, 300):
        problems.append(
            Problem(
                E013,
                f"preflight_status={preflight_status!r} is not 2xx",
                "Fetch fails a preflight whose status is not ok (200-299); use 200 or 204",
                field="preflight_status",
            )
        )
        preflight_status = 200
    explicit = [name for name in headers if name != "*"]
    allow_headers_ = tuple(sorted(set(SAFELISTED_HEADERS) | set(explicit)))
    tail: dict[str, str] = {}
    if credentials:
        tail["Access-Control-Allow-Credentials"] = "true"
    if expose:
        tail["Access-Control-Expose-Headers"] = ", ".join(expose)
    settings = Settings(
        allow_credentials=credentials,
        allow_private_network=private_network,
        starlette_compatible=compatible,
        unsafe_allow_any_origin_with_credentials=unsafe,
        allow_methods=tuple(methods),
        methods=frozenset(methods),
        allow_headers=allow_headers_,
        headers=frozenset(name.lower() for name in allow_headers_),
        allow_all_headers="*" in headers,
        star_covers_authorization=compatible,
        expose_headers=tuple(expose),
        max_age=max_age,
        preflight_status=cast(int, preflight_status),
        regex=regex,
        actual_tail=MappingProxyType(tail),
        encoded_tail=tuple((name.lower().encode(), value.encode("latin-1")) for name, value in tail.items()),
        methods_value=", ".join(methods),
        headers_value=", ".join(allow_headers_),
    )
    return settings, origins


def accept_any_origin(settings: Settings, rules: Rules) -> Settings:
    """The drop-in's Starlette compatibility: a static allowlist letting any origin in with
    credentials mirrors the origin (Starlette does), said loudly in the log."""
    if not (settings.allow_credentials and settings.starlette_compatible and allows_any_origin(rules)):
        return settings
    logger.warning(
        "corsengine: this CORS configuration lets every origin read credentialed responses "
        "(allow_origins=['*'] or a catch-all allow_origin_regex with allow_credentials=True; "
        "kept for Starlette compatibility): list the trusted origins instead"
    )
    return dataclasses.replace(settings, unsafe_allow_any_origin_with_credentials=True)


def allows_any_origin(rules: Rules) -> bool:
    """True when ``rules`` allow every origin: ``*``, or a regex matching unrelated probes."""
    if rules.allow_all:
        return True
    return any(sum(1 for probe in _PROBE_ORIGINS if regex.fullmatch(probe)) >= 2 for regex in rules.regexes)


def check_credentials(settings: Settings, rules: Rules, problems: list[Problem], origins: object) -> None:
    """E012 and E011: static rules that let every site, or ``null``, in with credentials.

    ``origins`` is ``allow_origins`` as given, to say which entry is at fault.
    """
    if not settings.allow_credentials:
        return
    if (
        allows_any_origin(rules)
        and not settings.unsafe_allow_any_origin_with_credentials
        and not settings.starlette_compatible
    ):
        what = "allow_origins=['*']" if rules.allow_all else "a catch-all allow_origin_regex"
        problems.append(
            Problem(
                E012,
                f"{what} with allow_credentials=True lets every site read authenticated responses",
                "list the trusted origins, or pass unsafe_allow_any_origin_with_credentials=True "
                "if that is really meant",
                field="allow_origins" if rules.allow_all else "allow_origin_regex",
                index=entry_index(origins, "*") if rules.allow_all else None,
            )
        )
    if "null" in rules.exact:
        problems.append(
            Problem(
                E011,
                "'null' is allowed together with credentials",
                "sandboxed iframes and file:// pages all send Origin: null; never trust it with credentials",
                field="allow_origins",
                index=entry_index(origins, "null"),
            )
        )


def origins_provider(value: OriginsSpec, problems: list[Problem]) -> Provider:
    """The provider of ``allow_origins``: a list is compiled, a function is called per TTL,
    a provider is used as it is."""
    if isinstance(value, str):
        problems.append(string_not_list("allow_origins", value))
    # A provider is anything with a load() method (the Provider protocol); asked directly,
    # since isinstance() on a runtime-checkable protocol costs about 16 µs.
    elif callable(getattr(value, "load", None)) and not isinstance(value, type):
        return cast(Provider, value)
    elif callable(value):
        if accepts(value, 0) is False:
            problems.append(
                Problem(
                    E026,
                    f"allow_origins is the function {name_of(value)}, which cannot be called "
                    "without arguments",
                    "allow_origins takes a zero-argument function returning a list of origins; "
                    "to decide per origin, pass PredicateProvider(fn)",
                    field="allow_origins",
                )
            )
            return StaticProvider()
        try:
            return CallableProvider(value)
        except ConfigurationError as error:
            problems.extend(error.problems)
    elif isinstance(value, Iterable):
        rules, found = compile_and_warn(value)
        problems.extend(found)
        return StaticProvider.from_rules(rules)
    else:
        problems.append(
            Problem(
                E016,
                f"allow_origins is a {type(value).__name__}",
                "pass a list of origins, a zero-argument function, or a provider",
                field="allow_origins",
            )
        )
    return StaticProvider()


def with_regex(settings: Settings, origins: Provider) -> Provider:
    """``origins`` and ``allow_origin_regex`` together (the regex is its own member, so that
    ``swap()`` replaces only ``allow_origins``)."""
    if not settings.regex:
        return origins
    return UnionProvider([origins, StaticProvider.from_rules(settings.regex)])


def static_rules(origins: Provider) -> Rules:
    """The rules of a static allowlist, known without I/O (empty for a dynamic one)."""
    return origins.rules if isinstance(origins, StaticProvider) else Rules()


def _names(name: str, value: object, code: str, problems: list[Problem]) -> list[str]:
    """The HTTP tokens of a list option (methods, header names), every bad entry reported."""
    if isinstance(value, str):
        problems.append(string_not_list(name, value))
        return []
    if isinstance(value, bytes) or not isinstance(value, Iterable):
        problems.append(
            Problem(
                E016,
                f"{name} is a {type(value).__name__}, not a list",
                f"pass a list of names, e.g. {name}=['X-Token']",
                field=name,
            )
        )
        return []
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not TOKEN.fullmatch(item):
            problems.append(
                Problem(
                    code,
                    f"{name} entry {item!r} is not a valid HTTP token",
                    "check for spaces or commas",
                    field=name,
                    index=index,
                )
            )
        else:
            out.append(item)
    return out


def _flag(name: str, value: object, problems: list[Problem]) -> bool:
    if not isinstance(value, bool):
        problems.append(
            Problem(
                E019,
                f"{name}={value!r} is not True or False",
                f"a string such as 'false' is truthy; write {name}=True or {name}=False",
                field=name,
            )
        )
        return False
    return value
