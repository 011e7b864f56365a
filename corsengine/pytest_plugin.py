"""pytest plugin: fixtures for testing CORS policies (registered through an entry point)."""

from __future__ import annotations

import pytest

from .testing import FakeClock


@pytest.fixture
def cors_fake_clock() -> FakeClock:
    """A FakeClock to pass as ``Policy(clock=...)``."""
    return FakeClock()
