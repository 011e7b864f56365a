"""What ``corsengine lint`` reports (``corsengine/_lint.py``): each warning code W101-W110 with
its field and line, and the errors it leaves to the configuration. How the command prints
them and its exit statuses are in tests/test_cli.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from corsengine._lint import WARNINGS

from .cli import run, run_json


def lint_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str) -> list[tuple[str, str, int]]:
    path = tmp_path / "cors.toml"
    path.write_text(text)
    status, document = run_json(capsys, "lint", path)
    assert status == (1 if document["warnings"] else 0)
    return [(w["code"], w["field"], w["line"]) for w in document["warnings"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            'allow_origins = ["https://app.example.com", "http://localhost:3000", "http://127.0.0.1:8000", '
            '"http://[::1]:8000", "http://app.localhost"]\n'
            'allow_origin_regex = "https://[a-z]+\\\\.example\\\\.com"\nmax_age = 7200\n',
            [],
            id="clean",
        ),
        pytest.param(
            'allow_credentials = true\nallow_origins = [\n  "https://app.example.com",\n  "https://*.example.com",\n'
            '  "http://localhost:*",\n]\n',
            [("corsengine.W101", "allow_origins[1]", 4), ("corsengine.W101", "allow_origins[2]", 5)],
            id="credentials-with-wildcards",
        ),
        pytest.param(
            'allow_credentials = true\nunsafe_allow_any_origin_with_credentials = true\nallow_origins = ["*"]\n',
            [("corsengine.W101", "allow_origins[0]", 3)],
            id="credentials-with-any",
        ),
        pytest.param(
            'allow_credentials = true\nallow_origin_regex = "https://[a-z]+\\\\.example\\\\.com"\n',
            [("corsengine.W101", "allow_origin_regex", 2)],
            id="credentials-with-regex",
        ),
        pytest.param(
            'allow_origins = ["http://app.example.com", "http://*.example.org", "http://intranet:*"]\n',
            [
                ("corsengine.W102", "allow_origins[0]", 1),
                ("corsengine.W102", "allow_origins[1]", 1),
                ("corsengine.W102", "allow_origins[2]", 1),
            ],
            id="plain-http",
        ),
        pytest.param(
            'allow_origin_regex = "https?://[a-z]+\\\\.example\\\\.com"\n',
            [("corsengine.W102", "allow_origin_regex", 1)],
            id="plain-http-regex",
        ),
        pytest.param(
            'allow_origin_regex = "https?://localhost:[0-9]+"\n',
            [],
            id="plain-http-regex-localhost",
        ),
        pytest.param('allow_origins = ["null"]\n', [("corsengine.W103", "allow_origins[0]", 1)], id="null"),
        pytest.param(
            'allow_origin_regex = "https://api.example.com"\n',
            [("corsengine.W104", "allow_origin_regex", 1)],
            id="unescaped-dot",
        ),
        pytest.param(
            'allow_origin_regex = "https://(api|www.app)\\\\.example\\\\.com"\n',
            [("corsengine.W104", "allow_origin_regex", 1)],
            id="unescaped-dot-in-branch",
        ),
        pytest.param(
            'allow_origin_regex = "https://(x.)?example\\\\.com"\n',
            [("corsengine.W104", "allow_origin_regex", 1)],
            id="unescaped-dot-in-group",
        ),
        pytest.param(
            'allow_origin_regex = "https://([a-z.]+[.])?example\\\\.com(:[0-9]{2,5})?"\n',
            [],
            id="dots-in-classes",
        ),
        pytest.param(
            'allow_origin_regex = "https://.*example\\\\.com"\n',
            [("corsengine.W105", "allow_origin_regex", 1)],
            id="open-prefix",
        ),
        pytest.param(
            'allow_origin_regex = "https://(foo|.+example\\\\.com)"\n',
            [("corsengine.W105", "allow_origin_regex", 1)],
            id="open-prefix-in-branch",
        ),
        pytest.param(
            'allow_origin_regex = "https://(.*example)\\\\.com"\n',
            [("corsengine.W105", "allow_origin_regex", 1)],
            id="open-prefix-in-group",
        ),
        pytest.param('allow_origin_regex = "https://.*\\\\.example\\\\.com"\n', [], id="label-boundary"),
        pytest.param("max_age = 7201\n", [("corsengine.W106", "max_age", 1)], id="max-age"),
        pytest.param(
            'allow_credentials = true\nallow_headers = ["X-Token", "*"]\n',
            [("corsengine.W107", "allow_headers[1]", 2), ("corsengine.W110", "allow_headers[1]", 2)],
            id="any-header-with-credentials",
        ),
        pytest.param(
            'allow_headers = ["*"]\n',
            [("corsengine.W110", "allow_headers[0]", 1)],
            id="any-header-not-authorization",
        ),
        pytest.param('allow_headers = ["*", "Authorization"]\n', [], id="any-header-and-authorization"),
        pytest.param(
            'allow_methods = ["*"]\n', [("corsengine.W108", "allow_methods[0]", 1)], id="any-method"
        ),
        pytest.param(
            "\nallow_private_network = true\n",
            [("corsengine.W109", "allow_private_network", 2)],
            id="private-network",
        ),
    ],
)
def test_lint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, expected: list[tuple[str, str, int]]
) -> None:
    assert lint_codes(capsys, tmp_path, text) == expected


def test_lint_codes_are_documented() -> None:
    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    for code, summary in WARNINGS.items():
        assert f"`{code}`" in text, code
        assert summary, code


@pytest.mark.usefixtures("no_re2")  # E008 is the guard of Python's engine
def test_lint_nested_quantifiers_are_configuration_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "cors.toml"
    config.write_text('allow_origin_regex = "https://([a-z]+)*\\\\.example\\\\.com"\n')
    status, _, err = run(capsys, "lint", config)
    assert status == 2
    assert "corsengine.E008: allow_origin_regex:" in err
