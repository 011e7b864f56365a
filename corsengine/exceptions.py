"""One hierarchy for everything corsengine raises or warns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "ConfigurationError",
    "CorsEngineError",
    "CorsEngineWarning",
    "Problem",
    "ProviderError",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem: a stable code, what is wrong, and how to fix it."""

    code: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class CorsEngineError(Exception):
    """Base class of corsengine's exceptions."""


class ConfigurationError(CorsEngineError, ValueError):
    """A configuration that can never work; lists every problem at once."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} CORS configuration problem{'s' if count != 1 else ''}:\n{lines}")

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(problem.code for problem in self.problems)


class ProviderError(CorsEngineError):
    """A provider could not produce an allowlist (the last good one stays in force)."""


class CorsEngineWarning(UserWarning):
    """A configuration that works but was normalized or is risky."""
