"""An allowlist in Redis, shared by a fleet, with pub/sub invalidation.

The origins live in a set (``SADD corsengine:origins https://app.example.com``) or in a
hash whose fields are origins and whose values are metadata JSON. After a change, a
message on the channel (any payload) makes every subscribed worker reload at once; the
admin functions (`add_origins`, `remove_origins`, `list_origins`, importable from here)
validate, write and publish in one transaction.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio

from .._origin import quote
from .._patterns import Rules
from ..exceptions import ProviderError
from ._base import BaseProvider
from ._options import E_SOURCE, Options, redacted
from ._redis_admin import add_origins, list_origins, remove_origins
from ._redis_defaults import DEFAULT_CHANNEL, DEFAULT_KEY, DEFAULT_URL
from ._redis_store import DEFAULT_REDIS_TIMEOUT, UNAVAILABLE, Client, connect, describe, read_allowlist
from .dynamic import Compiler

__all__ = ["RedisProvider", "add_origins", "connect", "list_origins", "remove_origins"]

logger = logging.getLogger("corsengine")

DEFAULT_REDIS_TTL = 60.0
DEFAULT_RECONNECT_INITIAL = 0.1
DEFAULT_RECONNECT_MAX = 10.0
DEFAULT_HEALTH_INTERVAL = 10.0
# What redis-py's from_url() connects to.
_SCHEMES = ("redis", "rediss", "unix")


class RedisProvider(BaseProvider):
    """The allowlist in a Redis set or hash; a pub/sub message reloads it everywhere.

    ``load()`` reads the key (``ttl`` seconds is a safety net for lost messages); the
    ``watch()`` task subscribes to ``channel`` and invalidates the cached allowlist on
    each message, so every worker that shares the Redis sees a change within
    milliseconds. When Redis is down, ``load()`` raises and the resolver keeps the last
    good allowlist; the watcher reconnects with exponential backoff and jitter, and
    reloads once it is back (messages sent meanwhile were lost).

    Pass ``client=`` to share a ``redis.asyncio.Redis`` client (it is not closed by
    ``aclose()``); without one, the provider connects to ``url``. Needs the ``redis``
    extra: ``pip install 'corsengine[redis]'``.

    Examples:
        ``redis_url`` is where your Redis listens, such as ``"redis://127.0.0.1:6379/0"``.

        >>> import anyio
        >>> from corsengine import Policy
        >>> from corsengine.providers import RedisProvider
        >>> from corsengine.providers.redis import add_origins
        >>> async def main():
        ...     provider = RedisProvider(redis_url)  # key corsengine:origins
        ...     await add_origins(provider.client, ["https://partner.example"])  # from any host
        ...     policy = Policy(allow_origins=provider)
        ...     decision = await policy.aevaluate("https://partner.example")
        ...     await policy.aclose()
        ...     return decision.allowed
        >>> anyio.run(main)
        True
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        client: Client | None = None,
        key: str = DEFAULT_KEY,
        channel: str = DEFAULT_CHANNEL,
        ttl: float = DEFAULT_REDIS_TTL,
        timeout: float = DEFAULT_REDIS_TIMEOUT,
        reconnect_initial: float = DEFAULT_RECONNECT_INITIAL,
        reconnect_max: float = DEFAULT_RECONNECT_MAX,
        health_interval: float = DEFAULT_HEALTH_INTERVAL,
    ) -> None:
        options = Options("RedisProvider")
        if options.text("url", url, example=DEFAULT_URL) and url.partition("://")[0].lower() not in _SCHEMES:
            options.problem(
                E_SOURCE,
                f"url {quote(redacted(url))} is not a Redis URL",
                f"use redis://, rediss:// (TLS) or unix://, e.g. url={DEFAULT_URL!r}",
                field="url",
            )
        options.text("key", key, example=DEFAULT_KEY)
        options.text("channel", channel, example=DEFAULT_CHANNEL)
        options.seconds("ttl", ttl, example=DEFAULT_REDIS_TTL)
        options.seconds("timeout", timeout, example=DEFAULT_REDIS_TIMEOUT)
        options.seconds("reconnect_initial", reconnect_initial, example=DEFAULT_RECONNECT_INITIAL)
        options.seconds("reconnect_max", reconnect_max, example=DEFAULT_RECONNECT_MAX)
        options.ordered("reconnect_initial", reconnect_initial, "reconnect_max", reconnect_max)
        options.seconds("health_interval", health_interval, example=DEFAULT_HEALTH_INTERVAL)
        options.raise_problems()
        self.url = url
        self.key = key
        self._compiler = Compiler(f"Redis key {quote(key)}")
        self.channel = channel
        self.ttl: float | None = ttl
        self.timeout = timeout
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.health_interval = health_interval
        self.metadata: Mapping[str, Any] = {}
        self._own_client = client is None
        self._client = client

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = connect(self.url, timeout=self.timeout)
        return self._client

    async def load(self) -> Rules:
        try:
            entries, metadata = await read_allowlist(self.client, self.key)
        except UNAVAILABLE as error:
            await self._drop_idle_connections()  # the next try starts on a fresh connection
            where = redacted(self.url)
            raise ProviderError(f"Redis at {where} is unavailable: {describe(error)}") from None
        rules = await self._compiler.compile(entries)
        self.metadata = metadata
        return rules

    # --- pub/sub ----------------------------------------------------------------------

    def backoff(self, failures: int) -> float:
        """Seconds to wait before reconnect attempt ``failures`` (1, 2, ...): doubling from
        ``reconnect_initial`` up to ``reconnect_max``, with jitter so a fleet does not
        reconnect in lockstep after a Redis restart."""
        delay = min(self.reconnect_max, self.reconnect_initial * 2.0 ** min(failures - 1, 32))
        return delay * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography

    async def watch(self, invalidate: Callable[[], None]) -> None:
        """Subscribe to the channel and call ``invalidate()`` on each message; runs until
        cancelled, reconnecting whenever the connection drops."""
        failures = 0

        async def subscribed() -> None:
            nonlocal failures
            if failures:
                logger.warning("corsengine: resubscribed to the Redis channel %s", quote(self.channel))
                await self._drop_idle_connections()
            failures = 0

        while True:
            try:
                await self._listen(invalidate, subscribed)
            except UNAVAILABLE as error:
                failures += 1
                if failures == 1:
                    logger.warning(
                        "corsengine: lost the Redis channel %s at %s (%s); reconnecting",
                        quote(self.channel),
                        redacted(self.url),
                        describe(error),
                    )
                await anyio.sleep(self.backoff(failures))

    async def _drop_idle_connections(self) -> None:
        """Close the pooled connections that predate an outage.

        After a Redis restart they are dead, and redis-py finds out only by failing the
        command sent on them: the reload that resubscribing starts would fail once and the
        next try would come only after the retry delay (5 s), while a change made right
        after the restart waited for it. Connections in use (the channel's) are left alone.
        """
        pool = getattr(self.client, "connection_pool", None)
        if pool is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await pool.disconnect(inuse_connections=False)

    async def _listen(
        self, invalidate: Callable[[], None], subscribed: Callable[[], Awaitable[None]]
    ) -> None:
        pubsub = self.client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            heard = anyio.current_time()
            while True:
                message = await pubsub.get_message(timeout=self.health_interval)
                now = anyio.current_time()
                if message is None:
                    # A silent channel: make sure the connection is alive (a half-open TCP
                    # connection would otherwise wait forever and miss every change).
                    if now - heard > 1.5 * self.health_interval:
                        raise ConnectionError("Redis did not answer a PING on the channel")
                    await pubsub.ping()
                    continue
                heard = now
                if message["type"] == "subscribe":
                    # Subscribed, for the first time or again after a reconnect: reload,
                    # because changes published while not subscribed were lost.
                    await subscribed()
                    invalidate()
                elif message["type"] == "message":
                    invalidate()
        finally:
            with anyio.CancelScope(shield=True):
                await _quietly_close(pubsub)

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def __repr__(self) -> str:
        return f"RedisProvider({redacted(self.url)!r}, key={self.key!r})"


async def _quietly_close(pubsub: Any) -> None:
    with contextlib.suppress(*UNAVAILABLE):
        await pubsub.aclose()
