from __future__ import annotations

import pytest

from corsengine.testing import FakeClock

# The plugin's entry point is turned off in pyproject's addopts (-p no:corsengine): an entry
# point is imported before pytest-cov starts, and importing it imports the whole package, so
# coverage would miss every module-level line. Loaded from here, it is measured like the rest.
pytest_plugins = ["corsengine.pytest_plugin"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
