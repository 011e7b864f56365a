"""Policy configuration files (TOML or JSON): parsed, validated, located, compiled.

A file holds the keyword arguments of :class:`Policy`::

    allow_origins = ["https://app.example.com", "https://*.partner.example"]
    allow_methods = ["GET", "POST"]
    allow_credentials = true

``pyproject.toml`` is read from its ``[tool.corsengine]`` table. Every problem (syntax,
unknown key, wrong type, an origin that can never match) is reported at once, each with a
code, the field and the line of the file, so ``corsengine check`` can point at it.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._policy import Policy
from .exceptions import ConfigurationError, Problem
from .providers._options import string_not_list
from .types import Clock

__all__ = ["ConfigProblem", "LoadedConfig", "PolicyConfig", "load_policy", "read_config"]

E_FILE: Final = "corsengine.E020"  # the file cannot be read, or its suffix is unknown
E_SYNTAX: Final = "corsengine.E021"  # TOML or JSON syntax, a duplicate key, not a table
E_SCHEMA: Final = "corsengine.E022"  # an unknown key or a value of the wrong type

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class ConfigProblem(Problem):
    """A problem (or a lint warning) located in a configuration file."""

    path: str = ""
    line: int | None = None
    field: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line is not None else self.path

    def __str__(self) -> str:
        about = f"{self.field}: " if self.field else ""
        text = f"{self.where}: {self.code}: {about}{self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "path": self.path,
            "line": self.line,
            "field": self.field,
        }


class PolicyConfig(BaseModel):
    """The keys of a configuration file: :class:`Policy`'s keyword arguments."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    allow_origins: list[str] = Field(
        default_factory=list,
        description='a list of origins or patterns, e.g. ["https://app.example.com", "https://*.example.com"]',
    )
    allow_methods: list[str] = Field(default=["GET"], description='a list of methods, e.g. ["GET", "POST"]')
    allow_headers: list[str] = Field(
        default_factory=list, description='a list of header names, e.g. ["Content-Type", "X-Token"]'
    )
    allow_credentials: bool = Field(default=False, description="true or false")
    allow_origin_regex: str | None = Field(
        default=None,
        description='one regex matched against the whole origin, e.g. "https://[a-z]+\\\\.example\\\\.com"',
    )
    allow_private_network: bool = Field(default=False, description="true or false")
    expose_headers: list[str] = Field(
        default_factory=list, description='a list of header names, e.g. ["X-Total"]'
    )
    max_age: int = Field(default=600, description="whole seconds, e.g. 600")
    preflight_status: int = Field(default=200, description="200 or 204")
    unsafe_allow_any_origin_with_credentials: bool = Field(default=False, description="true or false")

    def policy_kwargs(self) -> dict[str, Any]:
        return self.model_dump()


_LIST_FIELDS: Final = frozenset(
    name for name, info in PolicyConfig.model_fields.items() if info.annotation == list[str]
)

# Which key a Policy problem is about, by its code (E015 is decided by its message).
_PROBLEM_FIELDS: Final = {
    **dict.fromkeys(
        ("E001", "E002", "E003", "E004", "E005", "E006", "E010", "E011", "E012", "E016", "E017"),
        "allow_origins",
    ),
    "E007": "allow_origin_regex",
    "E008": "allow_origin_regex",
    "E018": "allow_origin_regex",
    "E009": "max_age",
    "E013": "preflight_status",
    "E014": "allow_methods",
}


# --- where keys are: a small scanner over text that already parsed --------------------------


class _Lines:
    def __init__(self, text: str) -> None:
        self.starts = [0, *(match.end() for match in re.finditer("\n", text))]

    def __call__(self, pos: int) -> int:
        return bisect_right(self.starts, pos)


