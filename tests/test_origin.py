"""The Origin grammar: canonical serialized origins only, refused before any rule runs."""

from __future__ import annotations

import pytest

from corsengine._origin import MAX_ORIGIN_LENGTH, Origin, parse_origin, quote

VALID = {
    "https://example.com": Origin("https", "example.com", None),
    "http://localhost:3000": Origin("http", "localhost", 3000),
    "http://127.0.0.1:8000": Origin("http", "127.0.0.1", 8000),
    "http://[::1]:8000": Origin("http", "[::1]", 8000),
    "http://[2001:db8::1]": Origin("http", "[2001:db8::1]", None),
    "https://xn--bcher-kva.example": Origin("https", "xn--bcher-kva.example", None),
    "https://a_b.example.com": Origin("https", "a_b.example.com", None),
    "chrome-extension://abcdefghijklmnop": Origin("chrome-extension", "abcdefghijklmnop", None),
    "http://example.com:0": Origin("http", "example.com", 0),
    "https://example.com:65535": Origin("https", "example.com", 65535),
}


@pytest.mark.parametrize("value", list(VALID), ids=list(VALID))
def test_canonical_origins_parse(value: str) -> None:
    parsed = parse_origin(value)
    assert parsed == VALID[value]
    assert parsed is not None and parsed.serialized == value


INVALID = {
    "upper-case scheme": "HTTPS://example.com",
    "upper-case host": "https://Example.com",
    "default https port": "https://example.com:443",
    "default http port": "http://example.com:80",
    "port too large": "https://example.com:65536",
    "port leading zero": "https://example.com:0443",
    "trailing slash": "https://example.com/",
    "path": "https://example.com/path",
    "query": "https://example.com?x=1",
    "fragment": "https://example.com#x",
    "userinfo": "https://user@example.com",
    "userinfo with password": "https://u:p@example.com",
    "percent-encoding": "https://example.com%60.evil.com",
    "backtick": "https://example.com`.evil.com",
    "space": "https://exa mple.com",
    "leading space": " https://example.com",
    "trailing newline": "https://example.com\n",
    "CRLF injection": "https://example.com\r\nSet-Cookie: x=1",
    "tab": "https://example.com\t",
    "backslash": "https:\\\\example.com",
    "empty": "",
    "no scheme": "example.com",
    "scheme only": "https://",
    "empty label": "https://a..example.com",
    "trailing dot": "https://example.com.",
    "leading dot": "https://.example.com",
    "label starting with hyphen": "https://-a.example.com",
    "non-ascii host": "https://bücher.example",
    "IPv4 leading zero": "http://127.000.000.001",
    "IPv4 short form": "http://127.1",
    "IPv4 hex": "http://0x7f.0.0.1",
    "IPv4 out of range": "http://256.0.0.1",
    "IPv6 upper-case": "http://[::FFFF:1]",
    "IPv6 not compressed": "http://[0:0:0:0:0:0:0:1]",
    "IPv6 dotted tail": "http://[::ffff:192.0.2.128]",
    "IPv6 unbracketed": "http://::1",
    "NUL byte": "https://example.com\x00",
    "exclamation": "https://example.com!.evil.com",
    "pipe": "https://example.com|.evil.com",
    "tilde": "https://example.com~.evil.com",
    "over length": "https://" + "a" * MAX_ORIGIN_LENGTH + ".com",
    "null is not parsed": "null",
}


@pytest.mark.parametrize("value", list(INVALID.values()), ids=list(INVALID))
def test_malformed_origins_are_refused(value: str) -> None:
    assert parse_origin(value) is None


def test_quote_escapes_and_bounds_untrusted_values() -> None:
    assert quote("https://a\r\nb") == "'https://a\\r\\nb'"
    assert quote("\x1b[31mred") == "'\\x1b[31mred'"
    assert quote("x" * 200, limit=10) == "'xxxxxxxxxx...'"
