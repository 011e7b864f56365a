"""Validation of provider constructor options: every problem found, then one ConfigurationError.

A constructor creates an ``Options("FileProvider")``, passes each argument through the check
that fits it (``seconds``, ``count``, ``flag``, ...), which records a problem instead of
raising, and calls ``raise_problems()`` once at the end, so a user sees everything wrong at once.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import TypeGuard

from .._codes import E010
from .._codes import E019 as E_FLAG
from .._codes import E024 as E_OPTION
from .._codes import E025 as E_SOURCE
from ..exceptions import ConfigurationError, Problem

__all__ = ["E_FLAG", "E_OPTION", "E_SOURCE", "Options", "redacted", "shown"]

_SHOWN = 60
_AUTHORITY_END = re.compile(r"[/?#]")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")  # what httpx sends: ASCII, one line


def shown(value: object) -> str:
    """``repr(value)``, bounded and on one line, for a problem's message."""
    text = ascii(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def redacted(url: str) -> str:
    """The URL without its password, for log lines and problems."""
    scheme, sep, rest = url.partition("://")
    # RFC 3986 3.2: the authority, where userinfo lives, ends at the first '/', '?' or '#'.
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    after = rest[len(authority) :]
    if sep and "@" in authority:
        credentials, _, host = authority.rpartition("@")
        user = credentials.partition(":")[0]
        return f"{scheme}://{user + ':***' if user else '***'}@{host}{after}"
    return url


class Options:
    """Collects the problems of one provider's constructor arguments."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.problems: list[Problem] = []

    def problem(self, code: str, message: str, hint: str, *, field: str) -> None:
        self.problems.append(Problem(code, f"{self.owner}: {message}", hint, field=field))

    def raise_problems(self) -> None:
        if self.problems:
            raise ConfigurationError(self.problems)

    def wrong_type(
        self, name: str, value: object, expected: str, hint: str, *, show: bool = True, code: str = E_OPTION
    ) -> None:
        kind = type(value).__name__
        what = f"{name}={shown(value)}" if show else name
        if value is None:
            self.problem(code, f"{what} is not {expected}", hint, field=name)
        else:
            article = "an" if kind[:1].lower() in "aeiou" else "a"
            self.problem(code, f"{what} is {article} {kind}, not {expected}", hint, field=name)

    def seconds(
        self, name: str, value: object, *, example: float, none: bool = False, zero: bool = False
    ) -> None:
        """A positive, finite number of seconds (or None when ``none``, or 0 when ``zero``)."""
        if (value is None and none) or (zero and value == 0 and not isinstance(value, bool)):
            return
        hint = f"use a positive number of seconds, e.g. {name}={example}"
        if none:
            hint += f", or {name}=None for no limit"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.wrong_type(name, value, "a number of seconds", hint)
        elif not math.isfinite(value):
            self.problem(E_OPTION, f"{name}={shown(value)} is not a finite number", hint, field=name)
        elif value <= 0:
            self.problem(
                E_OPTION, f"{name}={shown(value)} is out of range: it must be positive", hint, field=name
            )

    def count(self, name: str, value: object, *, minimum: int, example: str) -> None:
        """A whole number of at least ``minimum``."""
        hint = f"use a whole number from {minimum} up, e.g. {name}={example}"
        if isinstance(value, bool) or not isinstance(value, int):
            self.wrong_type(name, value, "a whole number", hint)
        elif value < minimum:
            self.problem(
                E_OPTION, f"{name}={value} is out of range: it must be at least {minimum}", hint, field=name
            )

    def flag(self, name: str, value: object) -> None:
        """True or False (a string such as 'false' would be truthy)."""
        if not isinstance(value, bool):
            self.wrong_type(name, value, "True or False", f"pass {name}=True or {name}=False", code=E_FLAG)

    def text(self, name: str, value: object, *, example: str) -> TypeGuard[str]:
        """A non-empty string; True when it is one."""
        hint = f"pass a non-empty string, e.g. {name}={example!r}"
        if not isinstance(value, str):
            self.wrong_type(name, value, "a string", hint)
            return False
        if not value:
            self.problem(E_OPTION, f"{name} is the empty string", hint, field=name)
            return False
        return True

    def path(self, name: str, value: object, *, none: bool = False) -> bool:
        """A non-empty str or os.PathLike path (or None when ``none``); True when it is one."""
        if value is None and none:
            return True
        if isinstance(value, str | os.PathLike) and isinstance(os.fspath(value), str):
            if os.fspath(value):
                return True
            self.problem(E_OPTION, f"{name} is the empty string", "pass the path of the file", field=name)
            return False
        hint = f"pass a str or pathlib.Path{', or None' if none else ''}"
        self.wrong_type(name, value, "a path", hint)
        return False

    def headers(self, name: str, value: object) -> None:
        """None, or a mapping of header names to values, both strings."""
        if value is None:
            return
        hint = f"pass a dict of strings, e.g. {name}={{'Authorization': 'Bearer <token>'}}"
        if not isinstance(value, Mapping):
            self.wrong_type(name, value, "a mapping", hint)
            return
        for key, item in value.items():
            pair = f"{shown(key)}: {shown(item)}"
            if not isinstance(key, str) or not isinstance(item, str):
                self.problem(E_OPTION, f"{name} entry {pair} is not a pair of strings", hint, field=name)
            elif not _TOKEN.fullmatch(key) or not _FIELD_VALUE.fullmatch(item):
                # RFC 9110 5.1, 5.5: httpx would refuse it on every request, never at start-up.
                self.problem(
                    E_OPTION,
                    f"{name} entry {pair} is not a valid HTTP header",
                    "a header name is a token (no spaces or colons); a value is one line of ASCII",
                    field=name,
                )

    def ordered(self, low: str, low_value: object, high: str, high_value: object) -> None:
        """``low_value <= high_value`` when both are valid numbers (their own checks report the rest)."""
        numbers = [v for v in (low_value, high_value) if _positive(v)]
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            self.problem(
                E_OPTION,
                f"{low}={shown(low_value)} is greater than {high}={shown(high_value)}",
                f"make {low} at most {high}",
                field=low,
            )


def _positive(value: object) -> TypeGuard[int | float]:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    )


def string_not_list(name: str, value: str) -> Problem:
    """The problem of a list option given as one string (``allow_origins="https://a, https://b"``)."""
    return Problem(
        E010,
        f"{name} is the string {value!r}, not a list",
        f"write {name}=[{', '.join(repr(part.strip()) for part in value.split(','))}]",
        field=name,
    )
