"""corsengine: a dynamic-origin CORS policy engine for ASGI applications."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import providers
from ._events import DecisionEvent
from ._middleware import CORSMiddleware
from ._policy import Decision, Policy
from ._resolver import Change, SourceHealth
from .exceptions import ConfigurationError, CorsEngineError, CorsEngineWarning, Problem, ProviderError

__all__ = [
    "CORSMiddleware",
    "Change",
    "ConfigurationError",
    "CorsEngineError",
    "CorsEngineWarning",
    "Decision",
    "DecisionEvent",
    "Policy",
    "Problem",
    "ProviderError",
    "SourceHealth",
    "load_policy",
    "providers",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ._config import load_policy


def __getattr__(name: str) -> Any:
    # Configuration files need pydantic: imported on first use, not with the package.
    if name == "load_policy":
        from ._config import load_policy

        return load_policy
    raise AttributeError(f"module 'corsengine' has no attribute {name!r}")
