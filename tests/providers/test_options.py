"""Provider constructors: every bad option reported at once, each with a code and a hint."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest

from corsengine.exceptions import ConfigurationError
from corsengine.providers import FileProvider, RedisProvider, RemoteJSONProvider

OPTION = "corsengine.E024"
FLAG = "corsengine.E019"
SOURCE = "corsengine.E025"
URL = "https://config.example/cors.json"


def file_provider(**options: Any) -> FileProvider:
    return FileProvider(options.pop("path", "cors.json"), **options)


def remote_provider(**options: Any) -> RemoteJSONProvider:
    return RemoteJSONProvider(options.pop("url", URL), **options)


def redis_provider(**options: Any) -> RedisProvider:
    return RedisProvider(**options)


CASES = [
    # FileProvider
    pytest.param(file_provider, {"path": "cors.yaml"}, [SOURCE], id="file-unknown-suffix"),
    pytest.param(file_provider, {"path": "cors"}, [SOURCE], id="file-no-suffix"),
    pytest.param(file_provider, {"path": ""}, [OPTION], id="file-empty-path"),
    pytest.param(file_provider, {"path": 42}, [OPTION], id="file-path-not-a-path"),
    pytest.param(file_provider, {"path": b"cors.json"}, [OPTION], id="file-bytes-path"),
    pytest.param(file_provider, {"format": "yaml"}, [SOURCE], id="file-unknown-format"),
    pytest.param(file_provider, {"poll_interval": 0}, [OPTION], id="file-zero-poll-interval"),
    pytest.param(file_provider, {"poll_interval": -1.0}, [OPTION], id="file-negative-poll-interval"),
    pytest.param(file_provider, {"poll_interval": "1"}, [OPTION], id="file-string-poll-interval"),
    pytest.param(file_provider, {"poll_interval": True}, [OPTION], id="file-bool-poll-interval"),
    pytest.param(file_provider, {"poll_interval": math.nan}, [OPTION], id="file-nan-poll-interval"),
    pytest.param(file_provider, {"ttl": math.inf}, [OPTION], id="file-inf-ttl"),
    pytest.param(file_provider, {"ttl": None}, [OPTION], id="file-none-ttl"),
    pytest.param(file_provider, {"max_bytes": 0}, [OPTION], id="file-zero-max-bytes"),
    pytest.param(file_provider, {"max_bytes": 1e6}, [OPTION], id="file-float-max-bytes"),
    pytest.param(file_provider, {"allow_regexes": "false"}, [FLAG], id="file-string-flag"),
    pytest.param(file_provider, {"use_watchfiles": 0}, [FLAG], id="file-int-flag"),
    # RemoteJSONProvider
    pytest.param(remote_provider, {"url": "ftp://config.example/cors.json"}, [SOURCE], id="remote-ftp"),
    pytest.param(remote_provider, {"url": "config.example/cors.json"}, [SOURCE], id="remote-no-scheme"),
    pytest.param(remote_provider, {"url": "https:///cors.json"}, [SOURCE], id="remote-no-host"),
    pytest.param(remote_provider, {"url": "http://[::1"}, [SOURCE], id="remote-unparsable"),
    pytest.param(remote_provider, {"url": None}, [OPTION], id="remote-url-none"),
    pytest.param(remote_provider, {"client": object()}, [OPTION], id="remote-client-not-httpx"),
    pytest.param(remote_provider, {"ttl": 0}, [OPTION], id="remote-zero-ttl"),
    pytest.param(remote_provider, {"min_ttl": 0}, [OPTION], id="remote-zero-min-ttl"),
    pytest.param(remote_provider, {"min_ttl": 10, "max_ttl": 5}, [OPTION], id="remote-min-over-max"),
    pytest.param(remote_provider, {"max_ttl": "3600"}, [OPTION], id="remote-string-max-ttl"),
    pytest.param(remote_provider, {"connect_timeout": -1}, [OPTION], id="remote-negative-timeout"),
    pytest.param(remote_provider, {"read_timeout": math.inf}, [OPTION], id="remote-inf-timeout"),
    pytest.param(remote_provider, {"timeout": None}, [OPTION], id="remote-none-timeout"),
    pytest.param(remote_provider, {"max_bytes": 0}, [OPTION], id="remote-zero-max-bytes"),
    pytest.param(remote_provider, {"max_bytes": True}, [OPTION], id="remote-bool-max-bytes"),
    pytest.param(remote_provider, {"max_redirects": -1}, [OPTION], id="remote-negative-redirects"),
    pytest.param(remote_provider, {"max_redirects": 2.0}, [OPTION], id="remote-float-redirects"),
    pytest.param(remote_provider, {"allow_regexes": 1}, [FLAG], id="remote-int-flag"),
    pytest.param(remote_provider, {"headers": [("A", "b")]}, [OPTION], id="remote-headers-not-mapping"),
    pytest.param(remote_provider, {"headers": {"X-N": 1}}, [OPTION], id="remote-header-not-string"),
    pytest.param(remote_provider, {"headers": {"X Token": "a"}}, [OPTION], id="remote-header-name-not-token"),
    pytest.param(
        remote_provider, {"headers": {"X-Token": "a\r\nHost: b"}}, [OPTION], id="remote-header-crlf"
    ),
    pytest.param(remote_provider, {"headers": {"X-Team": "café"}}, [OPTION], id="remote-header-not-ascii"),
    pytest.param(remote_provider, {"cache_path": 5}, [OPTION], id="remote-cache-path-not-path"),
    pytest.param(remote_provider, {"cache_max_age": 0}, [OPTION], id="remote-zero-cache-max-age"),
    # RedisProvider
    pytest.param(redis_provider, {"url": "http://127.0.0.1:6379"}, [SOURCE], id="redis-http-url"),
    pytest.param(redis_provider, {"url": 6379}, [OPTION], id="redis-url-not-string"),
    pytest.param(redis_provider, {"key": ""}, [OPTION], id="redis-empty-key"),
    pytest.param(redis_provider, {"channel": None}, [OPTION], id="redis-none-channel"),
    pytest.param(redis_provider, {"ttl": -60}, [OPTION], id="redis-negative-ttl"),
    pytest.param(redis_provider, {"timeout": "2"}, [OPTION], id="redis-string-timeout"),
    pytest.param(redis_provider, {"reconnect_initial": 0}, [OPTION], id="redis-zero-reconnect"),
    pytest.param(redis_provider, {"reconnect_initial": 20}, [OPTION], id="redis-initial-over-max"),
    pytest.param(redis_provider, {"reconnect_max": math.nan}, [OPTION], id="redis-nan-reconnect-max"),
    pytest.param(redis_provider, {"health_interval": 0}, [OPTION], id="redis-zero-health-interval"),
    pytest.param(redis_provider, {"health_interval": False}, [OPTION], id="redis-bool-health-interval"),
]


@pytest.mark.parametrize(("make", "options", "codes"), CASES)
def test_a_bad_option_is_a_configuration_error(make: Any, options: dict[str, Any], codes: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make(**options)
    assert list(caught.value.codes) == codes
    (problem,) = caught.value.problems
    assert problem.message.startswith(f"{type(make()).__name__}: ")
    assert problem.hint


def test_the_defaults_and_good_values_are_accepted(tmp_path: Path) -> None:
    file_provider()
    file_provider(path=tmp_path / "cors", format="toml", poll_interval=0.01, ttl=1, max_bytes=1)
    remote_provider()
    remote_provider(
        url=httpx.URL("http://127.0.0.1:8000/cors.json"),
        client=httpx.AsyncClient(),
        ttl=1,
        min_ttl=1,
        max_ttl=1,
        max_redirects=0,
        headers={"Authorization": "Bearer t"},
        cache_path=tmp_path / "copy.json",
        cache_max_age=None,
    )
    redis_provider()
    redis_provider(url="rediss://:secret@cache.internal:6380/1", reconnect_initial=1, reconnect_max=1)
    redis_provider(url="unix:///run/redis.sock", client=object())  # any client object: duck-typed


def test_file_provider_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        FileProvider(
            "cors.yaml",
            poll_interval="1",  # type: ignore[arg-type]
            ttl=-1,
            allow_regexes="no",  # type: ignore[arg-type]
            max_bytes=0,
            use_watchfiles=None,  # type: ignore[arg-type]
        )
    assert [str(problem) for problem in caught.value.problems] == [
        "corsengine.E025: FileProvider: cannot tell the format of 'cors.yaml' from its suffix "
        "(hint: name the file .json or .toml, or pass format='json' or format='toml')",
        "corsengine.E024: FileProvider: poll_interval='1' is a str, not a number of seconds "
        "(hint: use a positive number of seconds, e.g. poll_interval=1.0)",
        "corsengine.E024: FileProvider: ttl=-1 is out of range: it must be positive "
        "(hint: use a positive number of seconds, e.g. ttl=300.0)",
        "corsengine.E019: FileProvider: allow_regexes='no' is a str, not True or False "
        "(hint: pass allow_regexes=True or allow_regexes=False)",
        "corsengine.E024: FileProvider: max_bytes=0 is out of range: it must be at least 1 "
        "(hint: use a whole number from 1 up, e.g. max_bytes=1_000_000)",
        "corsengine.E019: FileProvider: use_watchfiles=None is not True or False "
        "(hint: pass use_watchfiles=True or use_watchfiles=False)",
    ]


def test_remote_provider_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RemoteJSONProvider(
            "ftp://config.example/cors.json",
            client=object(),  # type: ignore[arg-type]
            ttl="60",  # type: ignore[arg-type]
            min_ttl=600,
            max_ttl=60,
            connect_timeout=math.nan,
            read_timeout=0,
            timeout=math.inf,
            max_bytes=-5,
            max_redirects=1.5,  # type: ignore[arg-type]
            allow_regexes=None,  # type: ignore[arg-type]
            headers={"Authorization": b"secret"},  # type: ignore[dict-item]
            cache_path=3,  # type: ignore[arg-type]
            cache_max_age=-1,
        )
    assert caught.value.codes == (SOURCE,) + (OPTION,) * 8 + (FLAG,) + (OPTION,) * 3
    messages = [problem.message.removeprefix("RemoteJSONProvider: ") for problem in caught.value.problems]
    assert messages == [
        "url 'ftp://config.example/cors.json' is not an absolute http(s) URL",
        "client is an object, not an httpx.AsyncClient",
        "ttl='60' is a str, not a number of seconds",
        "min_ttl=600 is greater than max_ttl=60",
        "connect_timeout=nan is not a finite number",
        "read_timeout=0 is out of range: it must be positive",
        "timeout=inf is not a finite number",
        "max_bytes=-5 is out of range: it must be at least 1",
        "max_redirects=1.5 is a float, not a whole number",
        "allow_regexes=None is not True or False",
        "headers entry 'Authorization': b'secret' is not a pair of strings",
        "cache_path=3 is an int, not a path",
        "cache_max_age=-1 is out of range: it must be positive",
    ]
    assert caught.value.problems[-1].hint == (
        "use a positive number of seconds, e.g. cache_max_age=86400.0, or cache_max_age=None for no limit"
    )


def test_redis_provider_reports_every_problem_at_once_and_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisProvider(
            "http://:hunter2@cache.internal:6379/0",
            key="",
            channel=b"changes",  # type: ignore[arg-type]
            ttl=0,
            timeout=True,
            reconnect_initial=30,
            reconnect_max=10,
            health_interval=-1,
        )
    assert caught.value.codes == (SOURCE,) + (OPTION,) * 6
    assert "hunter2" not in str(caught.value)
    messages = [problem.message.removeprefix("RedisProvider: ") for problem in caught.value.problems]
    assert messages == [
        "url 'http://***@cache.internal:6379/0' is not a Redis URL",
        "key is the empty string",
        "channel=b'changes' is a bytes, not a string",
        "ttl=0 is out of range: it must be positive",
        "timeout=True is a bool, not a number of seconds",
        "reconnect_initial=30 is greater than reconnect_max=10",
        "health_interval=-1 is out of range: it must be positive",
    ]


def test_a_remote_url_is_shown_without_its_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RemoteJSONProvider("ftp://deploy:hunter2@config.example/cors@2.json")
    assert caught.value.problems[0].message == (
        "RemoteJSONProvider: url 'ftp://deploy:***@config.example/cors@2.json' is not an absolute http(s) URL"
    )


def test_a_long_or_hostile_value_is_quoted_on_one_line() -> None:
    with pytest.raises(ConfigurationError) as caught:
        FileProvider("cors.json", poll_interval="1\n- corsengine.E000: forged" + "x" * 200)  # type: ignore[arg-type]
    (problem,) = caught.value.problems
    assert "\n" not in problem.message
    assert len(problem.message) < 150


def test_configuration_errors_are_still_value_errors() -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        FileProvider("cors.json", poll_interval=0)
