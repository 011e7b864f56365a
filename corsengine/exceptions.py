"""One hierarchy for everything corsengine raises or warns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import KW_ONLY, dataclass

__all__ = [
    "ConfigurationError",
    "CorsEngineError",
    "CorsEngineWarning",
    "Problem",
    "ProviderError",
]


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem: a stable code, what is wrong, and how to fix it.

    `ConfigurationError.problems` holds them; the codes are listed in the configuration docs.
    ``field`` names the option the problem is about (``"allow_methods"``), and ``index`` the
    position of the entry in that option's list when the problem is about one entry; both are
    None when unknown (or, for ``index``, when the problem is about the whole option).

    Examples:
        >>> from corsengine import ConfigurationError, Policy, Problem
        >>> problem = Problem("corsengine.E009", "max_age=-1 is out of range", "use 0 to 86400")
        >>> print(problem)
        corsengine.E009: max_age=-1 is out of range (hint: use 0 to 86400)
        >>> try:
        ...     Policy(allow_methods=["GET", "BAD METHOD"])
        ... except ConfigurationError as error:
        ...     print(error.problems[0].field, error.problems[0].index)
        allow_methods 1
    """

    code: str
    message: str
    hint: str = ""
    _: KW_ONLY
    field: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class CorsEngineError(Exception):
    """Base class of corsengine's exceptions: catch it to catch them all.

    Examples:
        >>> from corsengine import CorsEngineError, Policy
        >>> try:
        ...     Policy(allow_origins="https://app.example.com")  # a string, not a list
        ... except CorsEngineError as error:
        ...     print(type(error).__name__)
        ConfigurationError
    """


class ConfigurationError(CorsEngineError, ValueError):
    """A configuration that can never work; lists every problem at once.

    Raised at construction (by `Policy`, `CORSMiddleware`, the providers, `load_policy`)
    and by `Policy.swap`, which then changes nothing. Each problem has a stable code and a
    hint; `codes` lists the codes in order. It is also a `ValueError`.

    Examples:
        >>> from corsengine import ConfigurationError, Policy
        >>> try:
        ...     Policy(allow_origins=["https://app.example.com/v1", "null"], allow_credentials=True)
        ... except ConfigurationError as error:
        ...     print(error.codes)
        ...     print(error.problems[0].message)
        ('corsengine.E001', 'corsengine.E011')
        origin 'https://app.example.com/v1' has a path
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} CORS configuration problem{'s' if count != 1 else ''}:\n{lines}")

    @property
    def codes(self) -> tuple[str, ...]:
        """The stable code of each problem, in order (`corsengine.E001`, ...)."""
        return tuple(problem.code for problem in self.problems)


class ProviderError(CorsEngineError):
    """A provider could not produce an allowlist (the last good one stays in force).

    Raised by a provider's `load()`: the source is unreachable, or what it returned is
    invalid (one bad entry rejects the whole list, naming the entry's code). The resolver
    logs it and keeps the last good allowlist; requests never see it.

    Examples:
        >>> import anyio
        >>> from corsengine import ProviderError
        >>> from corsengine.providers import CallableProvider
        >>> broken = CallableProvider(lambda: ["https://app.example.com", "https://api.example.com/v1"])
        >>> try:
        ...     anyio.run(broken.load)
        ... except ProviderError as error:
        ...     print("corsengine.E001" in str(error))
        True
    """


class CorsEngineWarning(UserWarning):
    """A configuration that works but was normalized or is risky.

    Examples:
        >>> import warnings
        >>> from corsengine import CorsEngineWarning, Policy
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     policy = Policy(allow_origins=["HTTPS://App.Example.com:443/"])
        >>> issubclass(caught[0].category, CorsEngineWarning)
        True
        >>> policy.rules.entries
        frozenset({'https://app.example.com'})
    """