_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_SCALAR = re.compile(r"[^,\]}\s]+")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_key_lines(text: str) -> tuple[dict[KeyPath, int], list[tuple[KeyPath, int]]]:
    """Map every key path (and list index) of valid JSON to its line; also list duplicate keys."""
    line_of = _Lines(text)
    lines: dict[KeyPath, int] = {}
    duplicates: list[tuple[KeyPath, int]] = []

    def skip(pos: int) -> int:
        return _JSON_WS.match(text, pos).end()  # type: ignore[union-attr]  # matches ""

    def value(pos: int, path: KeyPath) -> int:
        pos = skip(pos)
        char = text[pos]
        if char in "{[":
            close = "}" if char == "{" else "]"
            pos = skip(pos + 1)
            index = 0
            while text[pos] != close:
                if char == "{":
                    end = _JSON_STRING.match(text, pos).end()  # type: ignore[union-attr]
                    item: KeyPath = (*path, json.loads(text[pos:end]))
                    if item in lines:
                        duplicates.append((item, line_of(pos)))
                    else:
                        lines[item] = line_of(pos)
                    pos = skip(end) + 1  # the colon
                else:
                    item = (*path, index)
                    lines[item] = line_of(pos)
                    index += 1
                pos = skip(value(pos, item))
                if text[pos] == ",":
                    pos = skip(pos + 1)
            return pos + 1
        pattern = _JSON_STRING if char == '"' else _JSON_SCALAR
        return pattern.match(text, pos).end()  # type: ignore[union-attr]

    value(0, ())
    return lines, duplicates


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
    line_of = _Lines(text)
    lines: dict[KeyPath, int] = {}

    def blank(pos: int) -> int:
        return _TOML_BLANK.match(text, pos).end()  # type: ignore[union-attr]  # matches ""

    def key_value(pos: int, table: KeyPath) -> int:
        match = _TOML_KEY.match(text, pos)
        if match is None:  # pragma: no cover - the text parsed, so a key is here
            raise ValueError(pos)
        path = (*table, *_toml_key(match.group(1)))
        lines.setdefault(path, line_of(pos))
        return value(match.end(), path)

    def value(pos: int, path: KeyPath) -> int:
        char = text[pos]
        if char in "[{":
            close = "]" if char == "[" else "}"
            pos = blank(pos + 1)
            index = 0
            while text[pos] != close:
                if char == "[":
                    lines.setdefault((*path, index), line_of(pos))
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
            lines.setdefault(table, line_of(pos))
            pos = header.end()
        else:
            pos = key_value(pos, table)
        pos = blank(pos)
    return lines


# --- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated configuration file and where each of its keys is."""

    path: str
    config: PolicyConfig
    lines: Mapping[KeyPath, int]
    prefix: KeyPath = ()

    def line_of(self, key: KeyPath) -> int | None:
        """The line of a key (or of its nearest enclosing key), None if unknown."""
        return _line_of(self.lines, self.prefix, key)

    def problem(self, code: str, key: KeyPath, message: str, hint: str = "") -> ConfigProblem:
        return ConfigProblem(code, message, hint, self.path, self.line_of(key), _field_name(key))

    def policy(self, *, clock: Clock | None = None) -> Policy:
        """Build the Policy; a Policy problem is reported with its field and line."""
        try:
            return Policy(**self.config.policy_kwargs(), clock=clock)
        except ConfigurationError as error:
            data = self.config.model_dump()
            located = [
                _locate(problem, data, self.path, self.lines, self.prefix) for problem in error.problems
            ]
            located.sort(key=by_line)
            raise ConfigurationError(located) from None


def _line_of(lines: Mapping[KeyPath, int], prefix: KeyPath, key: KeyPath) -> int | None:
    full = (*prefix, *key)
    while full:
        if full in lines:
            return lines[full]
        full = full[:-1]
    return None


def by_line(problem: ConfigProblem) -> int:
    return problem.line or 0


def _field_name(key: KeyPath) -> str | None:
    text = ""
    for part in key:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or None


def _locate(
    problem: Problem, data: Mapping[str, Any], path: str, lines: Mapping[KeyPath, int], prefix: KeyPath
) -> ConfigProblem:
    name = _PROBLEM_FIELDS.get(problem.code.removeprefix("corsengine."))
    if problem.code == "corsengine.E015":
        name = "expose_headers" if problem.message.startswith("expose_headers") else "allow_headers"
    key: KeyPath = (name,) if name else ()
    items = data.get(name) if name else None
    if name and isinstance(items, list):
        # The entry is quoted in the message (unless it is too long to quote whole).
        for index, item in enumerate(items):
            if isinstance(item, str) and (repr(item) in problem.message or ascii(item) in problem.message):
                key = (name, index)
                break
    return ConfigProblem(
        problem.code, problem.message, problem.hint, path, _line_of(lines, prefix, key), _field_name(key)
    )


_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)$")


def _parse(text: str, path: str, suffix: str) -> tuple[Any, dict[KeyPath, int], list[ConfigProblem]]:
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            problem = ConfigProblem(E_SYNTAX, f"invalid JSON: {error.msg} ({where})", "", path, error.lineno)
            return None, {}, [problem]
        except RecursionError:
            return None, {}, [ConfigProblem(E_SYNTAX, "invalid JSON: nested too deeply", "", path)]
        lines, duplicates = json_key_lines(text)
        problems = [
            ConfigProblem(
                E_SYNTAX,
                "duplicate key: JSON keeps only the last value",
                "give each key once",
                path,
                line,
                _field_name(key),
            )
            for key, line in duplicates
        ]
        return data, lines, problems
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _AT_LINE.search(message)
        line = int(found.group(1)) if found else text.count("\n") + 1
        problem = ConfigProblem(
            E_SYNTAX, f"invalid TOML: {_AT_LINE.sub('', message).strip()}", "", path, line
        )
        return None, {}, [problem]
    return data, toml_key_lines(text), []


