r"""Providers produce allowlists; the resolver caches them; ``|`` combines them.

Write your own by implementing `Provider` (an async ``load()`` returning `Rules`, and a
``ttl``) or, to decide per origin, `Predicate`; subclass `BaseProvider` or `PredicateBase`
for ``|`` and defaults, or implement the protocol on any class.
Optional providers (remote JSON, file, Redis) are imported lazily, so their extra
dependencies are only needed when used.

Examples:
    >>> from corsengine import Policy
    >>> from corsengine.providers import RegexProvider, StaticProvider
    >>> origins = StaticProvider(["https://app.example.com"]) | RegexProvider(r"https://pr-[0-9]+\.preview\.example")
    >>> policy = Policy(allow_origins=origins)
    >>> policy.evaluate("https://pr-42.preview.example").allowed
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._patterns import Rules
from ..types import Predicate, Provider
from ._base import DEFAULT_TTL, BaseProvider, PredicateBase, UnionProvider
from .dynamic import CallableProvider, PredicateProvider
from .static import RegexProvider, StaticProvider

if TYPE_CHECKING:  # "as" re-exports them for type checkers, though __all__ leaves them out
    from .file import FileProvider as FileProvider
    from .redis import RedisProvider as RedisProvider
    from .remote import RemoteJSONProvider as RemoteJSONProvider

# What ``import *`` takes: the providers that need nothing optional. The lazy ones are not
# listed, or a star import would load httpx and redis, and fail where they are missing.
__all__ = [
    "DEFAULT_TTL",
    "BaseProvider",
    "CallableProvider",
    "Predicate",
    "PredicateBase",
    "PredicateProvider",
    "Provider",
    "RegexProvider",
    "Rules",
    "StaticProvider",
    "UnionProvider",
]

_LAZY: dict[str, str] = {
    "FileProvider": ".file",
    "RedisProvider": ".redis",
    "RemoteJSONProvider": ".remote",
}
# The optional dependency -> the extra that installs it.
_EXTRAS: dict[str, str] = {"httpx": "remote", "redis": "redis"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corsengine.providers' has no attribute {name!r}")
    from importlib import import_module

    try:
        loaded = import_module(module, __name__)
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        extra = _EXTRAS.get(missing)
        if extra is None:
            raise
        raise ImportError(f"{name} needs {missing}: pip install 'corsengine[{extra}]'") from error
    return getattr(loaded, name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
