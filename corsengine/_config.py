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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._codes import E020, E021, E022
from ._lines import KeyPath, json_key_lines, key_text, line_of, toml_key_lines
from ._policy import Policy
from ._settings import DEFAULTS
from .exceptions import ConfigurationError, Problem
from .providers._options import string_not_list
from .types import Clock

__all__ = ["ConfigProblem", "LoadedConfig", "PolicyConfig", "load_policy", "read_config"]


@dataclass(frozen=True, slots=True)
class ConfigProblem(Problem):
    """A problem (or a lint warning) located in a configuration file.

    ``field`` is the key as the file spells it, the entry's position included
    (``allow_origins[1]``); ``index`` is that position.
    """

    path: str = ""
    line: int | None = None

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
    """The keys of a configuration file: :class:`Policy`'s keyword arguments, with its
    defaults (``_settings.DEFAULTS``, Starlette's)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    allow_origins: list[str] = Field(
        default_factory=lambda: list(DEFAULTS["allow_origins"]),
        description='a list of origins or patterns, e.g. ["https://app.example.com", "https://*.example.com"]',
    )
    allow_methods: list[str] = Field(
        default_factory=lambda: list(DEFAULTS["allow_methods"]),
        description='a list of methods, e.g. ["GET", "POST"]',
    )
    allow_headers: list[str] = Field(
        default_factory=lambda: list(DEFAULTS["allow_headers"]),
        description='a list of header names, e.g. ["Content-Type", "X-Token"]',
    )
    allow_credentials: bool = Field(default=DEFAULTS["allow_credentials"], description="true or false")
    allow_origin_regex: str | None = Field(
        default=DEFAULTS["allow_origin_regex"],
        description='one regex matched against the whole origin, e.g. "https://[a-z]+\\\\.example\\\\.com"',
    )
    allow_private_network: bool = Field(
        default=DEFAULTS["allow_private_network"], description="true or false"
    )
    expose_headers: list[str] = Field(
        default_factory=lambda: list(DEFAULTS["expose_headers"]),
        description='a list of header names, e.g. ["X-Total"]',
    )
    max_age: int = Field(default=DEFAULTS["max_age"], description="whole seconds, e.g. 600")
    preflight_status: int = Field(default=DEFAULTS["preflight_status"], description="200 or 204")
    unsafe_allow_any_origin_with_credentials: bool = Field(default=False, description="true or false")

    def policy_kwargs(self) -> dict[str, Any]:
        return self.model_dump()


_LIST_FIELDS: Final = frozenset(
    name for name, info in PolicyConfig.model_fields.items() if info.annotation == list[str]
)

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
        return line_of(self.lines, (*self.prefix, *key))

    def problem(self, code: str, key: KeyPath, message: str, hint: str = "") -> ConfigProblem:
        return _located(code, message, hint, self.path, self.lines, self.prefix, key)

    def policy(self, *, clock: Clock | None = None) -> Policy:
        """Build the Policy; a Policy problem is reported with its field and line."""
        try:
            return Policy(**self.config.policy_kwargs(), clock=clock)
        except ConfigurationError as error:
            located = [self.located(problem) for problem in error.problems]
            located.sort(key=by_line)
            raise ConfigurationError(located) from None

    def located(self, problem: Problem) -> ConfigProblem:
        """A Policy problem at the key of its field (and entry) in this file."""
        return _located(
            problem.code, problem.message, problem.hint, self.path, self.lines, self.prefix, _key(problem)
        )


def _key(problem: Problem) -> KeyPath:
    if problem.field is None:
        return ()
    return (problem.field,) if problem.index is None else (problem.field, problem.index)


def _located(
    code: str, message: str, hint: str, path: str, lines: Mapping[KeyPath, int], prefix: KeyPath, key: KeyPath
) -> ConfigProblem:
    index = key[-1] if key and isinstance(key[-1], int) else None
    line = line_of(lines, (*prefix, *key))
    return ConfigProblem(code, message, hint, path, line, field=key_text(key), index=index)


def by_line(problem: ConfigProblem) -> int:
    return problem.line or 0


_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)$")


def _parse(text: str, path: str, suffix: str) -> tuple[Any, dict[KeyPath, int], list[ConfigProblem]]:
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            problem = ConfigProblem(E021, f"invalid JSON: {error.msg} ({where})", "", path, error.lineno)
            return None, {}, [problem]
        except RecursionError:
            return None, {}, [ConfigProblem(E021, "invalid JSON: nested too deeply", "", path)]
        lines, duplicates = json_key_lines(text)
        message = "duplicate key: JSON keeps only the last value"
        problems = [
            ConfigProblem(E021, message, "give each key once", path, line, field=key_text(key))
            for key, line in duplicates
        ]
        return data, lines, problems
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        found = _AT_LINE.search(message)
        line = int(found.group(1)) if found else text.count("\n") + 1
        problem = ConfigProblem(E021, f"invalid TOML: {_AT_LINE.sub('', message).strip()}", "", path, line)
        return None, {}, [problem]
    return data, toml_key_lines(text), []


def _schema_problem(
    error: Mapping[str, Any], path: str, lines: Mapping[KeyPath, int], prefix: KeyPath
) -> ConfigProblem:
    key: KeyPath = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        known = list(PolicyConfig.model_fields)
        close = difflib.get_close_matches(str(key[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(known)
        return _located(E022, f"unknown key {str(key[-1])!r}", hint, path, lines, prefix, key)
    field = PolicyConfig.model_fields.get(str(key[0]))
    if len(key) == 1 and key[0] in _LIST_FIELDS and isinstance(error["input"], str):
        # The classic mistake, with the fix spelled out like Policy(...) does.
        found = string_not_list(str(key[0]), error["input"])
        return _located(found.code, found.message, found.hint, path, lines, prefix, key)
    hint = f"expected {field.description}" if field is not None and field.description else ""
    got = type(error["input"]).__name__
    return _located(E022, f"{error['msg'].rstrip('.')} (got {got})", hint, path, lines, prefix, key)


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
                    E020,
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
        problem = ConfigProblem(E020, f"cannot read the configuration file: {reason}", "", shown)
        raise ConfigurationError([problem]) from None

    data, lines, problems = _parse(text, shown, suffix)
    prefix: KeyPath = ()
    if data is not None and file.name == "pyproject.toml":
        prefix = ("tool", "corsengine")
        data = data.get("tool", {}).get("corsengine")
        if data is None:
            hint = "put the policy under [tool.corsengine], or in its own cors.toml"
            problems.append(ConfigProblem(E022, "pyproject.toml has no [tool.corsengine] table", hint, shown))
    if data is not None and not isinstance(data, dict):
        kind = _TYPE_NAMES.get(type(data), type(data).__name__)
        hint = 'write an object of keys, e.g. {"allow_origins": ["https://app.example.com"]}'
        problems.append(ConfigProblem(E021, f"the configuration is a {kind}, not an object", hint, shown, 1))
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
            found.extend(
                _located(p.code, p.message, p.hint, shown, lines, prefix, _key(p))
                for p in policy_error.problems
            )
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
