"""An allowlist in a local JSON or TOML file, reloaded when the file changes."""

from __future__ import annotations

import importlib
import json
import logging
import os
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import Any, Final, Literal

import anyio

from .._origin import quote
from .._patterns import Rules
from ..exceptions import ProviderError
from ._base import BaseProvider
from ._document import Document, parse_document
from ._options import E_SOURCE, Options, shown
from .dynamic import PARSE_IN_THREAD_ABOVE, off_loop_if

__all__ = ["FileProvider"]

logger = logging.getLogger("corsengine")

DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_FILE_TTL = 300.0
DEFAULT_MAX_FILE_BYTES = 1_000_000

Format = Literal["json", "toml"]
_SUFFIXES: dict[str, Format] = {".json": "json", ".toml": "toml"}
# What identifies one version of the file: an editor's rename gives a new inode even when
# the size and the mtime happen to match.
Signature = tuple[int, int, int, int] | None


# No change waiting to be confirmed (a Signature may be None: a missing file).
_NOTHING: Final = object()


def _signature(path: Path) -> Signature:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev)


class FileProvider(BaseProvider):
    r"""An allowlist document in a JSON or TOML file (chosen by the suffix, or ``format=``).

    The document format is the remote one (see docs/providers.md); TOML needs the object
    form (``origins = [...]``). A watcher task notices changes (mtime, size and inode,
    polled at most every ``poll_interval`` seconds; through ``watchfiles`` when it is
    installed), including editors that write a temporary file and rename it over the
    original. A file renamed into place is taken at once; one written in place only once
    it has held still for one more ``poll_interval``, so a half-written file is never
    published: write by rename. A bad edit keeps the last good allowlist, and the error
    names the line. ``ttl`` is a safety net for when no watcher runs.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import anyio
        >>> from corsengine import Policy
        >>> from corsengine.providers import FileProvider
        >>> path = Path(tempfile.mkdtemp()) / "cors.toml"
        >>> _ = path.write_text('origins = ["https://app.example.com"]\n')
        >>> policy = Policy(allow_origins=FileProvider(path))
        >>> anyio.run(policy.aevaluate, "https://app.example.com").allowed
        True
        >>> _ = path.write_text('origins = ["https://app.example.com", "https://*.partner.example"]\n')
        >>> anyio.run(policy.refresh)  # in an app, the watcher notices the change by itself
        >>> anyio.run(policy.aevaluate, "https://eu.partner.example").allowed
        True
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        ttl: float = DEFAULT_FILE_TTL,
        allow_regexes: bool = False,
        max_bytes: int = DEFAULT_MAX_FILE_BYTES,
        use_watchfiles: bool = True,
    ) -> None:
        options = Options("FileProvider")
        readable = options.path("path", path)
        self.path = Path(path) if readable else Path()
        if format is None:
            format = _SUFFIXES.get(self.path.suffix.lower())
            if format is None and readable:
                options.problem(
                    E_SOURCE,
                    f"cannot tell the format of {quote(str(self.path))} from its suffix",
                    "name the file .json or .toml, or pass format='json' or format='toml'",
                    field="path",
                )
        elif format not in _SUFFIXES.values():
            options.problem(
                E_SOURCE,
                f"format={shown(format)} is not a format FileProvider reads",
                "pass format='json' or format='toml'",
                field="format",
            )
        options.seconds("poll_interval", poll_interval, example=DEFAULT_POLL_INTERVAL)
        options.seconds("ttl", ttl, example=DEFAULT_FILE_TTL)
        options.flag("allow_regexes", allow_regexes)
        options.count("max_bytes", max_bytes, minimum=1, example="1_000_000")
        options.flag("use_watchfiles", use_watchfiles)
        options.raise_problems()
        self.format: Format = format or "json"
        self.poll_interval = poll_interval
        self.ttl: float | None = ttl
        self.allow_regexes = allow_regexes
        self.max_bytes = max_bytes
        self.use_watchfiles = use_watchfiles
        self.document: Document | None = None
        self._loaded: Signature = None

    @property
    def version(self) -> str | None:
        """The ``version`` the document in force declared, if any."""
        return self.document.version if self.document is not None else None

    async def load(self) -> Rules:
        signature, text = await anyio.to_thread.run_sync(self._read)
        document = await off_loop_if(
            len(text) > PARSE_IN_THREAD_ABOVE,
            lambda: parse_document(
                self._decode(text),
                str(self.path),
                allow_regexes=self.allow_regexes,
                text=text,
                format=self.format,
            ),
        )
        self.document = document
        self._loaded = signature
        return document.rules

    def _read(self) -> tuple[Signature, str]:
        try:
            with self.path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                raw = handle.read(self.max_bytes + 1)
        except OSError as error:
            raise ProviderError(f"cannot read {self.path}: {error.strerror or error}") from None
        if len(raw) > self.max_bytes:
            raise ProviderError(f"{self.path} is over the {self.max_bytes}-byte cap")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ProviderError(f"{self.path} is not UTF-8: {error}") from None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino, stat.st_dev), text

    def _decode(self, text: str) -> Any:
        if self.format == "json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as error:
                raise ProviderError(
                    f"{self.path} line {error.lineno} column {error.colno}: invalid JSON: {error.msg}"
                ) from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            # tomllib's message ends with "(at line N, column M)".
            raise ProviderError(f"{self.path}: invalid TOML: {error}") from None

    # --- watching ---------------------------------------------------------------------

    async def watch(self, invalidate: Callable[[], None]) -> None:
        """Call ``invalidate()`` whenever the file changes; runs until cancelled."""
        awatch = _watchfiles() if self.use_watchfiles else None
        if awatch is not None:
            await self._watch_events(awatch, invalidate)
        else:
            await self._watch_polling(invalidate)

    def changed(self, seen: Signature) -> tuple[bool, Signature]:
        """Compare the file now with ``seen``; returns (changed, the signature now)."""
        now = _signature(self.path)
        return now != seen, now

    def settled(self, accepted: Signature, pending: object = _NOTHING) -> tuple[bool, Signature, object]:
        """One look at the file: (reload now, the version accepted, the change pending).

        A file written in place (in chunks, by a script or an editor that does not rename)
        can be read half-written, and a TOML file cut at a line boundary is still valid:
        such a change is accepted only once the file has kept the same size, mtime and inode
        for one more look, ``poll_interval`` later. A file renamed over the old one (a new
        inode) is complete the moment it appears, and is accepted at once.
        """
        now = _signature(self.path)
        if now == accepted:
            return False, accepted, _NOTHING
        if now == pending or _replaced(accepted, now):
            return True, now, _NOTHING
        return False, accepted, now  # changed in place, or appeared: look again first

    async def _watch_polling(self, invalidate: Callable[[], None]) -> None:
        # Start from what the last load read, so a change between that load and this
        # task's start is not missed.
        accepted = self._loaded if self.document is not None else _signature(self.path)
        pending: object = _NOTHING
        while True:
            await anyio.sleep(self.poll_interval)
            reload, accepted, pending = self.settled(accepted, pending)
            if reload:
                logger.debug("corsengine: %s changed, reloading", self.path)
                invalidate()

    async def _watch_events(self, awatch: Callable[..., Any], invalidate: Callable[[], None]) -> None:
        # Watch the directory, not the file: a rename replaces the file's inode, and a
        # watch on the old inode would never fire again.
        accepted = self._loaded if self.document is not None else _signature(self.path)
        async for changes in awatch(
            self.path.parent, step=int(self.poll_interval * 1000), debounce=int(self.poll_interval * 1000)
        ):
            if any(PurePath(changed).name == self.path.name for _, changed in changes):
                reload, accepted, pending = self.settled(accepted)
                while pending is not _NOTHING:  # written in place: wait until it holds still
                    await anyio.sleep(self.poll_interval)
                    reload, accepted, pending = self.settled(accepted, pending)
                if reload:
                    invalidate()

    def __repr__(self) -> str:
        return f"FileProvider({str(self.path)!r})"


def _replaced(old: Signature, new: Signature) -> bool:
    """Whether ``new`` is another file renamed over ``old`` (another inode)."""
    return old is not None and new is not None and (new[2], new[3]) != (old[2], old[3])


def _watchfiles() -> Callable[..., Any] | None:
    """watchfiles' ``awatch`` when it is installed (an optional dependency, never required)."""
    try:
        module = importlib.import_module("watchfiles")
    except ImportError:
        return None
    awatch: Callable[..., Any] = module.awatch
    return awatch
