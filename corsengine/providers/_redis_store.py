"""How an allowlist sits in Redis, for the provider, the admin functions and the CLI alike:
a client with bounded timeouts, and reading the set or hash under a key."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from .._origin import quote
from ..exceptions import ProviderError

DEFAULT_REDIS_TIMEOUT = 2.0

Client = aioredis.Redis
# Connection trouble: redis-py raises its own errors, asyncio and the OS theirs.
UNAVAILABLE = (RedisError, OSError, TimeoutError)


def connect(url: str, *, timeout: float = DEFAULT_REDIS_TIMEOUT) -> Client:
    """A client for corsengine's use: bounded timeouts, and no retries of its own
    (the resolver keeps the last good allowlist, the watcher reconnects with backoff).

    Use it for the admin functions (`add_origins`, `remove_origins`, `list_origins`) or
    pass it to `RedisProvider(client=...)`; close it with ``await client.aclose()``.

    Examples:
        ``redis_url`` is where your Redis listens, such as ``"redis://127.0.0.1:6379/0"``.

        >>> import anyio
        >>> from corsengine.providers.redis import connect
        >>> async def main():
        ...     client = connect(redis_url, timeout=2.0)
        ...     try:
        ...         return await client.ping()
        ...     finally:
        ...         await client.aclose()
        >>> anyio.run(main)
        True
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


async def read_allowlist(client: Client, key: str) -> tuple[list[str], dict[str, Any]]:
    """The entries under ``key`` (a set or a hash) and, for a hash, their metadata."""
    kind = text(await client.type(key))
    if kind == "none":  # Redis deletes a set when its last member goes: an empty allowlist
        return [], {}
    if kind == "set":
        return sorted(text(member) for member in await client.smembers(key)), {}
    if kind == "hash":
        metadata: dict[str, Any] = {}
        for field, value in (await client.hgetall(key)).items():
            origin = text(field)
            try:
                metadata[origin] = json.loads(value)
            except ValueError as error:
                raise ProviderError(
                    f"Redis hash {quote(key)}: the metadata of {quote(origin)} is not JSON ({error})"
                ) from None
        return sorted(metadata), metadata
    raise ProviderError(f"Redis key {quote(key)} is a {kind}, expected a set or a hash")


def describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
