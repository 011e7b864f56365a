"""What a user's function accepts, checked once at construction (never per request)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


def name_of(function: Any) -> str:
    """A readable name for logs and reasons: the qualified name, or the repr."""
    return getattr(function, "__qualname__", None) or repr(function)


def accepts(function: Callable[..., Any], count: int) -> bool | None:
    """Whether ``function`` can be called with ``count`` positional arguments (None: unknown)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no signature
        return None
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


def is_async(function: Callable[..., Any]) -> bool:
    """True for ``async def`` functions, callables with an ``async def __call__`` and partials of them."""
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        return True
    call = getattr(function, "__call__", None)  # noqa: B004 (a callable object's own method)
    return call is not None and inspect.iscoroutinefunction(call)


def check_listener(listener: object, what: str, argument: str, kind: str) -> None:
    """Raise ConfigurationError (E026) unless ``listener`` can be called with one argument."""
    from ._codes import E026
    from .exceptions import ConfigurationError, Problem

    if not callable(listener) or accepts(listener, 1) is False:
        raise ConfigurationError(
            [
                Problem(
                    E026,
                    f"the {what} listener {name_of(listener)} cannot be called as listener({argument})",
                    f"a listener takes one argument, a corsengine.{kind}",
                    field="listener",
                )
            ]
        )
