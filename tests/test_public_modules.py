"""What each public module exports is what its ``__all__`` says, and nothing more is promised."""

from __future__ import annotations

import importlib

import pytest

import corsengine

# Every module a user may import from. Optional ones need their extra (httpx, redis, ...).
PUBLIC_MODULES = (
    "corsengine",
    "corsengine.exceptions",
    "corsengine.metrics",
    "corsengine.providers",
    "corsengine.providers.dynamic",
    "corsengine.providers.file",
    "corsengine.providers.redis",
    "corsengine.providers.remote",
    "corsengine.providers.static",
    "corsengine.pytest_plugin",
    "corsengine.testing",
    "corsengine.types",
)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_says_what_it_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__dict__.get("__all__")
    assert isinstance(exported, list), f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [attribute for attribute in exported if not hasattr(module, attribute)]
    assert not missing, f"{name}.__all__ names what it does not have: {missing}"


def test_the_package_exports_the_same_thirteen_names() -> None:
    assert corsengine.__all__ == [
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


def test_helpers_of_the_providers_are_not_exported() -> None:
    from corsengine.providers import dynamic, static

    assert static.__all__ == ["RegexProvider", "StaticProvider"]
    assert dynamic.__all__ == ["CallableProvider", "PredicateProvider"]
