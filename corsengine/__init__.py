"""corsengine: a dynamic-origin CORS policy engine for ASGI applications."""

from __future__ import annotations

from . import providers
from ._middleware import CORSMiddleware
from ._policy import Decision, Policy
from ._resolver import Change
from .exceptions import ConfigurationError, CorsEngineError, CorsEngineWarning, Problem, ProviderError

__all__ = [
    "CORSMiddleware",
    "Change",
    "ConfigurationError",
    "CorsEngineError",
    "CorsEngineWarning",
    "Decision",
    "Policy",
    "Problem",
    "ProviderError",
    "providers",
]

__version__ = "0.1.0"
