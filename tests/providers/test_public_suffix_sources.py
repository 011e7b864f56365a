"""A wildcard over a public suffix from a remote document, a file or Redis: the document is
rejected as a whole (E006) and the last good allowlist stays in force."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import respx

from corsengine import Policy
from corsengine.exceptions import ConfigurationError, ProviderError
from corsengine.providers import BaseProvider, FileProvider, RedisProvider, RemoteJSONProvider
from corsengine.providers.redis import add_origins, connect
from corsengine.testing import FakeClock

from .servers import RedisServer
from .test_redis_provider import run_cli

GOOD = ["https://app.example.com", "https://*.partner.example"]
BAD = [*GOOD, "https://*.pythonanywhere.com"]
URL = "https://config.example/cors.json"


async def keeps_the_last_good(provider: BaseProvider, make_bad: Callable[[], Awaitable[None]]) -> None:
    clock = FakeClock()
    policy = Policy(allow_origins=provider, clock=clock)
    assert (await policy.aevaluate("https://a.partner.example")).allowed
    await make_bad()
    with pytest.raises(ProviderError, match=r"corsengine\.E006: wildcard 'https://\*\.pythonanywhere\.com'"):
        await provider.load()
    clock.advance(3600)  # past every TTL: the refresh reads the bad document
    await policy.refresh()
    assert (await policy.aevaluate("https://a.partner.example")).allowed
    assert (await policy.aevaluate("https://app.example.com")).allowed
    assert not (await policy.aevaluate("https://evil.pythonanywhere.com")).allowed
    await policy.aclose()


@pytest.mark.anyio
async def test_a_remote_document(tmp_path: Path) -> None:
    with respx.mock() as mock:
        route = mock.get(URL)
        route.return_value = httpx.Response(200, json={"origins": GOOD})
        async with httpx.AsyncClient() as client:
            provider = RemoteJSONProvider(URL, client=client, ttl=60)

            async def bad() -> None:
                route.return_value = httpx.Response(200, json={"origins": GOOD[:1], "patterns": BAD[1:]})

            await keeps_the_last_good(provider, bad)


@pytest.mark.anyio
async def test_a_file(tmp_path: Path) -> None:
    path = tmp_path / "cors.json"
    path.write_text(json.dumps(GOOD))
    provider = FileProvider(path, ttl=60, use_watchfiles=False)

    async def bad() -> None:
        path.write_text(json.dumps(BAD, indent=2))

    await keeps_the_last_good(provider, bad)
    with pytest.raises(ProviderError, match=r"\(line 4\)"):
        await provider.load()


@pytest.mark.anyio
@pytest.mark.redis
async def test_redis_entries_and_the_admin(redis_session: RedisServer) -> None:
    key = "test:public-suffix"
    client = connect(redis_session.url)
    await client.delete(key)
    await client.sadd(key, *GOOD)
    provider = RedisProvider(client=client, key=key, ttl=60)

    async def bad() -> None:
        await client.sadd(key, BAD[-1])  # written by hand, past the admin's validation

    await keeps_the_last_good(provider, bad)
    await client.srem(key, BAD[-1])
    # The admin function and the CLI validate before writing anything.
    with pytest.raises(ConfigurationError) as raised:
        await add_origins(client, ["https://b.example", "https://*.s3.us-east-1.amazonaws.com"], key=key)
    assert raised.value.codes == ("corsengine.E006",)
    assert sorted(await client.smembers(key)) == sorted(GOOD)
    await client.aclose()


@pytest.mark.redis
def test_redis_cli_add(redis_session: RedisServer, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--url", redis_session.url, "--key", "test:public-suffix-cli"]
    assert run_cli("add", "https://*.r2.dev", *argv) == 2
    assert "corsengine.E006" in capsys.readouterr().err
    assert run_cli("list", *argv) == 0
    assert capsys.readouterr().out == ""
