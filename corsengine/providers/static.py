"""Static allowlists: exact origins, wildcard patterns and regexes, compiled once."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from .._codes import E010
from .._patterns import Rules, compile_entries
from ..exceptions import ConfigurationError, CorsEngineWarning, Problem
from ._base import BaseProvider


def compile_or_raise(entries: Iterable[str], regexes: Iterable[str] = ()) -> tuple[Rules, list[Problem]]:
    """Compile configuration entries; warn about normalization, return problems."""
    rules, problems, notes = compile_entries(entries, regexes=regexes)
    for note in notes:
        warnings.warn(note, CorsEngineWarning, stacklevel=4)
    return rules, problems


class StaticProvider(BaseProvider):
    """A fixed list of exact origins and wildcard patterns (and optionally regexes).

    A list given as ``allow_origins=`` becomes one; build it yourself to combine it with
    other providers. Invalid entries raise `ConfigurationError`, all at once.

    Examples:
        >>> from corsengine.providers import StaticProvider
        >>> StaticProvider(["https://app.example.com", "https://*.example.com"])
        StaticProvider(['https://*.example.com', 'https://app.example.com'])
    """

    def __init__(self, entries: Iterable[str] = (), *, regexes: Iterable[str] = ()) -> None:
        if isinstance(entries, str):
            raise ConfigurationError([string_not_list("allow_origins", entries)])
        self.rules, problems = compile_or_raise(entries, regexes)
        if problems:
            raise ConfigurationError(problems)

    @classmethod
    def from_rules(cls, rules: Rules) -> StaticProvider:
        """A provider for rules compiled (and validated) elsewhere."""
        provider = cls.__new__(cls)
        provider.rules = rules
        return provider

    async def load(self) -> Rules:
        return self.rules

    def __repr__(self) -> str:
        return f"{type(self).__name__}({sorted(self.rules.entries)!r})"


class RegexProvider(StaticProvider):
    r"""Origins that fully match a regular expression (never a partial match).

    Regexes with nested quantifiers, which backtrack catastrophically, are refused
    (`corsengine.E008`). Prefer wildcard patterns where they suffice.

    Examples:
        >>> from corsengine import Policy
        >>> from corsengine.providers import RegexProvider
        >>> policy = Policy(allow_origins=RegexProvider(r"https://pr-[0-9]+\.preview\.example"))
        >>> policy.evaluate("https://pr-42.preview.example").allowed
        True
        >>> policy.evaluate("https://pr-42.preview.example.evil.net").allowed  # a full match only
        False
    """

    def __init__(self, *patterns: str) -> None:
        super().__init__((), regexes=patterns)


def string_not_list(name: str, value: str) -> Problem:
    return Problem(
        E010,
        f"{name} is the string {value!r}, not a list",
        f"write {name}=[{', '.join(repr(part.strip()) for part in value.split(','))}]",
        field=name,
    )
