"""Providers produce allowlists; the resolver caches them; ``|`` combines them.

Write your own by implementing :class:`~corsengine.types.Provider` (an async ``load()``
returning :class:`Rules`, and a ``ttl``), or subclass :class:`BaseProvider`.
Optional providers (remote JSON, file, Redis) are imported lazily, so their extra
dependencies are only needed when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._patterns import Rules
from ..types import Provider
from ._base import DEFAULT_TTL, BaseProvider, PredicateBase, UnionProvider
from .dynamic import CallableProvider, PredicateProvider
from .static import RegexProvider, StaticProvider

if TYPE_CHECKING:
    pass

__all__ = [
    "DEFAULT_TTL",
    "BaseProvider",
    "CallableProvider",
    "PredicateBase",
    "PredicateProvider",
    "Provider",
    "RegexProvider",
    "Rules",
    "StaticProvider",
    "UnionProvider",
]

_LAZY: dict[str, str] = {}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corsengine.providers' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
