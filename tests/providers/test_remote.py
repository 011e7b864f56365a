"""RemoteJSONProvider with respx: conditional requests, max-age, caps, redirects, disk copy."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
import respx

from corsengine import Policy
from corsengine.exceptions import ConfigurationError, ProviderError
from corsengine.providers import RemoteJSONProvider
from corsengine.providers.remote import cache_control_ttl
from corsengine.testing import FakeClock

URL = "https://config.example/cors.json"
GOOD = ["https://app.example.com", "https://*.partner.example"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def mock() -> respx.MockRouter:
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.mark.parametrize(
    ("header", "ttl"),
    [
        (None, None),
        ("", None),
        ("public", None),
        ("max-age=120", 120.0),
        ("public, MAX-AGE=30, must-revalidate", 30.0),
        ('max-age="45"', 45.0),
        ("s-maxage=99", None),
        ("no-cache", 0.0),
        ("max-age=60, no-store", 0.0),
        ("max-age=abc", None),
    ],
)
def test_cache_control_ttl(header: str | None, ttl: float | None) -> None:
    assert cache_control_ttl(header) == ttl


@pytest.mark.anyio
async def test_fetches_the_document_and_revalidates_with_its_validators(
    mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    route = mock.get(URL)
    route.side_effect = [
        httpx.Response(
            200,
            json={"origins": GOOD, "version": "v1"},
            headers={"ETag": '"abc"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"},
        ),
        httpx.Response(304),
    ]
    provider = RemoteJSONProvider(URL, client=client, headers={"Authorization": "Bearer t"})
    rules = await provider.load()
    assert rules.entries == set(GOOD)
    assert provider.version == "v1"
    assert "if-none-match" not in route.calls[0].request.headers
    again = await provider.load()
    assert again is rules  # 304: the same rules, a successful refresh
    sent = route.calls[1].request.headers
    assert sent["If-None-Match"] == '"abc"'
    assert sent["If-Modified-Since"] == "Wed, 21 Oct 2015 07:28:00 GMT"
    assert sent["Authorization"] == "Bearer t"


@pytest.mark.anyio
async def test_max_age_sets_the_ttl_within_bounds(mock: respx.MockRouter, client: httpx.AsyncClient) -> None:
    route = mock.get(URL)
    provider = RemoteJSONProvider(URL, client=client, ttl=60, min_ttl=10, max_ttl=600)
    for header, ttl in [("max-age=120", 120), ("max-age=1", 10), ("max-age=86400", 600), (None, 60)]:
        route.return_value = httpx.Response(
            200, json=GOOD, headers={"Cache-Control": header} if header else {}
        )
        await provider.load()
        assert provider.ttl == ttl
    # A 304 carries a fresh Cache-Control too.
    route.return_value = httpx.Response(200, json=GOOD, headers={"ETag": "x"})
    await provider.load()
    route.return_value = httpx.Response(304, headers={"Cache-Control": "max-age=300"})
    await provider.load()
    assert provider.ttl == 300


@pytest.mark.anyio
async def test_the_policy_refetches_when_max_age_says(
    mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    route = mock.get(URL)
    route.return_value = httpx.Response(200, json=GOOD, headers={"Cache-Control": "max-age=300"})
    clock = FakeClock()
    policy = Policy(allow_origins=RemoteJSONProvider(URL, client=client, ttl=30), clock=clock)
    assert (await policy.aevaluate("https://app.example.com")).allowed
    clock.advance(100)  # stale by the configured ttl, fresh by max-age
    assert (await policy.aevaluate("https://app.example.com")).allowed
    assert route.call_count == 1
    clock.advance(250)
    await policy.refresh()
    assert route.call_count == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500), "answered HTTP 500"),
        (httpx.Response(304), "answered HTTP 304"),  # a 304 with nothing to keep
        (httpx.Response(200, content=b"[1,"), "invalid JSON at line 1 column 4"),
        (httpx.Response(200, content=b'["https://a.example"]\xff'), "not UTF-8"),
        (httpx.Response(200, json={"origins": GOOD, "extra": 1}), "extra: Extra inputs are not permitted"),
        (httpx.Response(200, json=["https://a.example", "https://a.example/x"]), "E001"),
        (httpx.Response(200, json={"origins": [], "regexes": [".*"]}), "allow_regexes=True"),
        (httpx.Response(302, headers={"Location": "http://config.example/"}), "not https"),
        (httpx.Response(302, headers={"Location": "file:///etc/passwd"}), "redirected to"),
    ],
)
async def test_every_failure_raises_so_the_last_good_list_stays(
    mock: respx.MockRouter, client: httpx.AsyncClient, response: httpx.Response, message: str
) -> None:
    mock.get(URL).return_value = response
    with pytest.raises(ProviderError, match=message):
        await RemoteJSONProvider(URL, client=client).load()


@pytest.mark.anyio
async def test_transport_errors_become_provider_errors(
    mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    mock.get(URL).side_effect = httpx.ConnectError("refused")
    with pytest.raises(ProviderError, match="ConnectError: refused"):
        await RemoteJSONProvider(URL, client=client).load()


@pytest.mark.anyio
async def test_the_body_is_capped(mock: respx.MockRouter, client: httpx.AsyncClient) -> None:
    big = json.dumps([f"https://a{i}.example" for i in range(100)]).encode()
    route = mock.get(URL)
    route.return_value = httpx.Response(200, content=big)
    with pytest.raises(ProviderError, match="declares"):
        await RemoteJSONProvider(URL, client=client, max_bytes=100).load()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64):
            yield big[start : start + 64]

    route.return_value = httpx.Response(200, content=chunks())  # no Content-Length: streamed
    with pytest.raises(ProviderError, match="more than the 100-byte cap"):
        await RemoteJSONProvider(URL, client=client, max_bytes=100).load()


@pytest.mark.anyio
async def test_redirects_are_followed_up_to_the_limit(
    mock: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    mock.get(URL).return_value = httpx.Response(301, headers={"Location": "/v2.json"})
    v2 = mock.get("https://config.example/v2.json")
    v2.return_value = httpx.Response(302, headers={"Location": "https://mirror.example/cors.json"})
    mirror = mock.get("https://mirror.example/cors.json")
    mirror.return_value = httpx.Response(200, json=GOOD)
    provider = RemoteJSONProvider(URL, client=client, max_redirects=2, headers={"Authorization": "secret"})
    assert (await provider.load()).entries == set(GOOD)
    assert v2.calls[0].request.headers["Authorization"] == "secret"  # same host
    assert "Authorization" not in mirror.calls[0].request.headers  # never to another host
    with pytest.raises(ProviderError, match="redirected more than 1 times"):
        await RemoteJSONProvider(URL, client=client, max_redirects=1).load()
    plain = "http://config.example/cors.json"
    mock.get(plain).return_value = httpx.Response(307, headers={"Location": "ftp://config.example/"})
    with pytest.raises(ProviderError, match=r"redirected to 'ftp://config\.example/'$"):
        await RemoteJSONProvider(plain, client=client).load()


@pytest.mark.anyio
async def test_its_own_client_is_created_and_closed(mock: respx.MockRouter) -> None:
    mock.get(URL).return_value = httpx.Response(200, json=GOOD)
    provider = RemoteJSONProvider(URL, connect_timeout=1, read_timeout=2)
    await provider.load()
    own = provider.client
    assert own.timeout.connect == 1 and own.timeout.read == 2
    await provider.aclose()
    assert own.is_closed
    await provider.aclose()  # twice is fine


@pytest.mark.anyio
async def test_an_injected_client_is_left_open(mock: respx.MockRouter, client: httpx.AsyncClient) -> None:
    provider = RemoteJSONProvider(URL, client=client)
    await provider.aclose()
    assert not client.is_closed
    assert repr(provider) == f"RemoteJSONProvider({URL!r})"


@pytest.mark.anyio
async def test_a_new_version_is_logged(
    mock: respx.MockRouter, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    route = mock.get(URL)
    provider = RemoteJSONProvider(URL, client=client)
    for version in ("1", "1", "2"):
        route.return_value = httpx.Response(200, json={"origins": GOOD, "version": version})
        with caplog.at_level(logging.INFO, "corsengine"):
            await provider.load()
    assert [r.getMessage() for r in caplog.records] == [f"corsengine: '{URL}' is now version '2'"]


def test_bad_options_fail_at_construction() -> None:
    # Every option's checks: tests/providers/test_options.py.
    with pytest.raises(ConfigurationError, match="min_ttl=10 is greater than max_ttl=5") as caught:
        RemoteJSONProvider(URL, min_ttl=10, max_ttl=5)
    assert caught.value.codes == ("corsengine.E024",)
    with pytest.raises(ConfigurationError, match="max_bytes=0") as caught:
        RemoteJSONProvider(URL, max_bytes=0)
    assert caught.value.codes == ("corsengine.E024",)
    assert RemoteJSONProvider(URL, ttl=1, min_ttl=5).ttl == 5


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import corsengine.providers as providers

    monkeypatch.delitem(sys.modules, "corsengine.providers.remote", raising=False)
    monkeypatch.setitem(sys.modules, "httpx", None)
    with pytest.raises(
        ImportError, match=r"RemoteJSONProvider needs httpx: pip install 'corsengine\[remote\]'"
    ):
        providers.RemoteJSONProvider  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        providers.Nope  # noqa: B018


def test_a_missing_module_that_is_no_extra_is_not_disguised(monkeypatch: pytest.MonkeyPatch) -> None:
    import corsengine.providers as providers

    monkeypatch.delitem(sys.modules, "corsengine.providers.file", raising=False)
    monkeypatch.setitem(sys.modules, "tomllib", None)
    with pytest.raises(ModuleNotFoundError, match="tomllib"):
        providers.FileProvider  # noqa: B018


# --- the on-disk copy ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_last_good_document_is_saved_and_served_after_a_restart_during_an_outage(
    mock: respx.MockRouter, client: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "state" / "cors.json"
    route = mock.get(URL)
    route.return_value = httpx.Response(200, json={"origins": GOOD, "version": "9"}, headers={"ETag": '"e"'})
    first = RemoteJSONProvider(URL, client=client, cache_path=cache, min_ttl=2)
    await first.load()
    saved = json.loads(cache.read_text())
    assert saved["document"] == {"origins": GOOD, "version": "9"} and saved["etag"] == '"e"'
    assert [p.name for p in cache.parent.iterdir()] == ["cors.json"]  # no temporary file left

    route.side_effect = httpx.ConnectError("down")  # the process restarts during an outage
    restarted = RemoteJSONProvider(URL, client=client, cache_path=cache, min_ttl=2)
    with caplog.at_level(logging.WARNING, "corsengine"):
        rules = await restarted.load()
    assert rules.entries == set(GOOD) and restarted.version == "9"
    assert restarted.ttl == 2  # retry the network soon
    assert "serving the copy saved in" in caplog.text
    with pytest.raises(ProviderError, match="down"):
        await restarted.load()  # once running, failures go to the resolver's last good

    route.side_effect = None
    route.return_value = httpx.Response(304)
    assert (await restarted.load()).entries == set(GOOD)  # revalidated with the saved ETag
    assert route.calls[-1].request.headers["If-None-Match"] == '"e"'


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json", "Expecting value"),
        ("[]", "not a corsengine cache file"),
        (json.dumps({"format": 1, "url": "https://other.example/", "saved_at": 0, "document": []}), "holds"),
        (json.dumps({"format": 1, "url": URL, "saved_at": 0, "document": []}), "over cache_max_age"),
        (json.dumps({"format": 1, "url": URL, "saved_at": "now", "document": []}), "could not convert"),
        (json.dumps({"format": 1, "url": URL, "saved_at": 9e99, "document": ["bad"]}), "E00"),
    ],
)
async def test_a_saved_copy_that_cannot_be_trusted_is_not_served(
    mock: respx.MockRouter,
    client: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    content: str,
    reason: str,
) -> None:
    cache = tmp_path / "cors.json"
    cache.write_text(content)
    mock.get(URL).side_effect = httpx.ConnectError("down")
    with caplog.at_level(logging.WARNING, "corsengine"), pytest.raises(ProviderError, match="down"):
        await RemoteJSONProvider(URL, client=client, cache_path=cache).load()
    assert reason in caplog.text


@pytest.mark.anyio
async def test_no_saved_copy_and_a_copy_that_cannot_be_written(
    mock: respx.MockRouter, client: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    route = mock.get(URL)
    route.side_effect = httpx.ConnectError("down")
    with pytest.raises(ProviderError, match="down"):
        await RemoteJSONProvider(URL, client=client, cache_path=tmp_path / "missing.json").load()
    (tmp_path / "file").write_text("")
    route.side_effect = None
    route.return_value = httpx.Response(200, json=GOOD)
    with caplog.at_level(logging.WARNING, "corsengine"):
        rules = await RemoteJSONProvider(
            URL, client=client, cache_path=tmp_path / "file" / "cors.json"
        ).load()
    assert rules.entries == set(GOOD)  # the fetch still counts
    assert "could not save" in caplog.text


@pytest.mark.anyio
async def test_a_failed_write_leaves_no_temporary_file(
    mock: respx.MockRouter, client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock.get(URL).return_value = httpx.Response(200, json=GOOD)

    def broken_replace(source: str, target: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    await RemoteJSONProvider(URL, client=client, cache_path=tmp_path / "cors.json").load()
    assert os.listdir(tmp_path) == []


@pytest.mark.anyio
async def test_a_first_fetch_that_times_out_falls_back_to_the_saved_copy(
    mock: respx.MockRouter, client: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cors.json"
    route = mock.get(URL)
    route.return_value = httpx.Response(200, json=GOOD)
    await RemoteJSONProvider(URL, client=client, cache_path=cache).load()

    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(60)
        raise AssertionError("the total timeout should have fired")

    route.side_effect = hang
    clock = FakeClock()
    provider = RemoteJSONProvider(URL, client=client, cache_path=cache, timeout=0.1)
    # The provider's own timeout fires first; the resolver's is 100 times longer, so that the
    # saved copy is read in time however busy the machine.
    policy = Policy(allow_origins=provider, clock=clock, timeout=10)
    with caplog.at_level(logging.WARNING, "corsengine"):
        assert (await policy.aevaluate("https://app.example.com")).allowed
    assert "failed ('timed out'); serving the copy saved in" in caplog.text


def test_a_star_import_loads_no_optional_dependency() -> None:
    code = (
        "import sys\n"
        "sys.modules['httpx'] = sys.modules['redis'] = None  # as if the extras were not installed\n"
        "from corsengine.providers import *\n"
        "import corsengine.providers as providers\n"
        "assert StaticProvider and PredicateProvider and CallableProvider and Rules\n"
        "assert 'RemoteJSONProvider' not in globals()\n"
        "assert {'FileProvider', 'RedisProvider', 'RemoteJSONProvider'} <= set(dir(providers))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


class _Chunks(httpx.AsyncByteStream):
    """A body that arrives in network-sized pieces, as from a real server."""

    def __init__(self, body: bytes, size: int = 65536) -> None:
        self.body, self.size = body, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.size):
            yield self.body[start : start + self.size]


def _compressed(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("encoding", "wbits"),
    [
        ("gzip", 31),
        ("x-gzip", 31),
        ("deflate", 15),
        ("deflate", -15),
        ("identity", 0),
        ("GZIP, identity", 31),
    ],
    ids=["gzip", "x-gzip", "deflate", "raw-deflate", "identity", "listed"],
)
async def test_compressed_documents_are_decoded(
    mock: respx.MockRouter, client: httpx.AsyncClient, encoding: str, wbits: int
) -> None:
    body = json.dumps(GOOD).encode()
    sent = _compressed(body, wbits) if wbits else body
    route = mock.get(URL).respond(200, headers={"Content-Encoding": encoding}, stream=_Chunks(sent, 7))
    assert (await RemoteJSONProvider(URL, client=client).load()).entries == set(GOOD)
    # Only the encodings whose decoded size can be bounded while decoding are asked for.
    assert route.calls.last.request.headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("br", b"x", "sent Content-Encoding 'br'"),
        ("gzip, gzip", b"x", "sent Content-Encoding 'gzip, gzip'"),
        ("gzip", b"not gzip at all", "does not decompress"),
        ("gzip", _compressed(json.dumps(GOOD).encode(), 31)[:-12], "cut short"),
    ],
)
async def test_encodings_it_cannot_bound_or_decode_are_refused(
    mock: respx.MockRouter, client: httpx.AsyncClient, encoding: str, body: bytes, message: str
) -> None:
    mock.get(URL).respond(200, headers={"Content-Encoding": encoding}, stream=_Chunks(body))
    with pytest.raises(ProviderError, match=message):
        await RemoteJSONProvider(URL, client=client).load()


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """48 kB of gzip that expands to 48 MB of spaces (a 1 MB bomb expands to 1 GB)."""
    return _compressed(b" " * 48_000_000, 31)


@pytest.mark.anyio
async def test_a_compression_bomb_is_refused_before_it_is_expanded(
    mock: respx.MockRouter, client: httpx.AsyncClient, gzip_bomb: bytes
) -> None:
    """httpx's decoders expand each network chunk whole (64 kB of gzip: 64 MB): the body is
    decoded here instead, never past what the cap leaves. Peak memory stays near the cap."""
    assert len(gzip_bomb) < 65536  # one network chunk
    mock.get(URL).respond(200, headers={"Content-Encoding": "gzip"}, stream=_Chunks(gzip_bomb))
    provider = RemoteJSONProvider(URL, client=client)
    tracemalloc.start()
    try:
        with pytest.raises(ProviderError, match="sent more than the 1000000-byte cap"):
            await provider.load()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"peak {peak / 1e6:.1f} MB while refusing the bomb"


@pytest.mark.anyio
async def test_a_response_made_in_memory_is_capped_too() -> None:
    """httpx.MockTransport hands over a body already read and decoded (nothing to stream)."""
    body = [f"https://a{index}.example" for index in range(100)]

    def respond(request: httpx.Request) -> httpx.Response:
        response = httpx.Response(200, json=body)
        del response.headers["Content-Length"]  # not declared: only the body's size can tell
        return response

    transport = httpx.MockTransport(respond)
    async with httpx.AsyncClient(transport=transport) as client:
        assert len((await RemoteJSONProvider(URL, client=client).load()).entries) == 100
        with pytest.raises(ProviderError, match="more than the 100-byte cap"):
            await RemoteJSONProvider(URL, client=client, max_bytes=100).load()
