"""Editing a fleet's allowlist in Redis: validate, write and publish in one transaction.

Public as `corsengine.providers.redis.add_origins` (and ``remove_origins``,
``list_origins``); the ``corsengine redis`` commands call the same functions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .._codes import E030
from .._origin import quote
from .._patterns import compile_entries
from ..exceptions import ConfigurationError, Problem, ProviderError
from ._redis_defaults import DEFAULT_CHANNEL, DEFAULT_KEY
from ._redis_store import Client, read_allowlist, text


def canonical_entries(origins: Iterable[str], *, allow_any: bool = False) -> list[str]:
    """Validate entries one by one and return their canonical text (normalized origins).

    Raises ConfigurationError listing every invalid entry; ``*`` is refused unless
    ``allow_any`` (one command should not open the allowlist of a whole fleet).
    """
    if isinstance(origins, str):
        origins = [origins]
    problems: list[Problem] = []
    out: list[str] = []
    for origin in origins:
        rules, found, _ = compile_entries([origin])
        problems.extend(found)
        if found:
            continue
        if rules.allow_all and not allow_any:
            problems.append(
                Problem(
                    E030,
                    "'*' would allow every origin on every worker",
                    "list the origins to allow; pass allow_any=True (--allow-any) if that is really meant",
                    field="origins",
                )
            )
            continue
        out.extend(sorted(rules.entries - set(out)))
    if problems:
        raise ConfigurationError(problems)
    return out


async def add_origins(
    client: Client,
    origins: Iterable[str],
    *,
    key: str = DEFAULT_KEY,
    channel: str = DEFAULT_CHANNEL,
    metadata: Mapping[str, Any] | None = None,
    allow_any: bool = False,
) -> list[str]:
    """Validate ``origins``, add them to the allowlist and tell every worker.

    Writes to a set, or to a hash when the key is one (or when ``metadata`` is given
    for a new key), with ``metadata`` as each origin's JSON value. Returns the entries
    written, in canonical form. Nothing is written if any entry is invalid: a
    `ConfigurationError` lists every problem. ``*`` is refused (`corsengine.E030`)
    unless ``allow_any=True``.

    Examples:
        ``redis_url`` is where your Redis listens, such as ``"redis://127.0.0.1:6379/0"``.

        >>> import anyio
        >>> from corsengine.providers.redis import add_origins, connect
        >>> async def main():
        ...     client = connect(redis_url)
        ...     try:
        ...         return await add_origins(client, ["HTTPS://Partner.Example:443", "https://*.partner.example"])
        ...     finally:
        ...         await client.aclose()
        >>> anyio.run(main)
        ['https://partner.example', 'https://*.partner.example']
    """
    entries = canonical_entries(origins, allow_any=allow_any)
    kind = text(await client.type(key))
    async with client.pipeline(transaction=True) as pipe:
        if kind == "hash" or (kind == "none" and metadata is not None):
            value = json.dumps(dict(metadata or {}), sort_keys=True)
            pipe.hset(key, mapping=dict.fromkeys(entries, value))
        elif kind in ("set", "none"):
            if metadata is not None:
                raise ProviderError(f"Redis key {quote(key)} is a set: metadata needs a hash")
            pipe.sadd(key, *entries)
        else:
            raise ProviderError(f"Redis key {quote(key)} is a {kind}, expected a set or a hash")
        pipe.publish(channel, json.dumps({"added": entries}))
        await pipe.execute()
    return entries


async def remove_origins(
    client: Client, origins: Iterable[str], *, key: str = DEFAULT_KEY, channel: str = DEFAULT_CHANNEL
) -> int:
    """Remove ``origins`` (as written, and in canonical form) and tell every worker.

    Invalid entries are removed as written, so a bad value stored by hand can be deleted.
    Returns how many entries were removed.

    Examples:
        ``redis_url`` is where your Redis listens, such as ``"redis://127.0.0.1:6379/0"``.

        >>> import anyio
        >>> from corsengine.providers.redis import add_origins, connect, remove_origins
        >>> async def main():
        ...     client = connect(redis_url)
        ...     try:
        ...         await add_origins(client, ["https://a.example", "https://b.example"])
        ...         return await remove_origins(client, ["https://a.example"])
        ...     finally:
        ...         await client.aclose()
        >>> anyio.run(main)
        1
    """
    if isinstance(origins, str):
        origins = [origins]
    names: list[str] = []
    for origin in origins:
        rules, problems, _ = compile_entries([origin])
        candidates = {origin, origin.strip()} | (set(rules.entries) if not problems else set())
        names.extend(sorted(candidates - set(names)))
    if not names:
        return 0
    kind = text(await client.type(key))
    if kind == "none":
        return 0
    async with client.pipeline(transaction=True) as pipe:
        if kind == "hash":
            pipe.hdel(key, *names)
        elif kind == "set":
            pipe.srem(key, *names)
        else:
            raise ProviderError(f"Redis key {quote(key)} is a {kind}, expected a set or a hash")
        pipe.publish(channel, json.dumps({"removed": names}))
        removed, _ = await pipe.execute()
    return int(removed)


async def list_origins(client: Client, *, key: str = DEFAULT_KEY) -> list[str]:
    """The entries in the allowlist, sorted.

    Examples:
        ``redis_url`` is where your Redis listens, such as ``"redis://127.0.0.1:6379/0"``.

        >>> import anyio
        >>> from corsengine.providers.redis import add_origins, connect, list_origins
        >>> async def main():
        ...     client = connect(redis_url)
        ...     try:
        ...         await add_origins(client, ["https://b.example", "https://a.example"])
        ...         return await list_origins(client)
        ...     finally:
        ...         await client.aclose()
        >>> anyio.run(main)
        ['https://a.example', 'https://b.example']
    """
    entries, _ = await read_allowlist(client, key)
    return entries
