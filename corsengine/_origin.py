"""The Origin model: the Fetch standard's serialized origin, parsed strictly.

A request's ``Origin`` is either ``null`` or ``scheme "://" host [ ":" port ]`` exactly as a
browser serializes it: lower-case scheme and host, IDNA hosts in punycode, canonical IPv4 and
IPv6, no default port, nothing else. Anything that is not in that canonical form is refused
before any rule, cache or provider sees it. ``urllib.parse`` is deliberately not used: it
accepts and "repairs" hostile values (backslashes, userinfo, stray whitespace).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ._codes import E001, E002, E003, E004
from .exceptions import Problem

# Fetch/URL: a serialized origin is at most scheme (up to ~20) + "://" + host (253) + ":65535".
# 326 bytes is the bound every rule in corsengine assumes; longer values are refused unread.
MAX_ORIGIN_LENGTH = 326

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}

_SCHEME = r"[a-z][a-z0-9+.\-]*"
_LABEL = r"[a-z0-9_](?:[a-z0-9_\-]{0,61}[a-z0-9_])?"
_ORIGIN_RE = re.compile(
    rf"(?P<scheme>{_SCHEME})://"
    rf"(?P<host>\[[0-9a-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)"
    r"(?::(?P<port>0|[1-9][0-9]{0,4}))?"
)
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class Origin:
    """A valid, canonical origin. ``port`` is None when it is the scheme's default."""

    scheme: str
    host: str
    port: int | None

    @property
    def serialized(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{self.host}{port}"


def _ipv6_serialization(address: ipaddress.IPv6Address) -> str:
    # URL standard: compress the first longest run of two or more zero pieces; never the
    # dotted IPv4 tail that Python's ``compressed`` uses for mapped addresses.
    pieces = [int(part, 16) for part in address.exploded.split(":")]
    best_start, best_len, start = -1, 1, -1
    for index, piece in enumerate([*pieces, 1]):
        if piece == 0 and start < 0:
            start = index
        elif piece != 0 and start >= 0:
            if index - start > best_len:
                best_start, best_len = start, index - start
            start = -1
    hexed = [format(piece, "x") for piece in pieces]
    if best_start < 0:
        return ":".join(hexed)
    return ":".join(hexed[:best_start]) + "::" + ":".join(hexed[best_start + best_len :])


def _host_is_canonical(host: str) -> bool:
    if host.startswith("["):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return host[1:-1] == _ipv6_serialization(address)
    if len(host) > 253:
        return False
    # URL standard: a host whose last label is numeric is an IPv4 address, and browsers
    # serialize it as four decimal parts without leading zeros.
    last = host.rpartition(".")[2]
    if _DIGITS.fullmatch(last):
        try:
            return str(ipaddress.IPv4Address(host)) == host
        except ValueError:
            return False
    return True


def parse_origin(value: str) -> Origin | None:
    """Return the parsed origin if ``value`` is a canonical serialized origin, else None.

    ``null`` is not parsed here: it is a token that only an explicit ``null`` rule matches.
    """
    if len(value) > MAX_ORIGIN_LENGTH:
        return None
    match = _ORIGIN_RE.fullmatch(value)
    if match is None:
        return None
    scheme, host, port_text = match.group("scheme", "host", "port")
    if not _host_is_canonical(host):
        return None
    port = int(port_text) if port_text is not None else None
    if port is not None and (port > 65535 or DEFAULT_PORTS.get(scheme) == port):
        return None
    return Origin(scheme, host, port)


def describe_invalid_origin(value: str) -> str:
    """A short, safe explanation of why a request Origin was refused."""
    if len(value) > MAX_ORIGIN_LENGTH:
        return f"malformed Origin header ({len(value)} bytes, over the {MAX_ORIGIN_LENGTH}-byte limit)"
    return f"malformed Origin header {quote(value)} (not a canonical serialized origin)"


def quote(value: str, limit: int = 80) -> str:
    """Quote an untrusted value for a log line or a reason: escaped, bounded, one line."""
    shown = value if len(value) <= limit else value[:limit] + "..."
    return ascii(shown)


# --- configured origins -------------------------------------------------------------------


def _idna_host(host: str) -> str | None:
    try:
        return ".".join(
            label.encode("idna").decode("ascii") if not label.isascii() else label
            for label in host.split(".")
        )
    except UnicodeError:
        return None


@dataclass(frozen=True, slots=True)
class SplitOrigin:
    """A configured origin split into parts, before host or port validation."""

    scheme: str
    host: str
    port: str | None


def split_configured(raw: str, problems: list[Problem]) -> SplitOrigin | None:
    """Split a configured origin or pattern, reporting values that can never match.

    Case, a trailing slash and IDNA are normalized later; a path, query, fragment,
    userinfo or a missing scheme are problems, because no browser ever sends them.
    """
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or not scheme:
        problems.append(
            Problem(
                E003,
                f"origin {quote(raw)} has no scheme",
                "write the full origin, e.g. 'https://example.com'",
            )
        )
        return None
    scheme = scheme.lower()
    if not re.fullmatch(_SCHEME, scheme):
        problems.append(Problem(E003, f"origin {quote(raw)} has an invalid scheme"))
        return None
    if rest.endswith("/"):
        rest = rest[:-1]
    for mark, what in (("/", "a path"), ("?", "a query"), ("#", "a fragment")):
        if mark in rest:
            problems.append(
                Problem(
                    E001,
                    f"origin {quote(raw)} has {what}",
                    "an Origin header never carries a path, query or fragment: "
                    "keep only scheme://host[:port]",
                )
            )
            return None
    if "@" in rest:
        problems.append(
            Problem(
                E002,
                f"origin {quote(raw)} has userinfo",
                "an Origin header never carries user:password@; remove it",
            )
        )
        return None
    if rest.startswith("["):
        host, _, tail = rest.partition("]")
        host += "]"
        port = tail[1:] if tail.startswith(":") else None
        if tail and port is None:
            port = tail
    else:
        host, colon, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "")
        port = port_text if colon else None
    return SplitOrigin(scheme, host, port)


def _canonical_host(host: str) -> str | None:
    """The canonical form of a configured host (case, IDNA, IP notation), or None if invalid."""
    lowered = host.lower()
    try:
        if lowered.startswith("["):
            return "[" + _ipv6_serialization(ipaddress.IPv6Address(lowered[1:-1])) + "]"
        encoded = _idna_host(lowered)
        if encoded is None:
            return None
        if _DIGITS.fullmatch(encoded.rpartition(".")[2]):
            return str(ipaddress.IPv4Address(encoded))
    except ValueError:  # not an IP address after all
        return None
    if re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})*", encoded) and len(encoded) <= 253:
        return encoded
    return None


def normalize_host(raw: str, host: str, problems: list[Problem]) -> str | None:
    """Lower-case, IDNA-encode and validate a configured host (no wildcards)."""
    canonical = _canonical_host(host)
    if canonical is None:
        problems.append(Problem(E004, f"origin {quote(raw)} has an invalid host", "check the host name"))
    return canonical


def normalize_port(raw: str, scheme: str, port: str | None, problems: list[Problem]) -> int | None:
    """Validate a configured port; the scheme's default port becomes None."""
    if port is None:
        return None
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        problems.append(Problem(E004, f"origin {quote(raw)} has an invalid port", "use a number 0-65535"))
        return None
    number = int(port)
    return None if DEFAULT_PORTS.get(scheme) == number else number
