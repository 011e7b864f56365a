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
import tomllib
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from .._lines import KeyPath, key_lines
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


def parse_document(
    data: object,
    source: str,
    *,
    allow_regexes: bool,
    text: str | None = None,
    format: Literal["json", "toml"] = "json",
) -> Document:
    """Validate a decoded document; raise ProviderError naming what is wrong.

    ``text`` is the document's source (in ``format``), used to name the lines of invalid entries.
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
        lines = _lines_of_bad_entries(entries, regexes, text, format) if text is not None else []
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


def _lines_of_bad_entries(
    entries: list[object], regexes: list[str], text: str, format: Literal["json", "toml"]
) -> list[int]:
    """Line numbers (1-based) of the invalid entries, where the text holds them (first place each)."""
    _, problems, _ = compile_entries(entries, regexes=regexes)  # type: ignore[arg-type]  # checked there
    bad = {
        _value((regexes if problem.field == "allow_origin_regex" else entries)[problem.index])
        for problem in problems
        if problem.index is not None
    }
    where = key_lines(text, format)
    first: dict[tuple[type, str], int] = {}
    for key, value in _leaves(json.loads(text) if format == "json" else tomllib.loads(text), ()):
        if _value(value) in bad and key in where:
            first.setdefault(_value(value), where[key])
    return sorted(set(first.values()))


def _value(value: object) -> tuple[type, str]:
    return type(value), repr(value)


def _leaves(value: object, key: KeyPath) -> list[tuple[KeyPath, object]]:
    """Every scalar of the document with its key path (``("origins", 2)``), in order."""
    if isinstance(value, dict):
        return [leaf for name, item in value.items() for leaf in _leaves(item, (*key, name))]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, (*key, index))]
    return [(key, value)]
