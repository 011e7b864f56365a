"""The allowlist document shared by the remote JSON and file providers.

Either a bare list of origins and patterns::

    ["https://app.example.com", "https://*.partner.example"]

or an object::

    {"origins": [...], "patterns": [...], "regexes": [...], "version": "2024-06-01"}

``patterns`` and ``regexes`` are optional; regexes are refused unless the provider was
built with ``allow_regexes=True``. Unknown keys are refused too, so that a typo such as
``"pattern"`` cannot silently drop entries. One bad entry rejects the whole document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from .._patterns import Rules, compile_entries
from ..exceptions import ProviderError
from .dynamic import validate_entries

MAX_REPORTED_ERRORS = 5


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    origins: list[StrictStr]
    patterns: list[StrictStr] = Field(default_factory=list)
    regexes: list[StrictStr] = Field(default_factory=list)
    version: StrictStr | StrictInt | None = None


@dataclass(frozen=True, slots=True)
class Document:
    """A validated document: its compiled rules and the version it declared, if any."""

    rules: Rules
    version: str | None = None


def parse_document(data: object, source: str, *, allow_regexes: bool, text: str | None = None) -> Document:
    """Validate a decoded document; raise ProviderError naming what is wrong.

    ``text`` is the document's source, used to name the lines of invalid entries.
    """
    version: str | None = None
    regexes: list[str] = []
    if isinstance(data, list):
        entries: list[object] = list(data)
    elif isinstance(data, dict):
        try:
            document = _Document.model_validate(data)
        except ValidationError as error:
            raise ProviderError(f"{source} does not match the document format: {_describe(error)}") from None
        entries = [*document.origins, *document.patterns]
        regexes = document.regexes
        version = None if document.version is None else str(document.version)
        if regexes and not allow_regexes:
            raise ProviderError(
                f"{source} contains regexes, which this provider refuses (pass allow_regexes=True to accept)"
            )
    else:
        raise ProviderError(
            f"{source} is a JSON {type(data).__name__}, expected a list of origins "
            "or an object with an 'origins' list"
        )
    try:
        rules = validate_entries(entries, source, regexes=regexes)
    except ProviderError as error:
        lines = _lines_of_bad_entries(entries, text) if text is not None else []
        if not lines:
            raise
        where = ", ".join(str(line) for line in lines)
        raise ProviderError(f"{error} (line{'s' if len(lines) > 1 else ''} {where})") from None
    return Document(rules, version)


def _describe(error: ValidationError) -> str:
    parts = []
    for detail in error.errors()[:MAX_REPORTED_ERRORS]:
        location = ".".join(str(part) for part in detail["loc"]) or "document"
        parts.append(f"{location}: {detail['msg']}")
    more = error.error_count() - MAX_REPORTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _lines_of_bad_entries(entries: list[object], text: str) -> list[int]:
    """Line numbers (1-based) of the entries that do not compile, as far as they can be found."""
    lines: set[int] = set()
    source_lines = text.splitlines()
    for entry in entries:
        if not isinstance(entry, str) or not compile_entries([entry])[1]:
            continue
        # JSON and TOML basic strings quote alike for ordinary text.
        needle = json.dumps(entry, ensure_ascii=False)
        for number, line in enumerate(source_lines, start=1):
            if needle in line:
                lines.add(number)
                break
    return sorted(lines)
