"""Configuration files: parsing, validation, and problems located by field and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corsengine import ConfigurationError, Policy, Problem
from corsengine._config import (
    ConfigProblem,
    json_key_lines,
    load_policy,
    read_config,
    toml_key_lines,
)
from corsengine.testing import FakeClock, assert_allowed, assert_refused


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[ConfigProblem]:
    with pytest.raises(ConfigurationError) as caught:
        load_policy(path)
    found = list(caught.value.problems)
    assert all(isinstance(problem, ConfigProblem) for problem in found)
    return found  # type: ignore[return-value]


def located(path: Path) -> list[tuple[str, str | None, int | None]]:
    return [(problem.code, problem.field, problem.line) for problem in problems_of(path)]


TOML = """\
# the partner portal
allow_origins = [
    "https://app.example.com",
    "https://*.partner.example",  # every partner
]
allow_methods = ["GET", "POST"]
allow_headers = ["X-Token"]
allow_credentials = true
expose_headers = ["X-Total"]
max_age = 300
preflight_status = 204
"""


def test_a_toml_file_builds_the_policy(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "cors.toml", TOML))
    assert isinstance(policy, Policy)
    decision = assert_allowed(policy, "https://a.partner.example", "POST", ["X-Token"])
    assert decision.status == 204
    assert decision.headers["Access-Control-Max-Age"] == "300"
    assert decision.headers["Access-Control-Allow-Credentials"] == "true"
    assert_refused(policy, "https://partner.example")
    assert policy.expose_headers == ("X-Total",)


def test_a_json_file_builds_the_same_policy(tmp_path: Path) -> None:
    document = {
        "allow_origins": ["https://app.example.com"],
        "allow_origin_regex": r"https://[a-z]+\.example\.org",
    }
    policy = load_policy(write(tmp_path, "cors.json", json.dumps(document)))
    assert_allowed(policy, "https://docs.example.org")
    assert_allowed(policy, "https://app.example.com")
    assert_refused(policy, "https://docs.example.org.evil.net")


def test_an_empty_file_is_the_default_policy(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "cors.toml", ""))
    assert policy.allow_methods == ("GET",)
    assert_refused(policy, "https://app.example.com")


def test_the_clock_is_passed_on(tmp_path: Path) -> None:
    clock = FakeClock()
    policy = load_policy(write(tmp_path, "cors.toml", TOML), clock=clock)
    assert policy.clock is clock


def test_pyproject_is_read_from_tool_corsengine(tmp_path: Path) -> None:
    text = '[project]\nname = "app"\n\n[tool.corsengine]\nallow_origins = ["https://app.example.com"]\nmax_age = -1\n'
    path = write(tmp_path, "pyproject.toml", text)
    assert located(path) == [("corsengine.E009", "max_age", 6)]
    write(tmp_path, "pyproject.toml", text.replace("-1", "60"))
    assert_allowed(load_policy(path), "https://app.example.com")


def test_pyproject_without_the_table(tmp_path: Path) -> None:
    path = write(tmp_path, "pyproject.toml", '[project]\nname = "app"\n')
    assert located(path) == [("corsengine.E022", None, None)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'allow_origins = ["https://a.example.com"]\nallow_origin = ["x"]\n',
            [("corsengine.E022", "allow_origin", 2)],
            id="unknown-key",
        ),
        pytest.param('max_age = "600"\n', [("corsengine.E022", "max_age", 1)], id="wrong-type"),
        pytest.param(
            "allow_credentials = 1\n", [("corsengine.E022", "allow_credentials", 1)], id="strict-bool"
        ),
        pytest.param(
            'allow_origins = "https://a.example.com, https://b.example.com"\n',
            [("corsengine.E010", "allow_origins", 1)],
            id="string-not-list",
        ),
        pytest.param(
            'allow_origins = [\n  "https://ok.example.com",\n  42,\n]\n',
            [("corsengine.E022", "allow_origins[1]", 3)],
            id="list-item-type",
        ),
        pytest.param(
            'allow_origins = [\n  "https://ok.example.com",\n  "https://app.example.com/path",\n]\n',
            [("corsengine.E001", "allow_origins[1]", 3)],
            id="origin-with-path",
        ),
        pytest.param(
            'allow_origins = ["null"]\nallow_credentials = true\n',
            [("corsengine.E011", "allow_origins[0]", 1)],
            id="null-with-credentials",
        ),
        pytest.param(
            'allow_origins = ["*"]\nallow_credentials = true\n',
            [("corsengine.E012", "allow_origins[0]", 1)],
            id="any-with-credentials",
        ),
        pytest.param(
            'allow_origin_regex = "(a+)+"\n', [("corsengine.E008", "allow_origin_regex", 1)], id="redos"
        ),
        pytest.param(
            'allow_methods = ["GET", "BAD METHOD"]\n',
            [("corsengine.E014", "allow_methods[1]", 1)],
            id="method",
        ),
        pytest.param(
            'expose_headers = ["X-Ok", "bad header"]\n',
            [("corsengine.E015", "expose_headers[1]", 1)],
            id="expose",
        ),
        pytest.param(
            '\n\nallow_headers = ["a b"]\n', [("corsengine.E015", "allow_headers[0]", 3)], id="header"
        ),
        pytest.param("preflight_status = 404\n", [("corsengine.E013", "preflight_status", 1)], id="status"),
        pytest.param(
            '[origins_file]\npath = "origins.txt"\n',
            [("corsengine.E022", "origins_file", 1)],
            id="unknown-table",
        ),
    ],
)
@pytest.mark.usefixtures("no_re2")  # E008 is the guard of Python's engine
def test_toml_problems_name_the_field_and_the_line(tmp_path: Path, text: str, expected: list[object]) -> None:
    assert located(write(tmp_path, "cors.toml", text)) == expected


def test_every_problem_is_listed_at_once_in_file_order(tmp_path: Path) -> None:
    text = (
        "allow_origins = [\n"
        '  "https://ok.example.com",\n'
        '  "ftp//missing-colon",\n'
        "]\n"
        'allow_method = ["GET"]\n'
        "max_age = 999999\n"
        'preflight_status = "204"\n'
    )
    found = problems_of(write(tmp_path, "cors.toml", text))
    assert [(p.field, p.line) for p in found] == [
        ("allow_origins[1]", 3),
        ("allow_method", 5),
        ("max_age", 6),
        ("preflight_status", 7),
    ]
    assert found[1].hint == "did you mean 'allow_methods'?"
    assert str(found[0]).startswith(f"{tmp_path / 'cors.toml'}:3: corsengine.E003: allow_origins[1]: ")


def test_an_entry_too_long_to_quote_is_located_by_its_index(tmp_path: Path) -> None:
    # The problem carries its index from where it is created: the message need not quote it.
    text = f'max_age = 60\nallow_origins = [\n  "https://app.example.com/{"x" * 100}",\n]\n'
    assert located(write(tmp_path, "cors.toml", text)) == [("corsengine.E001", "allow_origins[0]", 3)]


def test_json_problems_name_the_field_and_the_line(tmp_path: Path) -> None:
    text = '{\n  "allow_origins": [\n    "https://ok.example.com",\n    "https://bad.example.com?q"\n  ],\n  "maxAge": 5\n}\n'
    assert located(write(tmp_path, "cors.json", text)) == [
        ("corsengine.E001", "allow_origins[1]", 4),
        ("corsengine.E022", "maxAge", 6),
    ]


def test_json_syntax_error_has_its_line(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, "cors.json", '{\n  "allow_origins": ["https://a.example.com",]\n}\n'))
    assert [(p.code, p.line) for p in found] == [("corsengine.E021", 2)]
    assert "column" in found[0].message


def test_json_duplicate_keys_are_errors(tmp_path: Path) -> None:
    text = '{\n  "allow_origins": ["https://a.example.com"],\n  "allow_origins": []\n}\n'
    assert located(write(tmp_path, "cors.json", text)) == [("corsengine.E021", "allow_origins", 3)]


def test_json_must_be_an_object(tmp_path: Path) -> None:
    assert located(write(tmp_path, "cors.json", '["https://a.example.com"]')) == [
        ("corsengine.E021", None, 1)
    ]


def test_json_nested_too_deeply(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, "cors.json", "[" * 100_000))
    assert [p.code for p in found] == ["corsengine.E021"]


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, "cors.toml", 'max_age = 600\nallow_origins = ["a",,]\n'))
    assert [(p.code, p.line) for p in found] == [("corsengine.E021", 2)]
    assert found[0].message == "invalid TOML: Invalid value"


def test_toml_error_at_end_of_document(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, "cors.toml", "max_age = 600\nmax_age ="))
    assert [(p.code, p.line) for p in found] == [("corsengine.E021", 2)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("cors.yaml", "", "unknown configuration format '.yaml'"),
        ("missing.toml", None, "cannot read the configuration file: No such file or directory"),
        ("latin1.toml", b"max_age = 600 # \xff\n", "cannot read the configuration file: 'utf-8' codec"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: str | bytes | None, message: str) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    found = problems_of(path)
    assert [p.code for p in found] == ["corsengine.E020"]
    assert found[0].message.startswith(message)
    assert found[0].line is None
    assert str(found[0]).startswith(f"{path}: corsengine.E020")


def test_a_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "cors.json"
    path.write_bytes(b'\xef\xbb\xbf{"allow_origins": ["https://a.example.com"]}')
    assert_allowed(load_policy(path), "https://a.example.com")


def test_problem_as_dict(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "cors.toml", "max_age = -5\n"))
    assert problem.as_dict() == {
        "code": "corsengine.E009",
        "message": "max_age=-5 is out of range",
        "hint": "use whole seconds from 0 to 86400; browsers cap it lower anyway",
        "path": str(tmp_path / "cors.toml"),
        "line": 1,
        "field": "max_age",
    }


def test_loaded_config_keeps_the_lines(tmp_path: Path) -> None:
    loaded = read_config(write(tmp_path, "cors.toml", TOML))
    assert loaded.line_of(("allow_origins", 1)) == 4
    assert loaded.line_of(("allow_origins", 7)) == 2  # falls back to the key
    assert loaded.line_of(("nothing",)) is None
    assert loaded.config.max_age == 300


def test_toml_scanner_handles_every_kind_of_value() -> None:
    text = (
        'title = """\nmulti "quoted"\nline"""\n'
        "literal = '''\nraw \\ text\n'''\n"
        "when = 1979-05-27 07:32:00Z\n"
        "dates = [1979-05-27T07:32:00-08:00, 1979-05-27]\n"
        '"quoted key" = 1\n'
        "site.'dotted key' = { a = [1, [2, 3]], b = 'x' }\n"
        "[[servers]]\n"
        "name = 'alpha' # comment\n"
        '[ table . "sub" ]\n'
        "empty = []\n"
        "trailing = [\n  1,\n  2,\n]\n"
    )
    lines = toml_key_lines(text)
    assert lines[("title",)] == 1
    assert lines[("literal",)] == 4
    assert lines[("when",)] == 7
    assert lines[("dates", 1)] == 8
    assert lines[("quoted key",)] == 9
    assert lines[("site", "dotted key", "a", 1)] == 10
    assert lines[("site", "dotted key", "b")] == 10
    assert lines[("servers", "name")] == 12
    assert lines[("table", "sub", "empty")] == 14
    assert lines[("table", "sub", "trailing", 1)] == 17


def test_json_scanner_handles_nesting_and_escapes() -> None:
    text = '{"a\\"b": {"c": [1, true, null, "x,]}"]},\n "d": {},\n "e": [] }'
    lines, duplicates = json_key_lines(text)
    assert lines == {
        ('a"b',): 1,
        ('a"b', "c"): 1,
        **{('a"b', "c", i): 1 for i in range(4)},
        ("d",): 2,
        ("e",): 3,
    }
    assert duplicates == []


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({"allow_origins": ["https://a.example", "ftp//x"]}, [("allow_origins", 1)], id="entry"),
        pytest.param({"allow_origins": ["https://a.example", 7]}, [("allow_origins", 1)], id="not-a-string"),
        pytest.param({"allow_origins": "https://a.example"}, [("allow_origins", None)], id="string"),
        pytest.param({"allow_origins": ["https://*.com"]}, [("allow_origins", 0)], id="public-suffix"),
        pytest.param(
            {"allow_origins": ["https://a.example", "null"], "allow_credentials": True},
            [("allow_origins", 1)],
            id="null-credentials",
        ),
        pytest.param(
            {"allow_origin_regex": ".*", "allow_credentials": True},
            [("allow_origin_regex", None)],
            id="catch-all",
        ),
        pytest.param({"allow_origin_regex": "(x"}, [("allow_origin_regex", None)], id="regex"),
        pytest.param({"allow_methods": ["GET", "A B"]}, [("allow_methods", 1)], id="method"),
        pytest.param({"allow_headers": 3}, [("allow_headers", None)], id="not-a-list"),
        pytest.param(
            {"expose_headers": ["X-A", "*"], "allow_credentials": True},
            [("expose_headers", 1)],
            id="expose-star",
        ),
        pytest.param({"allow_credentials": "false"}, [("allow_credentials", None)], id="flag"),
        pytest.param(
            {"max_age": -1, "preflight_status": 404},
            [("max_age", None), ("preflight_status", None)],
            id="ints",
        ),
        pytest.param({"timeout": 0}, [("timeout", None)], id="option"),
    ],
)
def test_each_policy_problem_carries_its_field_and_index(
    kwargs: dict[str, object], expected: list[tuple[str, int | None]]
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Policy(**kwargs)  # type: ignore[arg-type]
    assert [(problem.field, problem.index) for problem in caught.value.problems] == expected


def test_a_provider_problem_carries_its_field() -> None:
    from corsengine.providers import PredicateProvider, RegexProvider

    with pytest.raises(ConfigurationError) as caught:
        PredicateProvider(lambda origin: True, vary=["X-Ok", "no spaces"], cache_ttl=-1)
    assert [(p.field, p.index) for p in caught.value.problems] == [("vary", 1), ("cache_ttl", None)]
    with pytest.raises(ConfigurationError) as caught:
        RegexProvider("https://a\\.example", "(x")
    assert [(p.field, p.index) for p in caught.value.problems] == [("allow_origin_regex", 1)]


def test_a_policy_problem_without_a_file_key_has_no_line(tmp_path: Path) -> None:
    loaded = read_config(write(tmp_path, "cors.toml", "max_age = 60\n"))
    problem = loaded.located(Problem("corsengine.E028", "shadow is an int", field="shadow"))
    assert (problem.field, problem.line) == ("shadow", None)
