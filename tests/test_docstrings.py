"""Every public name has a docstring with an example, and every example runs.

The public names are what `corsengine`, `corsengine.providers` (the optional providers
included), `corsengine.providers.redis` (the admin functions), `corsengine.testing`,
`corsengine.metrics` and `corsengine.exceptions` export; the API reference (docs/api.md)
renders their docstrings.
Examples run with doctest, each in a fresh namespace, so they must import what they use,
exactly as a reader would paste them. Examples that name ``redis_url`` get a real
redis-server, flushed before each.
"""

from __future__ import annotations

import doctest
import io
import types
import warnings
from collections.abc import Iterator

import pytest

import corsengine
from corsengine import exceptions, metrics, providers, testing
from corsengine.providers import redis as redis_admin

from .providers.servers import RedisServer, redis_server

# Imported lazily by corsengine.providers (they need extras), so not in its __all__.
OPTIONAL_PROVIDERS = ("FileProvider", "RedisProvider", "RemoteJSONProvider")

# Constants cannot carry a docstring of their own: the API reference shows the comment
# that follows them in the source.
CONSTANTS = (int, float, str)

# Names whose docstring lives in a module another change is rewriting; remove the entry
# when the example lands (the test then passes, and strict xfail makes it fail until then).
PENDING: dict[str, str] = {}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def public_names() -> dict[str, object]:
    """Qualified name -> object, each object once (under the first module that exports it)."""
    exported: list[tuple[types.ModuleType, list[str]]] = [
        (corsengine, list(corsengine.__all__)),
        (providers, [*providers.__all__, *OPTIONAL_PROVIDERS]),
        (redis_admin, list(redis_admin.__all__)),
        (testing, list(testing.__all__)),
        (metrics, list(metrics.__all__)),
        (exceptions, list(exceptions.__all__)),
    ]
    found: dict[str, object] = {"corsengine.testing": testing, "corsengine.metrics": metrics}
    seen = {id(testing), id(metrics)}
    for module, names in exported:
        for name in names:
            obj = getattr(module, name)
            if id(obj) in seen and not isinstance(obj, CONSTANTS):
                continue
            seen.add(id(obj))
            found[f"{module.__name__}.{name}"] = obj
    return found


PUBLIC = public_names()
DOCUMENTED = {name: obj for name, obj in PUBLIC.items() if not isinstance(obj, CONSTANTS)}


def needs_redis(obj: object) -> bool:
    return "redis_url" in (getattr(obj, "__doc__", None) or "")


def params(names: dict[str, object], pending: bool) -> list[object]:
    out = []
    for name, obj in names.items():
        marks: list[pytest.MarkDecorator] = []
        if pending and name in PENDING:
            marks.append(pytest.mark.xfail(reason=PENDING[name], strict=True))
        if needs_redis(obj):
            marks.append(pytest.mark.redis)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def test_the_public_names_are_all_here() -> None:
    assert set(OPTIONAL_PROVIDERS) <= set(dir(providers))
    assert "corsengine.Policy" in PUBLIC and "corsengine.providers.redis.add_origins" in PUBLIC
    assert "corsengine.providers.DEFAULT_TTL" in PUBLIC  # a constant: documented in the source
    assert len(DOCUMENTED) >= 30


@pytest.mark.parametrize("name", params(DOCUMENTED, pending=True))
def test_every_public_name_has_an_example(name: str) -> None:
    own = DOCUMENTED[name].__doc__ or ""
    assert own.strip(), f"{name} has no docstring"
    assert ">>> " in own, f"{name}'s docstring has no example"


@pytest.mark.parametrize("name", params(DOCUMENTED, pending=False))
def test_docstring_examples_run(name: str, request: pytest.FixtureRequest) -> None:
    obj = DOCUMENTED[name]
    namespace: dict[str, object] = {"__name__": "docstring_example"}
    if needs_redis(obj):
        server: RedisServer = request.getfixturevalue("redis")
        namespace["redis_url"] = server.url
        import redis as redis_client

        with redis_client.Redis.from_url(server.url) as client:
            client.flushdb()
    # A module's own docstring only; a class's and its methods'.
    finder = doctest.DocTestFinder(recurse=not isinstance(obj, types.ModuleType))
    tests = [test for test in finder.find(obj, name, globs=namespace) if test.examples]
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an example that warns teaches the wrong thing
        for test in tests:
            runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
