from __future__ import annotations

import pytest

import corsengine._regex
from corsengine.testing import FakeClock

# The plugin's entry point is turned off in pyproject's addopts (-p no:corsengine): an entry
# point is imported before pytest-cov starts, and importing it imports the whole package, so
# coverage would miss every module-level line. Loaded from here, it is measured like the rest.
pytest_plugins = ["corsengine.pytest_plugin"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def no_re2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compile origin regexes on Python's engine and its guard, as without corsengine[re2]."""
    monkeypatch.setattr(corsengine._regex, "re2_module", lambda: None)
