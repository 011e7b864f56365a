"""E006 from the Public Suffix List: every way a wildcard reaches the compiler is refused alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from corsengine import ConfigurationError, CORSMiddleware, Policy
from corsengine._cli import main
from corsengine._patterns import Rules, compile_entries, matches_origin
from corsengine._suffixes import public_suffix_under
from corsengine.providers import CallableProvider
from corsengine.testing import FakeClock

from .asgi import plain_app

# Public suffixes and hosting platforms from both sections of the list, none of them in the
# 51-entry hand list this replaced.
REFUSED = {
    "icann-two-labels-il": "https://*.co.il",
    "icann-two-labels-ua": "https://*.com.ua",
    "pythonanywhere": "https://*.pythonanywhere.com",
    "cloudflare-r2": "https://*.r2.dev",
    "azure-cdn": "https://*.azureedge.net",
    "s3-regional": "https://*.s3.us-east-1.amazonaws.com",
    "deno-deploy": "https://*.deno.dev",
    "railway": "https://*.up.railway.app",
    "with-a-port": "https://*.pythonanywhere.com:8443",
    "with-any-port": "https://*.r2.dev:*",
    "upper-case": "HTTPS://*.PythonAnywhere.COM",
    "idn-suffix": "https://*.公司.cn",
    # Not public itself, but the list has suffixes below it: anyone's bucket or app is under it.
    "suffixes-below-amazonaws": "https://*.amazonaws.com",
    "suffixes-below-railway": "https://*.railway.app",
    # Still refused, as before.
    "tld": "https://*.com",
    "co-uk": "https://*.co.uk",
    "github-pages": "https://*.github.io",
    "unknown-tld": "https://*.internal",
}

ALLOWED = {
    "own-domain": ("https://*.example.com", "https://a.b.example.com"),
    "own-domain-under-co-uk": ("https://*.example.co.uk", "https://app.example.co.uk"),
    # A registrable name under a hosting platform belongs to one customer.
    "one-github-pages-site": ("https://*.alice.github.io", "https://docs.alice.github.io"),
    "one-pythonanywhere-site": ("https://*.alice.pythonanywhere.com", "https://x.alice.pythonanywhere.com"),
    "localhost-any-port": ("http://localhost:*", "http://localhost:5173"),
    "localhost-subdomains": ("http://*.localhost", "http://app.localhost"),
    "private-name-under-unknown-tld": ("https://*.corp.internal", "https://wiki.corp.internal"),
    "exception-rule": ("https://*.www.ck", "https://a.www.ck"),
}


@pytest.mark.parametrize("entry", REFUSED.values(), ids=REFUSED.keys())
def test_a_wildcard_over_a_public_suffix_is_e006(entry: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Rules.from_entries([entry])
    assert raised.value.codes == ("corsengine.E006",)
    assert "covers a public suffix or shared hosting domain" in str(raised.value)


@pytest.mark.parametrize(("entry", "origin"), ALLOWED.values(), ids=ALLOWED.keys())
def test_a_wildcard_under_a_registrable_domain_is_allowed(entry: str, origin: str) -> None:
    rules = Rules.from_entries([entry])
    assert matches_origin(rules, origin) == entry


def test_the_message_names_the_suffix_below() -> None:
    _, problems, _ = compile_entries(["https://*.railway.app"])
    assert "'up.railway.app' is on the Public Suffix List" in problems[0].message
    _, problems, _ = compile_entries(["https://*.r2.dev"])
    assert "Public Suffix List" not in problems[0].message  # the parent itself is the suffix


def test_the_private_section_and_idn_are_read() -> None:
    assert public_suffix_under("github.io") == "github.io"  # PRIVATE section
    assert public_suffix_under("co.il") == "co.il"  # ICANN section
    assert public_suffix_under("xn--55qx5d.cn") == "xn--55qx5d.cn"  # 公司.cn, in punycode
    assert public_suffix_under("example.com") is None
    assert public_suffix_under("alice.github.io") is None


def test_policy_and_middleware_refuse_it_with_every_other_problem() -> None:
    for build in (Policy, lambda **kw: CORSMiddleware(plain_app(), **kw)):
        with pytest.raises(ConfigurationError) as raised:
            build(allow_origins=["https://*.pythonanywhere.com", "https://*.example.com", "https://a.com/x"])
        assert raised.value.codes == ("corsengine.E006", "corsengine.E001")


@pytest.mark.anyio
async def test_a_callable_returning_it_keeps_the_last_good_list() -> None:
    lists = [["https://*.example.com"], ["https://*.example.com", "https://*.pythonanywhere.com"]]
    clock = FakeClock()
    policy = Policy(allow_origins=CallableProvider(lambda: lists[0], ttl=10), clock=clock)
    assert (await policy.aevaluate("https://a.example.com")).allowed
    lists.pop(0)
    clock.advance(11)
    await policy.refresh()
    assert (await policy.aevaluate("https://a.example.com")).allowed  # the last good list
    assert not (await policy.aevaluate("https://evil.pythonanywhere.com")).allowed
    await policy.aclose()


@pytest.mark.parametrize("command", ["check", "lint"])
def test_the_cli_refuses_it_naming_the_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "cors.toml"
    config.write_text(
        'allow_origins = [\n  "https://*.example.com",\n  "https://*.s3.us-east-1.amazonaws.com",\n]\n'
    )
    argv = [command, str(config)] + (["--origin", "https://a.example.com"] if command == "check" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        f"{config}:3: corsengine.E006: allow_origins[1]: wildcard 'https://*.s3.us-east-1.amazonaws.com'"
        in err
    )
