from __future__ import annotations

from collections.abc import Iterator

import pytest

from .servers import RedisServer, redis_server


@pytest.fixture
def anyio_backend() -> str:
    # redis-py is asyncio-only; the file and remote providers also run on trio (see their tests).
    return "asyncio"


@pytest.fixture(scope="session")
def redis_session() -> Iterator[RedisServer]:
    """One redis-server for the session; tests use distinct keys and channels."""
    with redis_server() as server:
        yield server
