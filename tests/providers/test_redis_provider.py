"""RedisProvider against a real redis-server: set and hash, pub/sub, outages, admin and CLI."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from corsengine import Policy, _cli_redis
from corsengine.exceptions import ConfigurationError, ProviderError
from corsengine.providers import RedisProvider
from corsengine.providers.redis import (
    Client,
    add_origins,
    connect,
    list_origins,
    read_allowlist,
    redacted,
    remove_origins,
)
from corsengine.testing import FakeClock

from .loads import STUCK, Count, CountedLoads, settled
from .servers import RedisServer, eventually, free_port, redis_server

pytestmark = pytest.mark.redis


class CountingProvider(CountedLoads, RedisProvider):
    pass


@pytest.fixture
def key(request: pytest.FixtureRequest) -> str:
    return f"test:{request.node.name}"


@pytest.fixture
async def client(redis_session: RedisServer) -> AsyncIterator[Client]:
    client = connect(redis_session.url)
    yield client
    await client.aclose()


# --- load -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_set_a_hash_and_a_missing_key(redis_session: RedisServer, client: Client, key: str) -> None:
    provider = RedisProvider(redis_session.url, key=key)
    assert not await provider.load()  # no key yet: an empty allowlist
    await client.sadd(key, "https://a.example", "https://*.b.example")
    assert (await provider.load()).entries == {"https://a.example", "https://*.b.example"}
    await client.delete(key)
    await client.hset(key, mapping={"https://c.example": json.dumps({"owner": "team-c"})})
    assert (await provider.load()).entries == {"https://c.example"}
    assert provider.metadata == {"https://c.example": {"owner": "team-c"}}
    await provider.aclose()
    await provider.aclose()


@pytest.mark.anyio
async def test_bad_data_in_redis_is_rejected_as_a_whole(client: Client, key: str) -> None:
    provider = RedisProvider(client=client, key=key)
    await client.sadd(key, "https://a.example", "https://a.example/path")
    with pytest.raises(ProviderError, match="E001"):
        await provider.load()
    await client.delete(key)
    await client.hset(key, mapping={"https://a.example": "{not json"})
    with pytest.raises(ProviderError, match=r"metadata of 'https://a\.example' is not JSON"):
        await provider.load()
    await client.delete(key)
    await client.rpush(key, "https://a.example")
    with pytest.raises(ProviderError, match="is a list, expected a set or a hash"):
        await provider.load()
    await provider.aclose()
    assert await client.ping()  # an injected client stays open


@pytest.mark.anyio
async def test_a_client_without_decoded_responses_works(redis_session: RedisServer, key: str) -> None:
    from redis.asyncio import Redis

    raw = Redis.from_url(redis_session.url)
    await raw.sadd(key, "https://a.example")
    assert (await RedisProvider(client=raw, key=key).load()).entries == {"https://a.example"}
    await raw.aclose()


@pytest.mark.anyio
async def test_redis_down_raises_and_the_policy_keeps_the_last_good(key: str) -> None:
    with redis_server() as server:
        setup = connect(server.url)
        await setup.sadd(key, "https://a.example")
        await setup.aclose()
        clock = FakeClock()
        provider = RedisProvider(server.url, key=key, ttl=10, timeout=0.5)
        policy = Policy(allow_origins=provider, clock=clock, max_stale=100)
        assert (await policy.aevaluate("https://a.example")).allowed
        server.stop()
        with pytest.raises(ProviderError, match="is unavailable"):
            await provider.load()
        clock.advance(11)
        await policy.refresh()
        assert (await policy.aevaluate("https://a.example")).allowed
        # The documented bound of an outage: the last good list until ttl + max_stale
        # after it was loaded, then refused.
        clock.advance(10 + 100 - 11 - 0.1)
        assert (await policy.aevaluate("https://a.example")).allowed
        clock.advance(0.1)
        assert not (await policy.aevaluate("https://a.example")).allowed
        await policy.aclose()


def test_validation_of_options_and_redaction() -> None:
    # Every option's checks: tests/providers/test_options.py.
    with pytest.raises(ConfigurationError, match="reconnect_initial=0") as caught:
        RedisProvider(reconnect_initial=0)
    assert caught.value.codes == ("corsengine.E024",)
    with pytest.raises(ConfigurationError, match="health_interval=0") as caught:
        RedisProvider(health_interval=0)
    assert caught.value.codes == ("corsengine.E024",)
    assert redacted("redis://user:secret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redacted("redis://:secret@host/0") == "redis://***@host/0"
    assert redacted("redis://host/0") == "redis://host/0"
    assert repr(RedisProvider("redis://:pw@h/0", key="k")) == "RedisProvider('redis://***@h/0', key='k')"


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    provider = RedisProvider(reconnect_initial=0.1, reconnect_max=2.0)
    for failures, base in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.6), (6, 2.0), (500, 2.0)]:
        delays = {provider.backoff(failures) for _ in range(50)}
        assert all(base / 2 <= delay <= base for delay in delays)
        assert len(delays) > 1  # jittered, so a fleet does not reconnect in lockstep


# --- pub/sub --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_message_on_the_channel_reloads_at_once(
    redis_session: RedisServer, client: Client, key: str
) -> None:
    channel = f"{key}:changes"
    clock = FakeClock()
    provider = CountingProvider(redis_session.url, key=key, channel=channel, ttl=3600)
    policy = Policy(allow_origins=provider, clock=clock)
    async with anyio.create_task_group() as task_group:
        policy._resolver.attach(task_group)
        assert not (await policy.aevaluate("https://new.example")).allowed
        # The clock never moves: only the watcher can make the policy reload. The first reload
        # after the first load is the one subscribing causes: the watcher is listening.
        await provider.loaded(2)
        await settled(policy)
        assert not (await policy.aevaluate("https://new.example")).allowed
        # Each message reloads exactly once, and the first request after that reload sees it.
        for _ in range(2):
            for change, allowed in ((add_origins, True), (remove_origins, False)):
                loads = provider.loads
                await change(client, ["https://new.example"], key=key, channel=channel)
                await provider.loaded(loads + 1)
                await settled(policy)
                assert (await policy.aevaluate("https://new.example")).allowed is allowed
                assert provider.loads == loads + 1
        task_group.cancel_scope.cancel()
    await policy.aclose()


@pytest.mark.anyio
async def test_the_watcher_reconnects_after_a_redis_restart_and_reloads(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server() as server:
        provider = RedisProvider(server.url, key=key, reconnect_initial=0.05, reconnect_max=0.2, timeout=0.5)
        calls = Count()  # the watcher's invalidate(), awaited call by call
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(provider.watch, calls.add)
            await calls.reach(1)  # subscribed
            with caplog.at_level(logging.WARNING, "corsengine"):
                server.stop()
                await eventually(lambda: "lost the Redis channel" in caplog.text, within=STUCK)
                await anyio.sleep(0.3)  # a few failed attempts while it is down
                server.start()
                # Messages published while it was down are lost: resubscribing reloads.
                await calls.reach(2)
                assert "resubscribed" in caplog.text
            admin = connect(server.url)
            await add_origins(admin, ["https://after.example"], key=key, channel=provider.channel)
            await calls.reach(3)
            assert calls.value == 3
            await admin.aclose()
            task_group.cancel_scope.cancel()
        await provider.aclose()


@pytest.mark.anyio
async def test_a_change_made_right_after_a_redis_restart_is_seen_after_the_reload_on_resubscribe(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    """After an outage the watcher resubscribes (within ``reconnect_max``) and reloads: that
    one load sees a change made while it was away. It runs on a fresh connection: on a pooled
    one that predates the restart it failed, and the change waited for the retry 5 s later."""
    reconnect_max = 0.3
    channel = f"{key}:changes"
    with redis_server() as server:
        admin = connect(server.url)
        await admin.sadd(key, "https://a.example")
        provider = CountingProvider(
            server.url,
            key=key,
            channel=channel,
            reconnect_initial=0.05,
            reconnect_max=reconnect_max,
            timeout=0.5,
        )
        policy = Policy(allow_origins=provider)
        async with anyio.create_task_group() as task_group:
            policy.attach(task_group)
            assert (await policy.aevaluate("https://a.example")).allowed
            await provider.loaded(2)  # the reload that subscribing started, on a pooled connection
            await settled(policy)
            with caplog.at_level(logging.WARNING, "corsengine"):
                server.stop()
                for _ in range(5):  # down: the last good list answers, no request fails
                    assert (await policy.aevaluate("https://a.example")).allowed
                    await anyio.sleep(0.2)  # the backoff grows to its cap meanwhile
                loads = provider.loads  # none while Redis is down: the clock's ttl is far off
                server.start()
                caplog.clear()
                await admin.aclose()
                admin = connect(server.url)  # a new server: a new client
                await add_origins(admin, ["https://b.example"], key=key, channel=channel)
                # Published before the watcher is back: lost, and covered by the reload on
                # resubscribe, the first load after the restart.
                await provider.loaded(loads + 1)
                await settled(policy)
                assert (await policy.aevaluate("https://b.example")).allowed  # the first request
            assert "resubscribed" in caplog.text
            assert "unavailable" not in caplog.text  # no load ran on a dead connection
            policy.attach(None)
            task_group.cancel_scope.cancel()
        await admin.aclose()
        await policy.aclose()


class _SilentPubSub:
    """A channel whose connection died without a word: no messages, no PONG."""

    pings = 0

    async def subscribe(self, channel: str) -> None:
        pass

    answered = False

    async def get_message(self, **options: float) -> dict[str, Any] | None:
        if not self.answered:  # one PONG, then nothing ever again
            self.answered = True
            return {"type": "pong", "data": ""}
        await anyio.sleep(options["timeout"])
        return None

    async def ping(self) -> None:
        _SilentPubSub.pings += 1

    async def aclose(self) -> None:
        pass


class _SilentClient:
    def __init__(self) -> None:
        self.channels = 0
        self.reconnected = anyio.Event()

    def pubsub(self) -> _SilentPubSub:
        self.channels += 1
        if self.channels == 2:
            self.reconnected.set()
        return _SilentPubSub()


@pytest.mark.anyio
async def test_a_half_open_connection_is_detected_by_ping(caplog: pytest.LogCaptureFixture) -> None:
    client = _SilentClient()
    provider = RedisProvider(client=client, health_interval=0.02, reconnect_initial=0.01)  # type: ignore[arg-type]
    # Until the watcher gives up on the silent channel and opens a new one (not a time window).
    with caplog.at_level(logging.WARNING, "corsengine"), anyio.fail_after(STUCK):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(provider.watch, lambda: None)
            await client.reconnected.wait()
            task_group.cancel_scope.cancel()
    assert "did not answer a PING" in caplog.text
    assert _SilentPubSub.pings >= 1


# --- admin ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_admin_validates_normalizes_and_publishes(client: Client, key: str) -> None:
    channel = f"{key}:changes"
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    assert await add_origins(
        client, ["HTTPS://App.Example:443", "https://*.b.example"], key=key, channel=channel
    ) == [
        "https://app.example",
        "https://*.b.example",
    ]
    assert await list_origins(client, key=key) == ["https://*.b.example", "https://app.example"]
    with pytest.raises(ConfigurationError) as caught:
        await add_origins(client, ["https://ok.example", "https://x.example/p", "*.c.example"], key=key)
    assert caught.value.codes == ("corsengine.E001", "corsengine.E003")
    with pytest.raises(ConfigurationError, match="E030"):
        await add_origins(client, "*", key=key)
    assert await list_origins(client, key=key) == ["https://*.b.example", "https://app.example"]  # unchanged
    assert await remove_origins(client, ["https://APP.example", "junk value"], key=key, channel=channel) == 1
    assert await remove_origins(client, [], key=key) == 0
    assert await remove_origins(client, "https://*.b.example", key=key, channel=channel) == 1
    assert await remove_origins(client, ["https://gone.example"], key=key) == 0  # the key is gone
    messages = []
    with anyio.fail_after(5):
        while len(messages) < 4:
            message = await pubsub.get_message(timeout=1)
            if message is not None:
                messages.append(message)
    assert [m["type"] for m in messages] == ["subscribe", "message", "message", "message"]
    assert json.loads(messages[1]["data"]) == {"added": ["https://app.example", "https://*.b.example"]}
    await pubsub.aclose()


@pytest.mark.anyio
async def test_admin_with_a_hash_and_metadata(client: Client, key: str) -> None:
    await add_origins(client, ["https://a.example"], key=key, metadata={"owner": "a"})
    await add_origins(client, ["https://b.example"], key=key)  # an existing hash: metadata {}
    _, metadata = await read_allowlist(client, key)
    assert metadata == {"https://a.example": {"owner": "a"}, "https://b.example": {}}
    assert await add_origins(client, ["*"], key=key, allow_any=True) == ["*"]
    assert await remove_origins(client, ["https://a.example", "*"], key=key) == 2
    await client.delete(key)
    await client.sadd(key, "https://a.example")
    with pytest.raises(ProviderError, match="metadata needs a hash"):
        await add_origins(client, ["https://b.example"], key=key, metadata={})
    await client.delete(key)
    await client.rpush(key, "x")
    with pytest.raises(ProviderError, match="is a list"):
        await add_origins(client, ["https://b.example"], key=key)
    with pytest.raises(ProviderError, match="is a list"):
        await remove_origins(client, ["https://b.example"], key=key)


# --- CLI --------------------------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="corsengine")
    _cli_redis.add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["redis", *argv])
    return int(args.func(args))


@pytest.fixture
def cli_key(redis_session: RedisServer, key: str) -> Iterator[list[str]]:
    yield ["--url", redis_session.url, "--key", key]


def test_cli_add_list_remove(cli_key: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("add", "https://A.example", "https://*.b.example", *cli_key) == 0
    assert capsys.readouterr().out == "added https://a.example\nadded https://*.b.example\n"
    assert run_cli("list", *cli_key) == 0
    assert capsys.readouterr().out == "https://*.b.example\nhttps://a.example\n"
    assert run_cli("remove", "https://a.example", *cli_key) == 0
    assert capsys.readouterr().out == "removed 1 entry\n"
    assert run_cli("remove", "https://a.example", "https://*.b.example", *cli_key) == 0
    assert capsys.readouterr().out == "removed 1 entry\n"
    assert run_cli("remove", "https://nothing.example", *cli_key) == 0
    assert capsys.readouterr().out == "removed 0 entries\n"


def test_cli_metadata_and_json_listing(cli_key: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("add", "https://a.example", "--metadata", '{"owner": "a"}', *cli_key) == 0
    capsys.readouterr()
    assert run_cli("list", *cli_key) == 0
    assert capsys.readouterr().out == 'https://a.example  {"owner": "a"}\n'
    assert run_cli("list", "--json", *cli_key) == 0
    assert json.loads(capsys.readouterr().out) == {"https://a.example": {"owner": "a"}}


@pytest.mark.parametrize(
    ("argv", "status", "error"),
    [
        (["add", "https://a.example/path"], 2, "error: corsengine.E001"),
        (["add", "*"], 2, "corsengine.E030"),
        (["add", "https://a.example", "--metadata", "{"], 2, "--metadata is not JSON"),
        (["add", "https://a.example", "--metadata", "[]"], 2, "must be a JSON object"),
    ],
)
def test_cli_refuses_bad_input_and_writes_nothing(
    cli_key: list[str], capsys: pytest.CaptureFixture[str], argv: list[str], status: int, error: str
) -> None:
    assert run_cli(*argv, *cli_key) == status
    assert error in capsys.readouterr().err
    assert run_cli("list", *cli_key) == 0
    assert capsys.readouterr().out == ""


def test_cli_reports_redis_trouble(
    redis_session: RedisServer, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    down = f"redis://:pw@127.0.0.1:{free_port()}/0"
    assert run_cli("list", "--url", down, "--timeout", "1") == 3
    err = capsys.readouterr().err
    assert "is unavailable" in err and "pw" not in err
    assert (
        run_cli("add", "https://a.example", "--url", redis_session.url, "--key", key, "--metadata", "{}") == 0
    )
    capsys.readouterr()
    assert (
        run_cli("add", "https://b.example", "--url", redis_session.url, "--key", key, "--metadata", "{}") == 0
    )
    # A key of another type.
    import redis

    redis.Redis.from_url(redis_session.url).rpush(f"{key}:list", "x")
    assert run_cli("list", "--url", redis_session.url, "--key", f"{key}:list") == 3
    assert "is a list" in capsys.readouterr().err


def test_cli_without_redis_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import corsengine.providers

    monkeypatch.delitem(sys.modules, "corsengine.providers.redis", raising=False)
    monkeypatch.delattr(corsengine.providers, "redis", raising=False)
    monkeypatch.setitem(sys.modules, "redis", None)
    assert run_cli("list") == 2
    assert "pip install 'corsengine[redis]'" in capsys.readouterr().err
