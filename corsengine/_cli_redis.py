"""``corsengine redis add|remove|list``: edit the allowlist a fleet of RedisProviders serves.

``add_subcommands(subparsers)`` adds the ``redis`` command to the main parser; each leaf
does ``set_defaults(func=handler)`` with ``handler(args) -> int``. Exit statuses: 0 done,
2 an invalid origin (nothing written) or a usage error, 3 Redis unavailable or the key
holds something else. redis-py is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import anyio

from .exceptions import ConfigurationError, ProviderError
from .providers._options import redacted
from .providers._redis_defaults import DEFAULT_CHANNEL, DEFAULT_KEY, DEFAULT_URL

if TYPE_CHECKING:
    from .providers._redis_store import Client

__all__ = ["add_subcommands"]

EXIT_OK: Final = 0
EXIT_CONFIG: Final = 2
EXIT_UNAVAILABLE: Final = 3


def add_subcommands(subparsers: Any) -> None:
    """Add ``redis add``, ``redis remove`` and ``redis list`` to the main parser."""
    redis_parser = subparsers.add_parser(
        "redis",
        help="edit the allowlist in Redis that RedisProvider serves",
        description="Edit the allowlist in Redis. Changes are published on the channel, "
        "so every worker with a RedisProvider reloads at once.",
    )
    commands = redis_parser.add_subparsers(dest="redis_command", metavar="COMMAND", required=True)

    add = commands.add_parser("add", help="validate origins and add them to the allowlist")
    add.add_argument("origins", nargs="+", metavar="ORIGIN", help="an origin or a wildcard pattern")
    add.add_argument("--metadata", help="a JSON object stored with each origin (the key becomes a hash)")
    add.add_argument("--allow-any", action="store_true", help="accept '*' (allows every origin)")
    _common(add, channel=True)
    add.set_defaults(func=_add)

    remove = commands.add_parser("remove", help="remove origins from the allowlist")
    remove.add_argument("origins", nargs="+", metavar="ORIGIN")
    _common(remove, channel=True)
    remove.set_defaults(func=_remove)

    listing = commands.add_parser("list", help="print the allowlist, one entry a line")
    listing.add_argument("--json", action="store_true", help="print a JSON object of entries and metadata")
    _common(listing, channel=False)
    listing.set_defaults(func=_list)


def _common(parser: argparse.ArgumentParser, *, channel: bool) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the Redis URL (default: {DEFAULT_URL})")
    parser.add_argument("--key", default=DEFAULT_KEY, help=f"the set or hash (default: {DEFAULT_KEY})")
    if channel:
        parser.add_argument(
            "--channel",
            default=DEFAULT_CHANNEL,
            help=f"where changes are announced (default: {DEFAULT_CHANNEL})",
        )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for Redis (default: 5)")


def _run(args: argparse.Namespace, action: Callable[[Client], Awaitable[int]]) -> int:
    try:
        importlib.import_module("redis")  # the extra, asked for here: only a command needs it
        from .providers._redis_store import UNAVAILABLE, connect
    except ModuleNotFoundError as error:
        print(
            f"error: the redis commands need {error.name}: pip install 'corsengine[redis]'", file=sys.stderr
        )
        return EXIT_CONFIG

    async def main() -> int:
        client = connect(args.url, timeout=args.timeout)
        try:
            with anyio.fail_after(args.timeout):
                return await action(client)
        finally:
            await client.aclose()

    try:
        return anyio.run(main)
    except ConfigurationError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except ProviderError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except UNAVAILABLE as error:
        where = redacted(args.url)
        print(f"error: Redis at {where} is unavailable: {error or type(error).__name__}", file=sys.stderr)
        return EXIT_UNAVAILABLE


def _add(args: argparse.Namespace) -> int:
    metadata: dict[str, Any] | None = None
    if args.metadata is not None:
        try:
            metadata = json.loads(args.metadata)
        except ValueError as error:
            print(f"error: --metadata is not JSON: {error}", file=sys.stderr)
            return EXIT_CONFIG
        if not isinstance(metadata, dict):
            print("error: --metadata must be a JSON object", file=sys.stderr)
            return EXIT_CONFIG

    async def action(client: Client) -> int:
        from .providers._redis_admin import add_origins

        entries = await add_origins(
            client,
            args.origins,
            key=args.key,
            channel=args.channel,
            metadata=metadata,
            allow_any=args.allow_any,
        )
        for entry in entries:
            print(f"added {entry}")
        return EXIT_OK

    return _run(args, action)


def _remove(args: argparse.Namespace) -> int:
    async def action(client: Client) -> int:
        from .providers._redis_admin import remove_origins

        removed = await remove_origins(client, args.origins, key=args.key, channel=args.channel)
        print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}")
        return EXIT_OK

    return _run(args, action)


def _list(args: argparse.Namespace) -> int:
    async def action(client: Client) -> int:
        from .providers._redis_store import read_allowlist

        entries, metadata = await read_allowlist(client, args.key)
        if args.json:
            print(json.dumps({entry: metadata.get(entry) for entry in entries}, indent=2, sort_keys=True))
        else:
            for entry in entries:
                extra = f"  {json.dumps(metadata[entry], sort_keys=True)}" if entry in metadata else ""
                print(f"{entry}{extra}")
        return EXIT_OK

    return _run(args, action)