def _schema_problem(
    error: Mapping[str, Any], path: str, lines: Mapping[KeyPath, int], prefix: KeyPath
) -> ConfigProblem:
    key: KeyPath = tuple(error["loc"])
    line = _line_of(lines, prefix, key)
    name = _field_name(key)
    if error["type"] == "extra_forbidden":
        known = list(PolicyConfig.model_fields)
        close = difflib.get_close_matches(str(key[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(known)
        return ConfigProblem(E_SCHEMA, f"unknown key {str(key[-1])!r}", hint, path, line, name)
    field = PolicyConfig.model_fields.get(str(key[0]))
    if len(key) == 1 and key[0] in _LIST_FIELDS and isinstance(error["input"], str):
        # The classic mistake, with the fix spelled out like Policy(...) does.
        found = string_not_list(str(key[0]), error["input"])
        return ConfigProblem(found.code, found.message, found.hint, path, line, name)
    hint = f"expected {field.description}" if field is not None and field.description else ""
    got = type(error["input"]).__name__
    return ConfigProblem(E_SCHEMA, f"{error['msg'].rstrip('.')} (got {got})", hint, path, line, name)


_TYPE_NAMES: Final[Mapping[type, str]] = {dict: "table", list: "array", str: "string", bool: "boolean"}


def read_config(path: str | Path) -> LoadedConfig:
    """Read and validate a configuration file; ConfigurationError lists every problem."""
    shown = str(path)
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigurationError(
            [
                ConfigProblem(
                    E_FILE,
                    f"unknown configuration format {file.suffix!r}",
                    "use a .toml or .json file",
                    shown,
                )
            ]
        )
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        problem = ConfigProblem(E_FILE, f"cannot read the configuration file: {reason}", "", shown)
        raise ConfigurationError([problem]) from None

    data, lines, problems = _parse(text, shown, suffix)
    prefix: KeyPath = ()
    if data is not None and file.name == "pyproject.toml":
        prefix = ("tool", "corsengine")
        data = data.get("tool", {}).get("corsengine")
        if data is None:
            hint = "put the policy under [tool.corsengine], or in its own cors.toml"
            problems.append(
                ConfigProblem(E_SCHEMA, "pyproject.toml has no [tool.corsengine] table", hint, shown)
            )
    if data is not None and not isinstance(data, dict):
        kind = _TYPE_NAMES.get(type(data), type(data).__name__)
        hint = 'write an object of keys, e.g. {"allow_origins": ["https://app.example.com"]}'
        problems.append(
            ConfigProblem(E_SYNTAX, f"the configuration is a {kind}, not an object", hint, shown, 1)
        )
    if problems:
        raise ConfigurationError(problems)

    try:
        config = PolicyConfig.model_validate(data)
    except ValidationError as error:
        found = [_schema_problem(item, shown, lines, prefix) for item in error.errors()]
        # The keys that did validate may still hold Policy problems: list them too, at once.
        broken = {item["loc"][0] for item in error.errors()}
        valid = {
            key: value
            for key, value in data.items()
            if key in PolicyConfig.model_fields and key not in broken
        }
        try:
            Policy(**valid)
        except ConfigurationError as policy_error:
            found.extend(_locate(p, valid, shown, lines, prefix) for p in policy_error.problems)
        found.sort(key=by_line)
        raise ConfigurationError(found) from None
    return LoadedConfig(shown, config, lines, prefix)


def load_policy(path: str | Path, *, clock: Clock | None = None) -> Policy:
    r"""Build a `Policy` from a TOML or JSON file.

    Raises `ConfigurationError` listing every problem, each with its code, the
    field and the line of the file.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from corsengine import load_policy
        >>> path = Path(tempfile.mkdtemp()) / "cors.toml"
        >>> _ = path.write_text('allow_origins = ["https://*.partner.example"]\nallow_credentials = true\n')
        >>> policy = load_policy(path)
        >>> policy.evaluate("https://eu.partner.example").headers["Access-Control-Allow-Credentials"]
        'true'
    """
    return read_config(path).policy(clock=clock)
