"""The corsengine console script: every subcommand and every exit status, in-process."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corsengine import __version__
from corsengine._cli import build_parser

from .cli import run, run_json

POLICY = """\
allow_origins = ["https://app.example.com", "https://*.partner.example"]
allow_methods = ["GET", "POST", "PUT"]
allow_headers = ["X-Token"]
allow_credentials = true
max_age = 600
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cors.toml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text('allow_origins = [\n  "https://app.example.com/path",\n]\nmax_age = "600"\n')
    return path


# --- check ---------------------------------------------------------------------------------


def test_check_allowed_actual_request(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, out, err = run(capsys, "check", config, "--origin", "https://app.example.com")
    assert status == 0
    assert err == ""
    assert out.splitlines() == [
        "allowed: actual 'GET' from 'https://app.example.com'",
        "reason: origin 'https://app.example.com' matches an exact entry",
        "headers:",
        "  Access-Control-Allow-Origin: https://app.example.com",
        "  Access-Control-Allow-Credentials: true",
        "  Vary: Origin",
    ]


def test_check_refused_exits_1(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, out, _ = run(capsys, "check", config, "--origin", "https://evil.example")
    assert status == 1
    assert out.splitlines()[:2] == [
        "refused: actual 'GET' from 'https://evil.example'",
        "reason: origin 'https://evil.example' matches no rule",
    ]


def test_check_quotes_hostile_origins(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, out, _ = run(capsys, "check", config, "--origin", "https://x\x1b[31m.example")
    assert status == 1
    assert "\x1b" not in out


def test_check_preflight_is_implied_by_a_non_simple_method(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    status, document = run_json(
        capsys, "check", config, "--origin", "https://a.partner.example", "--method", "PUT"
    )
    assert status == 0
    assert document["kind"] == "preflight"
    assert document["status"] == 200
    assert document["rule"] == "https://*.partner.example"
    assert document["headers"]["Access-Control-Allow-Methods"] == "GET, POST, PUT"
    assert document["request"] == {
        "origin": "https://a.partner.example",
        "method": "PUT",
        "headers": [],
        "preflight": True,
        "private_network": False,
    }


def test_check_preflight_is_implied_by_headers(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, document = run_json(
        capsys, "check", config, "--origin", "https://app.example.com", "--header", "X-Token", "Authorization"
    )
    assert status == 1
    assert document["kind"] == "preflight"
    assert document["failures"] == ["headers"]
    assert document["request"]["headers"] == ["X-Token", "Authorization"]
    assert "'Authorization' is not in allow_headers" in document["reason"]


def test_check_repeated_header_flags(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    argv = [
        "check",
        config,
        "--origin",
        "https://app.example.com",
        "--header",
        "X-Token",
        "--header",
        "content-type",
    ]
    status, document = run_json(capsys, *argv)
    assert status == 0
    assert (
        document["headers"]["Access-Control-Allow-Headers"]
        == "Accept, Accept-Language, Content-Language, Content-Type, X-Token"
    )


def test_check_no_preflight_overrides(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    argv = ["check", config, "--origin", "https://app.example.com", "--method", "DELETE", "--no-preflight"]
    status, document = run_json(capsys, *argv)
    assert (status, document["kind"]) == (0, "actual")


def test_check_forced_preflight_human_output(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, out, _ = run(capsys, "check", config, "--origin", "https://app.example.com", "--preflight")
    assert status == 0
    assert out.splitlines()[:3] == [
        "allowed: preflight 'GET' from 'https://app.example.com'",
        "reason: preflight allowed: origin 'https://app.example.com' matches an exact entry",
        "status: 200",
    ]


def test_check_private_network(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, document = run_json(
        capsys, "check", config, "--origin", "https://app.example.com", "--private-network"
    )
    assert status == 1
    assert document["kind"] == "preflight"
    assert document["failures"] == ["private-network"]
    assert document["body"] == "Disallowed CORS private-network"


def test_check_bad_configuration_exits_2(capsys: pytest.CaptureFixture[str], bad_config: Path) -> None:
    status, out, err = run(capsys, "check", bad_config, "--origin", "https://app.example.com")
    assert status == 2
    assert out == ""
    assert err.splitlines() == [
        f"error: {bad_config}:2: corsengine.E001: allow_origins[0]: origin 'https://app.example.com/path' has a path "
        "(hint: an Origin header never carries a path, query or fragment: keep only scheme://host[:port])",
        f"error: {bad_config}:4: corsengine.E022: max_age: Input should be a valid integer (got str) "
        "(hint: expected whole seconds, e.g. 600)",
    ]


def test_check_bad_configuration_json(capsys: pytest.CaptureFixture[str], bad_config: Path) -> None:
    status, document = run_json(capsys, "check", bad_config, "--origin", "https://app.example.com")
    assert status == 2
    assert document["error"] == "configuration"
    assert [(p["code"], p["field"], p["line"]) for p in document["problems"]] == [
        ("corsengine.E001", "allow_origins[0]", 2),
        ("corsengine.E022", "max_age", 4),
    ]


def test_check_bad_json_configuration_names_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "cors.json"
    path.write_text('{\n  "allow_origins": ["https://a.example.com"],\n  "allow_credential": true\n}\n')
    status, _, err = run(capsys, "check", path, "--origin", "https://a.example.com")
    assert status == 2
    assert err.startswith(
        f"error: {path}:3: corsengine.E022: allow_credential: unknown key 'allow_credential'"
    )
    assert "did you mean 'allow_credentials'?" in err


def test_normalization_notes_go_to_stderr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cors.toml"
    path.write_text('allow_origins = ["https://APP.example.com:443"]\n')
    status, _, err = run(capsys, "check", path, "--origin", "https://app.example.com")
    assert status == 0
    assert (
        err
        == f"note: {path}: origin 'https://APP.example.com:443' was normalized to 'https://app.example.com'\n"
    )


# --- explain -------------------------------------------------------------------------------


def test_explain(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cors.toml"
    path.write_text(
        'allow_origins = ["https://b.example.com", "https://a.example.com", "http://localhost:*", '
        '"https://*.example.org"]\n'
        'allow_origin_regex = "https://[a-z]+\\\\.example\\\\.net"\n'
        'allow_headers = ["*"]\n'
    )
    status, out, _ = run(capsys, "explain", path)
    assert status == 0
    assert out.splitlines() == [
        f"policy from {path}",
        "every origin ('*'): no",
        "origins:",
        "  https://a.example.com",
        "  https://b.example.com",
        "patterns:",
        "  http://localhost:*",
        "  https://*.example.org",
        "regexes (full match):",
        r"  https://[a-z]+\.example\.net",
        "methods: GET",
        "headers: Accept, Accept-Language, Content-Language, Content-Type (and any other header except Authorization)",
        "expose headers: (none)",
        "credentials: no",
        "max-age: 600 s",
        "preflight status: 200",
        "private network: no",
    ]


def test_explain_empty_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cors.json"
    path.write_text('{"allow_origins": ["*"], "allow_methods": [], "expose_headers": ["X-Total"]}')
    status, out, _ = run(capsys, "explain", path)
    assert status == 0
    assert "every origin ('*'): yes\norigins: (none)\npatterns: (none)\nregexes (full match): (none)\n" in out
    assert "methods: (none)\n" in out
    assert "expose headers: X-Total\n" in out


def test_explain_json(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    status, document = run_json(capsys, "explain", config)
    assert status == 0
    assert document == {
        "config": str(config),
        "allow_all": False,
        "origins": ["https://app.example.com"],
        "patterns": ["https://*.partner.example"],
        "regexes": [],
        "methods": ["GET", "POST", "PUT"],
        "headers": ["Accept", "Accept-Language", "Content-Language", "Content-Type", "X-Token"],
        "any_header": False,
        "expose_headers": [],
        "credentials": True,
        "max_age": 600,
        "preflight_status": 200,
        "private_network": False,
    }


def test_explain_bad_configuration(capsys: pytest.CaptureFixture[str], bad_config: Path) -> None:
    status, out, err = run(capsys, "explain", bad_config)
    assert (status, out) == (2, "")
    assert err.count("error: ") == 2


# --- lint: the command's output and exit statuses (what it reports: tests/test_lint.py) ---------


def test_lint_human_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cors.toml"
    path.write_text('allow_origins = ["https://app.example.com"]\nmax_age = 86400\n')
    status, out, _ = run(capsys, "lint", path)
    assert status == 1
    assert out.splitlines() == [
        f"{path}:2: corsengine.W106: max_age: max_age=86400 is over 7200 seconds (hint: Chromium caps "
        "preflight caching at 7200 s; a longer max_age only delays revocation in other browsers)",
        f"{path}: 1 warning",
    ]


def test_lint_clean_human_output(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    config.write_text('allow_origins = ["https://app.example.com"]\n')
    assert run(capsys, "lint", config) == (0, f"{config}: no warnings\n", "")


def test_lint_plural(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    config.write_text('allow_origins = ["null", "http://app.example.com"]\n')
    status, out, _ = run(capsys, "lint", config)
    assert status == 1
    assert out.endswith(f"{config}: 2 warnings\n")


def test_lint_bad_configuration(capsys: pytest.CaptureFixture[str], bad_config: Path) -> None:
    status, document = run_json(capsys, "lint", bad_config)
    assert status == 2
    assert [p["code"] for p in document["problems"]] == ["corsengine.E001", "corsengine.E022"]


# --- the parser and the entry points ---------------------------------------------------------


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], config: Path) -> None:
    assert run(capsys, "check", config)[0] == 2  # --origin is required
    assert run(capsys)[0] == 2
    assert "invalid choice" in run(capsys, "frobnicate")[2]


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert "check" in out and "explain" in out and "lint" in out
    assert run(capsys, "--version") == (0, f"corsengine {__version__}\n", "")


def test_every_command_group_is_wired() -> None:
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    assert sorted(subparsers.choices) == ["check", "diff", "explain", "lint", "redis"]  # type: ignore[attr-defined]


def test_python_dash_m(
    capsys: pytest.CaptureFixture[str], config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["corsengine", "check", str(config), "--origin", "https://evil.example"])
    with pytest.raises(SystemExit) as exited:
        importlib.import_module("corsengine.__main__")
    assert exited.value.code == 1
    assert capsys.readouterr().out.startswith("refused: ")


def test_installed_console_script(config: Path) -> None:
    script = shutil.which("corsengine") or str(Path(sys.executable).parent / "corsengine")
    result = subprocess.run(
        [script, "check", str(config), "--origin", "https://app.example.com", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["allowed"] is True
