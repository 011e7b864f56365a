"""The ``corsengine`` console script: check a request, explain a policy, lint a configuration.

Exit statuses: 0 allowed / clean, 1 refused / warnings found, 2 bad configuration or usage.
Each subcommand is ``set_defaults(func=handler)`` with ``handler(args) -> int``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, Final

from . import __version__
from ._config import ConfigProblem, LoadedConfig, read_config
from ._origin import quote
from ._policy import Policy
from .exceptions import ConfigurationError, CorsEngineWarning, Problem

__all__ = ["build_parser", "main"]

EXIT_OK: Final = 0
EXIT_FOUND: Final = 1  # refused (check) or warnings found (lint)
EXIT_CONFIG: Final = 2  # bad configuration; argparse uses 2 for usage errors too

# Fetch: CORS-safelisted methods; anything else is preflighted by a browser.
SIMPLE_METHODS: Final = frozenset({"GET", "HEAD", "POST"})


def _print_problems(problems: Sequence[Problem], as_json: bool) -> None:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if as_json:
        items = [
            problem.as_dict()
            if isinstance(problem, ConfigProblem)
            else {
                "code": problem.code,
                "message": problem.message,
                "hint": problem.hint,
            }
            for problem in problems
        ]
        _print_json({"error": "configuration", "problems": items})


def _print_json(document: object) -> None:
    print(json.dumps(document, indent=2))


def _load(args: argparse.Namespace, path: str | None = None) -> tuple[LoadedConfig, Policy] | None:
    """Read the configuration and build the policy; None (after reporting) when bad."""
    as_json = bool(getattr(args, "json", False))
    path = args.config if path is None else path
    try:
        loaded = read_config(path)
        with warnings.catch_warnings(record=True) as notes:
            warnings.simplefilter("always", CorsEngineWarning)
            policy = loaded.policy()
    except ConfigurationError as error:
        _print_problems(error.problems, as_json)
        return None
    for note in notes:
        print(f"note: {path}: {note.message}", file=sys.stderr)
    return loaded, policy


# --- check ---------------------------------------------------------------------------------


def _check(args: argparse.Namespace) -> int:
    found = _load(args)
    if found is None:
        return EXIT_CONFIG
    _, policy = found
    headers: list[str] = args.header or []
    preflight = args.preflight
    if preflight is None:
        # A browser preflights a non-simple method, a non-safelisted header, or a private
        # network request; treat any listed header as needing one (the policy decides).
        preflight = args.method not in SIMPLE_METHODS or bool(headers) or args.private_network
    decision = policy.evaluate(
        args.origin,
        args.method,
        ", ".join(headers) if headers else None,
        preflight=preflight,
        private_network=args.private_network,
    )
    if args.json:
        _print_json(
            {
                "allowed": decision.allowed,
                "kind": decision.kind,
                "reason": decision.reason,
                "status": decision.status,
                "body": decision.body,
                "headers": dict(decision.headers),
                "rule": decision.rule,
                "failures": list(decision.failures),
                "request": {
                    "origin": args.origin,
                    "method": args.method,
                    "headers": headers,
                    "preflight": preflight,
                    "private_network": args.private_network,
                },
            }
        )
    else:
        verdict = "allowed" if decision.allowed else "refused"
        print(f"{verdict}: {decision.kind} {quote(args.method)} from {quote(args.origin)}")
        print(f"reason: {decision.reason}")
        if decision.status is not None:
            print(f"status: {decision.status}")
        print("headers:")
        for name, value in decision.headers.items():
            print(f"  {name}: {value}")
    return EXIT_OK if decision.allowed else EXIT_FOUND


# --- explain -------------------------------------------------------------------------------


def _describe(policy: Policy) -> dict[str, Any]:
    rules = policy.rules
    return {
        "allow_all": rules.allow_all,
        "origins": sorted(rules.exact),
        "patterns": sorted({*rules.subdomains.values(), *rules.any_port.values()}),
        "regexes": [regex.pattern for regex in rules.regexes],
        "methods": list(policy.allow_methods),
        "headers": list(policy.allow_headers),
        "any_header": policy.allow_all_headers,
        "expose_headers": list(policy.expose_headers),
        "credentials": policy.allow_credentials,
        "max_age": policy.max_age,
        "preflight_status": policy.preflight_status,
        "private_network": policy.allow_private_network,
    }


def _listing(title: str, values: Sequence[str]) -> list[str]:
    return [f"{title}:", *(f"  {value}" for value in values)] if values else [f"{title}: (none)"]


def _explain(args: argparse.Namespace) -> int:
    found = _load(args)
    if found is None:
        return EXIT_CONFIG
    _, policy = found
    described = _describe(policy)
    if args.json:
        _print_json({"config": args.config, **described})
        return EXIT_OK

    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    headers = ", ".join(described["headers"])
    if described["any_header"]:
        headers += " (and any other header except Authorization)"
    lines = [
        f"policy from {args.config}",
        f"every origin ('*'): {yes(described['allow_all'])}",
        *_listing("origins", described["origins"]),
        *_listing("patterns", described["patterns"]),
        *_listing("regexes (full match)", described["regexes"]),
        f"methods: {', '.join(described['methods']) or '(none)'}",
        f"headers: {headers}",
        f"expose headers: {', '.join(described['expose_headers']) or '(none)'}",
        f"credentials: {yes(described['credentials'])}",
        f"max-age: {described['max_age']} s",
        f"preflight status: {described['preflight_status']}",
        f"private network: {yes(described['private_network'])}",
    ]
    print("\n".join(lines))
    return EXIT_OK


# --- lint ----------------------------------------------------------------------------------


def _lint(args: argparse.Namespace) -> int:
    from ._lint import lint

    found = _load(args)
    if found is None:
        return EXIT_CONFIG
    loaded, _ = found
    findings = lint(loaded)
    if args.json:
        _print_json({"config": args.config, "warnings": [item.as_dict() for item in findings]})
    else:
        for item in findings:
            print(item)
        count = len(findings)
        print(f"{args.config}: {count or 'no'} warning{'s' if count != 1 else ''}")
    return EXIT_FOUND if findings else EXIT_OK


# --- diff ----------------------------------------------------------------------------------

# scheme://host[:port] as it appears in an Origin header, a log line or a URL (path cut off).
_ORIGIN_IN_TEXT = re.compile(r"\bhttps?://[^/\s\"',;<>?#)\]]+|(?<![\w-])null(?![\w-])")


def _origins_from(path: str) -> list[str]:
    """Origins in a file: one per line, or found anywhere in the lines of an access log."""
    with open(path, encoding="utf-8", errors="replace") as file:
        found = (match.group(0) for line in file for match in _ORIGIN_IN_TEXT.finditer(line))
        return list(dict.fromkeys(found))


def _diff(args: argparse.Namespace) -> int:
    old, new = _load(args, args.old), _load(args, args.new)
    if old is None or new is None:
        return EXIT_CONFIG
    old_policy, new_policy = old[1], new[1]
    if args.origins is not None:
        origins = _origins_from(args.origins)
    else:  # every exact origin either file lists
        origins = sorted(old_policy.rules.exact | new_policy.rules.exact)
    flips = []
    for origin in origins:
        before, after = old_policy.evaluate(origin), new_policy.evaluate(origin)
        if before.allowed != after.allowed:
            flip = "would allow" if after.allowed else "would refuse"
            flips.append({"origin": origin, "flip": flip, "old": before.reason, "new": after.reason})
    if args.json:
        _print_json({"checked": len(origins), "flips": flips})
    else:
        for item in flips:
            print(f"{item['flip']}: {quote(item['origin'])}")
            print(f"  old: {item['old']}")
            print(f"  new: {item['new']}")
        print(f"{len(flips)} of {len(origins)} origins would flip")
    return EXIT_FOUND if flips else EXIT_OK


# --- the parser ----------------------------------------------------------------------------


def _config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="policy file: .toml (or pyproject.toml) or .json")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="corsengine",
        description="Check, explain and lint corsengine CORS policies without running a server.",
        epilog="exit status: 0 allowed/clean, 1 refused/warnings, 2 bad configuration or usage",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")

    check = subparsers.add_parser(
        "check",
        help="decide one request: exit 0 allowed, 1 refused",
        description="Decide one request against a policy file and say why.",
    )
    _config_argument(check)
    check.add_argument("--origin", required=True, help="the Origin header, e.g. https://app.example.com")
    check.add_argument("--method", default="GET", help="the method (of the preflight: requested method)")
    check.add_argument(
        "--header",
        action="extend",
        nargs="+",
        metavar="H",
        help="a request header name the browser asks for (repeatable)",
    )
    check.add_argument(
        "--preflight",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="force (or rule out) a preflight; default: as a browser would",
    )
    check.add_argument(
        "--private-network", action="store_true", help="the preflight asks for private network access"
    )
    check.add_argument("--json", action="store_true", help="print the decision as JSON")
    check.set_defaults(func=_check)

    explain = subparsers.add_parser(
        "explain", help="print the compiled policy", description="Print the policy as corsengine compiled it."
    )
    _config_argument(explain)
    explain.add_argument("--json", action="store_true", help="print it as JSON")
    explain.set_defaults(func=_explain)

    lint = subparsers.add_parser(
        "lint",
        help="report risky settings: exit 0 clean, 1 warnings",
        description="Report settings that work but are risky, with stable codes (corsengine.W1xx).",
    )
    _config_argument(lint)
    lint.add_argument("--json", action="store_true", help="print the warnings as JSON")
    lint.set_defaults(func=_lint)

    diff = subparsers.add_parser(
        "diff",
        help="which origins a new policy file would flip: exit 0 none, 1 some",
        description="Compare two policy files on a list of origins (or an access log) before "
        "enforcing the new one.",
    )
    diff.add_argument("old", metavar="OLD", help="the policy file in force")
    diff.add_argument("new", metavar="NEW", help="the candidate policy file")
    diff.add_argument(
        "--origins",
        metavar="FILE",
        help="origins to check, one per line, or an access log to find them in; "
        "default: every exact origin either file lists",
    )
    diff.add_argument("--json", action="store_true", help="print the flips as JSON")
    diff.set_defaults(func=_diff)

    # --- more command groups -------------------------------------------------------------
    # Each optional group adds its subcommands with one call; its extra dependency is
    # imported only when one of its commands runs.
    from ._cli_redis import add_subcommands as add_redis_subcommands

    add_redis_subcommands(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, --version and usage errors
        return exit.code if isinstance(exit.code, int) else EXIT_OK if exit.code is None else EXIT_CONFIG
    status: int = args.func(args)
    return status
