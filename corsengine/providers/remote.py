"""An allowlist fetched over HTTP: a JSON document, refreshed with conditional requests."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import time
import zlib
from collections.abc import Mapping
from pathlib import Path

import anyio
import httpx

from .._origin import quote
from .._patterns import Rules
from ..exceptions import ProviderError
from ._base import BaseProvider
from ._document import Document, parse_document
from ._options import E_SOURCE, Options, redacted
from .dynamic import PARSE_IN_THREAD_ABOVE, off_loop_if

__all__ = ["RemoteJSONProvider"]

logger = logging.getLogger("corsengine")

DEFAULT_REMOTE_TTL = 60.0
DEFAULT_MIN_TTL = 5.0
DEFAULT_MAX_TTL = 3600.0
DEFAULT_CONNECT_TIMEOUT = 2.0
DEFAULT_READ_TIMEOUT = 3.0
# Below the resolver's first-load timeout (5 s), so a first fetch that times out still
# leaves time to serve the on-disk copy.
DEFAULT_TOTAL_TIMEOUT = 4.0
DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_REDIRECTS = 3
DEFAULT_CACHE_MAX_AGE = 86400.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?=,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(no-cache|no-store)\s*(?=,|=|$)", re.IGNORECASE)
_CACHE_FORMAT = 1
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def cache_control_ttl(value: str | None) -> float | None:
    """Seconds a response may be reused per its Cache-Control header (None: not said).

    ``no-cache`` and ``no-store`` mean 0 (revalidate every time, which ``min_ttl`` bounds).
    ``s-maxage`` is for shared caches and ignored here (RFC 9111, 5.2.2.10).
    """
    if not value:
        return None
    if _NO_CACHE.search(value):
        return 0.0
    match = _MAX_AGE.search(value)
    return float(match.group(1)) if match is not None else None


class RemoteJSONProvider(BaseProvider):
    """An allowlist document fetched over HTTP(S) with httpx.

    The document is a JSON list of origins and patterns, or an object
    ``{"origins": [...], "patterns": [...], "regexes": [...], "version": "..."}``
    (see docs/providers.md). Refreshes send ``If-None-Match`` / ``If-Modified-Since``; a
    304 keeps the current rules. The response's ``Cache-Control: max-age`` sets ``ttl``,
    clamped to ``[min_ttl, max_ttl]``; without one, ``ttl`` stays the configured value.

    Every failure raises, so the resolver keeps the last good allowlist: a timeout, a
    status other than 200/304, a body over ``max_bytes`` (counted as it is decompressed,
    so a compression bomb is stopped at the cap), invalid JSON, a document that does not
    match the format, or one invalid entry. With ``cache_path``, the last good document is
    also kept on disk (written atomically) and served when the very first fetch fails, so a
    restart during an outage keeps the allowlist.

    Pass ``client=`` to use your own ``httpx.AsyncClient`` (its transport, proxies,
    authentication); the timeouts, the size cap and the redirect limit here apply to
    each request all the same. Without one, the provider creates a client and closes it
    in ``aclose()``. Needs the ``remote`` extra: ``pip install 'corsengine[remote]'``.

    Examples:
        Here the HTTP server is an ``httpx.MockTransport``; in production, pass only the URL.

        >>> import anyio
        >>> import httpx
        >>> from corsengine import Policy
        >>> from corsengine.providers import RemoteJSONProvider
        >>> def config_service(request):
        ...     document = {"origins": ["https://app.example.com"], "patterns": ["https://*.partner.example"]}
        ...     return httpx.Response(200, json=document, headers={"Cache-Control": "max-age=300"})
        >>> async def main():
        ...     async with httpx.AsyncClient(transport=httpx.MockTransport(config_service)) as client:
        ...         remote = RemoteJSONProvider("https://config.example.com/cors.json", client=client)
        ...         policy = Policy(allow_origins=remote)
        ...         decision = await policy.aevaluate("https://eu.partner.example")
        ...         await policy.aclose()
        ...         return decision.allowed, remote.ttl
        >>> anyio.run(main)
        (True, 300.0)
    """

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        ttl: float = DEFAULT_REMOTE_TTL,
        min_ttl: float = DEFAULT_MIN_TTL,
        max_ttl: float = DEFAULT_MAX_TTL,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        timeout: float = DEFAULT_TOTAL_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        allow_regexes: bool = False,
        headers: Mapping[str, str] | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        cache_max_age: float | None = DEFAULT_CACHE_MAX_AGE,
    ) -> None:
        options = Options("RemoteJSONProvider")
        self.url = _checked_url(url, options)
        if client is not None and not isinstance(client, httpx.AsyncClient):
            hint = "pass an httpx.AsyncClient, or leave client out to let the provider make one"
            options.wrong_type("client", client, "an httpx.AsyncClient", hint, show=False)
        options.seconds("ttl", ttl, example=DEFAULT_REMOTE_TTL)
        options.seconds("min_ttl", min_ttl, example=DEFAULT_MIN_TTL)
        options.seconds("max_ttl", max_ttl, example=DEFAULT_MAX_TTL)
        options.ordered("min_ttl", min_ttl, "max_ttl", max_ttl)
        options.seconds("connect_timeout", connect_timeout, example=DEFAULT_CONNECT_TIMEOUT)
        options.seconds("read_timeout", read_timeout, example=DEFAULT_READ_TIMEOUT)
        options.seconds("timeout", timeout, example=DEFAULT_TOTAL_TIMEOUT)
        options.count("max_bytes", max_bytes, minimum=1, example="1_000_000")
        options.count("max_redirects", max_redirects, minimum=0, example=str(DEFAULT_MAX_REDIRECTS))
        options.flag("allow_regexes", allow_regexes)
        options.headers("headers", headers)
        options.path("cache_path", cache_path, none=True)
        options.seconds("cache_max_age", cache_max_age, example=DEFAULT_CACHE_MAX_AGE, none=True)
        options.raise_problems()
        self.configured_ttl = min(max(ttl, min_ttl), max_ttl)
        self.ttl: float | None = self.configured_ttl
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.timeouts = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.allow_regexes = allow_regexes
        self.headers = dict(headers or {})
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.cache_max_age = cache_max_age
        self._own_client = client is None
        self._client = client
        self.document: Document | None = None
        self.etag: str | None = None
        self.last_modified: str | None = None

    @property
    def version(self) -> str | None:
        """The ``version`` the document in force declared, if any."""
        return self.document.version if self.document is not None else None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeouts, follow_redirects=False)
        return self._client

    async def load(self) -> Rules:
        try:
            with anyio.fail_after(self.timeout):
                return await self._fetch()
        except Exception as error:
            if self.document is None and self.cache_path is not None:
                cached = await anyio.to_thread.run_sync(self._read_cache, self.cache_path)
                if cached is not None:
                    logger.warning(
                        "corsengine: %s failed (%s); serving the copy saved in %s",
                        quote(self.url),
                        quote(_describe(error), 300),
                        self.cache_path,
                    )
                    self.document = cached
                    # Try the network again soon rather than trusting the copy for a whole ttl.
                    self.ttl = self.min_ttl
                    return cached.rules
            if isinstance(error, ProviderError):
                raise
            raise ProviderError(f"fetching {quote(self.url)} failed: {_describe(error)}") from error

    async def _fetch(self) -> Rules:
        headers = dict(self.headers)
        if self.document is not None:
            if self.etag is not None:
                headers["If-None-Match"] = self.etag
            if self.last_modified is not None:
                headers["If-Modified-Since"] = self.last_modified
        # Only the encodings whose output _read_capped can bound while decoding.
        headers["Accept-Encoding"] = ACCEPT_ENCODING
        request = self.client.build_request("GET", self.url, headers=headers, timeout=self.timeouts)
        for _ in range(self.max_redirects + 1):
            response = await self.client.send(request, stream=True, follow_redirects=False)
            try:
                if response.has_redirect_location:
                    request = self._follow(request, response)
                    continue
                return await self._handle(response)
            finally:
                await response.aclose()
        raise ProviderError(f"{quote(self.url)} redirected more than {self.max_redirects} times")

    def _follow(self, request: httpx.Request, response: httpx.Response) -> httpx.Request:
        # has_redirect_location checked the status (301, 302, 303, 307, 308) and Location.
        target = request.url.join(response.headers["Location"])
        if request.url.scheme == "https" and target.scheme != "https":
            raise ProviderError(f"{quote(str(request.url))} redirected to {quote(str(target))}: not https")
        if target.scheme not in ("http", "https"):
            raise ProviderError(f"{quote(str(request.url))} redirected to {quote(str(target))}")
        headers = dict(request.headers)
        if target.host != request.url.host:
            # Never carry credentials to another host.
            headers.pop("authorization", None)
            headers.pop("cookie", None)
        headers.pop("host", None)
        return self.client.build_request("GET", target, headers=headers, timeout=self.timeouts)

    async def _handle(self, response: httpx.Response) -> Rules:
        status = response.status_code
        if status == 304 and self.document is not None:
            self._update_ttl(response)
            return self.document.rules
        if status != 200:
            raise ProviderError(f"{quote(str(response.url))} answered HTTP {status}")
        body = await self._read_capped(response)
        document, data = await off_loop_if(len(body) > PARSE_IN_THREAD_ABOVE, lambda: self._parse(body))
        if self.document is not None and document.version != self.document.version:
            logger.info("corsengine: %s is now version %s", quote(self.url), quote(str(document.version)))
        self.document = document
        self.etag = response.headers.get("ETag")
        self.last_modified = response.headers.get("Last-Modified")
        self._update_ttl(response)
        if self.cache_path is not None:
            await anyio.to_thread.run_sync(self._write_cache, self.cache_path, data)
        return document.rules

    async def _read_capped(self, response: httpx.Response) -> bytes:
        """The decoded body, refused as soon as it grows past ``max_bytes``.

        The body is decompressed here, not by httpx: its decoders expand each chunk read
        from the network whole, and 64 kB of gzip can hold 64 MB, so a small compressed
        document that expands to a gigabyte cost over 100 MB before the cap could refuse it.
        Here no chunk is expanded past what the cap leaves.
        """
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            cap = self.max_bytes
            raise ProviderError(f"{quote(self.url)} declares {declared} bytes, over the {cap}-byte cap")
        over = f"{quote(self.url)} sent more than the {self.max_bytes}-byte cap"
        try:
            # A response made in memory (httpx.MockTransport) arrives read and decoded.
            body = response.content
        except httpx.ResponseNotRead:
            pass
        else:
            if len(body) > self.max_bytes:
                raise ProviderError(over)
            return body
        inflate = _inflater(response.headers.get("Content-Encoding", ""), self.url)
        chunks: list[bytes] = []
        size = 0
        async for raw in response.aiter_raw():
            chunk = raw if inflate is None else inflate(raw, self.max_bytes - size + 1)
            size += len(chunk)
            if size > self.max_bytes:
                raise ProviderError(over)
            chunks.append(chunk)
        if inflate is not None and not inflate.decoder.eof:
            raise ProviderError(f"{quote(self.url)} sent a compressed body that was cut short")
        return b"".join(chunks)

    def _parse(self, body: bytes) -> tuple[Document, object]:
        """The document a body holds, and the JSON it was read from (for the on-disk copy)."""
        try:
            text = body.decode("utf-8-sig")
            data = json.loads(text)
        except UnicodeDecodeError as error:
            raise ProviderError(f"{quote(self.url)} sent a body that is not UTF-8: {error}") from None
        except json.JSONDecodeError as error:
            where = f"line {error.lineno} column {error.colno}"
            raise ProviderError(f"{quote(self.url)} sent invalid JSON at {where}: {error.msg}") from None
        return parse_document(data, quote(self.url), allow_regexes=self.allow_regexes, text=text), data

    def _update_ttl(self, response: httpx.Response) -> None:
        said = cache_control_ttl(response.headers.get("Cache-Control"))
        if said is None:
            self.ttl = self.configured_ttl
        else:
            self.ttl = min(max(said, self.min_ttl), self.max_ttl)

    # --- the on-disk copy -------------------------------------------------------------

    def _write_cache(self, path: Path, data: object) -> None:
        record = {
            "format": _CACHE_FORMAT,
            "url": self.url,
            "saved_at": time.time(),
            "etag": self.etag,
            "last_modified": self.last_modified,
            "document": data,
        }
        directory = path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # Write a temporary file next to the target and rename it: a crash never
            # leaves a half-written copy, and readers see the old or the new file whole.
            fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(record, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as error:
            logger.warning("corsengine: could not save %s: %s", path, error)

    def _read_cache(self, path: Path) -> Document | None:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("format") != _CACHE_FORMAT:
                raise ValueError("not a corsengine cache file")
            if record.get("url") != self.url:
                raise ValueError(f"it holds {quote(str(record.get('url')))}, not {quote(self.url)}")
            age = time.time() - float(record["saved_at"])
            if self.cache_max_age is not None and age > self.cache_max_age:
                raise ValueError(f"it is {age:.0f} s old, over cache_max_age={self.cache_max_age}")
            document = parse_document(record["document"], str(path), allow_regexes=self.allow_regexes)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, ProviderError) as error:
            logger.warning("corsengine: not using the saved copy %s: %s", path, error)
            return None
        etag, last_modified = record.get("etag"), record.get("last_modified")
        self.etag = etag if isinstance(etag, str) else None
        self.last_modified = last_modified if isinstance(last_modified, str) else None
        return document

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def __repr__(self) -> str:
        return f"RemoteJSONProvider({self.url!r})"


class _Inflater:
    """Decodes a gzip or deflate body, never returning more than it is allowed to."""

    def __init__(self, wbits: int, url: str) -> None:
        self.decoder = zlib.decompressobj(wbits)
        # "deflate" sent as a raw deflate stream, without the zlib wrapper: common enough
        # that httpx and browsers accept it too.
        self.may_be_raw = wbits == zlib.MAX_WBITS
        self.url = url

    def __call__(self, data: bytes, limit: int) -> bytes:
        """At most ``limit`` decoded bytes of ``data``. Output short of the limit means every
        input byte was used; at the limit the caller refuses the body, so what is left in
        ``unconsumed_tail`` is never expanded."""
        try:
            out = self.decoder.decompress(data, limit)
        except zlib.error as error:
            if self.may_be_raw:
                self.may_be_raw = False
                self.decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                return self(data, limit)
            raise ProviderError(f"{quote(self.url)} sent a body that does not decompress: {error}") from None
        self.may_be_raw = False
        return out


def _inflater(content_encoding: str, url: str) -> _Inflater | None:
    """The decoder of a body's ``Content-Encoding``; None for an uncompressed body."""
    codings = [coding.strip().lower() for coding in content_encoding.split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _WBITS:
        raise ProviderError(
            f"{quote(url)} sent Content-Encoding {quote(content_encoding)}; "
            f"corsengine reads {ACCEPT_ENCODING} or uncompressed documents"
        )
    return _Inflater(_WBITS[codings[0]], url)


def _checked_url(url: object, options: Options) -> str:
    """The URL as httpx normalizes it; an http(s) URL with a host, or a problem."""
    hint = "use an absolute http:// or https:// URL, e.g. 'https://config.example.com/cors.json'"
    if not isinstance(url, str | httpx.URL):
        options.wrong_type("url", url, "a URL", hint)
        return ""
    where = quote(redacted(str(url)))
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        options.problem(E_SOURCE, f"url {where} is not a valid URL ({error})", hint, field="url")
        return str(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        options.problem(E_SOURCE, f"url {where} is not an absolute http(s) URL", hint, field="url")
    return str(parsed)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
