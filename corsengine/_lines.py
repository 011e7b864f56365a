"""Where each key and list entry of a JSON or TOML document is: one locator for every reader.

``key_lines(text, "json")`` maps every key path (``("allow_origins", 1)``) of a document that
already parsed to its line, so that a problem that knows its field and index can name the
line: policy files (``corsengine check``) and the allowlist documents of the file and remote
providers use it alike. Both formats are scanned after the standard library has parsed them
(json, tomllib), which give no positions: so the scanners may assume valid text.
"""

from __future__ import annotations

import json
import re
import tomllib
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Literal

__all__ = ["KeyPath", "json_key_lines", "key_lines", "key_text", "line_of", "toml_key_lines"]

KeyPath = tuple[str | int, ...]
Lines = Mapping[KeyPath, int]


def _line_starts(text: str) -> Callable[[int], int]:
    starts = [0, *(match.end() for match in re.finditer("\n", text))]
    return lambda pos: bisect_right(starts, pos)


def key_lines(text: str, format: Literal["json", "toml"]) -> dict[KeyPath, int]:
    """Map every key path (and list index) of a valid document to its line."""
    return json_key_lines(text)[0] if format == "json" else toml_key_lines(text)


def line_of(lines: Lines, key: KeyPath) -> int | None:
    """The line of ``key``, or of its nearest enclosing key; None if none is known."""
    while key:
        if key in lines:
            return lines[key]
        key = key[:-1]
    return None


def key_text(key: KeyPath) -> str | None:
    """A key path as a reader writes it: ``allow_origins[1]``, ``tool.corsengine``."""
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


# --- JSON: one pass over the tokens of text that json.loads already accepted -----------------

_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[][{}:,]|[^][{}:,"\s]+')


def json_key_lines(text: str) -> tuple[dict[KeyPath, int], list[tuple[KeyPath, int]]]:
    """Map every key path (and list index) of valid JSON to its line; also list duplicate keys."""
    line = _line_starts(text)
    lines: dict[KeyPath, int] = {}
    duplicates: list[tuple[KeyPath, int]] = []
    # The open objects and arrays: the path of each, and the index of an array's next element
    # (-1 for an object). No recursion: json.loads bounds the nesting, not this scanner.
    paths: list[KeyPath] = []
    nexts: list[int] = []
    path: KeyPath = ()  # of the value that comes next
    expect_key = False
    for match in _JSON_TOKEN.finditer(text):
        piece, where = match.group(), line(match.start())
        if piece in ",:":
            expect_key = piece == "," and nexts[-1] < 0
        elif piece in "]}":
            paths.pop()
            nexts.pop()
        elif expect_key:
            path = (*paths[-1], json.loads(piece))
            if path in lines:
                duplicates.append((path, where))
            else:
                lines[path] = where
            expect_key = False
        else:
            if nexts and nexts[-1] >= 0:
                path = (*paths[-1], nexts[-1])
                nexts[-1] += 1
                lines[path] = where
            if piece in "{[":
                paths.append(path)
                nexts.append(-1 if piece == "{" else 0)
                expect_key = piece == "{"
    return lines, duplicates


# --- TOML: a small scanner over text that tomllib already accepted ---------------------------

_TOML_BLANK = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")
_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:[ \t]*\.[ \t]*{_KEY_PART})*"
_TOML_HEADER = re.compile(rf"\[\[?[ \t]*({_DOTTED_KEY})[ \t]*\]\]?")
_TOML_KEY = re.compile(rf"({_DOTTED_KEY})[ \t]*=[ \t]*")
_TOML_KEY_PART = re.compile(_KEY_PART)
_TOML_STRINGS = (
    ('"""', re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""(?:""?)?', re.S)),
    ("'''", re.compile(r"'''.*?'''(?:''?)?", re.S)),
    ('"', re.compile(r'"(?:[^"\\\n]|\\.)*"')),
    ("'", re.compile(r"'[^'\n]*'")),
)
_TOML_SCALAR = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[Zz]|[+-]\d\d:\d\d)?|[^,\]}\s#]+"
)


def _toml_key(text: str) -> KeyPath:
    parts: list[str | int] = []
    for match in _TOML_KEY_PART.finditer(text):
        part = match.group()
        if part[0] == '"':
            part = tomllib.loads(f"k = {part}")["k"]
        elif part[0] == "'":
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def toml_key_lines(text: str) -> dict[KeyPath, int]:
    """Map every key path (and array index) of valid TOML to its line."""
    line = _line_starts(text)
    lines: dict[KeyPath, int] = {}

    def blank(pos: int) -> int:
        return _TOML_BLANK.match(text, pos).end()  # type: ignore[union-attr]  # matches ""

    def key_value(pos: int, table: KeyPath) -> int:
        match = _TOML_KEY.match(text, pos)
        if match is None:  # pragma: no cover - the text parsed, so a key is here
            raise ValueError(pos)
        path = (*table, *_toml_key(match.group(1)))
        lines.setdefault(path, line(pos))
        return value(match.end(), path)

    def value(pos: int, path: KeyPath) -> int:
        char = text[pos]
        if char in "[{":
            close = "]" if char == "[" else "}"
            pos = blank(pos + 1)
            index = 0
            while text[pos] != close:
                if char == "[":
                    lines.setdefault((*path, index), line(pos))
                    pos = value(pos, (*path, index))
                    index += 1
                else:
                    pos = key_value(pos, path)
                pos = blank(pos)
                if text[pos] == ",":
                    pos = blank(pos + 1)
            return pos + 1
        for opening, pattern in _TOML_STRINGS:
            if text.startswith(opening, pos):
                return pattern.match(text, pos).end()  # type: ignore[union-attr]
        return _TOML_SCALAR.match(text, pos).end()  # type: ignore[union-attr]

    table: KeyPath = ()
    pos = blank(0)
    while pos < len(text):
        header = _TOML_HEADER.match(text, pos) if text[pos] == "[" else None
        if header is not None:
            table = _toml_key(header.group(1))
            lines.setdefault(table, line(pos))
            pos = header.end()
        else:
            pos = key_value(pos, table)
        pos = blank(pos)
    return lines
