"""Report-only rollouts: a candidate policy judged on live traffic before it is enforced."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import anyio
import pytest

from corsengine import ConfigurationError, CORSMiddleware, Policy
from corsengine._cli import main
from corsengine.testing import FakeClock

from .asgi import call, plain_app

APP, PARTNER, NEWCOMER = "https://app.example.com", "https://partner.example", "https://new.example"


def request(app: Any, origin: str, *, preflight: bool = False) -> tuple[int, dict[bytes, bytes]]:
    headers = [(b"origin", origin.encode())]
    if preflight:
        headers.append((b"access-control-request-method", b"PUT"))
    status, sent, _ = anyio.run(call, app, "OPTIONS" if preflight else "GET", headers)
    return status, dict(sent)


def test_a_candidate_that_would_revoke_a_partner_is_caught_before_it_is_enforced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    candidate = Policy([APP, NEWCOMER], allow_methods=["GET", "PUT"])  # forgot the partner
    enforced = Policy([APP, PARTNER], allow_methods=["GET", "PUT"], shadow=candidate)
    app = CORSMiddleware(plain_app(), policy=enforced)
    with caplog.at_level(logging.WARNING, logger="corsengine"):
        for _ in range(5):
            status, headers = request(app, PARTNER)
            assert headers[b"access-control-allow-origin"] == PARTNER.encode()  # still enforced
        status, headers = request(app, PARTNER, preflight=True)
        assert status == 200
        request(app, NEWCOMER)
        request(app, APP)  # both agree: nothing recorded
    report = enforced.shadow_report
    assert report.counts == {"would refuse": 6, "would allow": 1}
    first = report.recent[0]
    assert (first.origin, first.flip, first.preflight) == (PARTNER, "would refuse", False)
    assert "matches an exact entry" in first.enforced_reason
    assert "matches no rule" in first.candidate_reason
    lines = [record.getMessage() for record in caplog.records]
    # One line per origin, kind and request type per minute: 3 lines for 7 disagreements.
    assert len(lines) == 3
    assert "the shadow policy would refuse a request from 'https://partner.example'" in lines[0]


def test_disagreements_are_logged_at_a_bounded_rate(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    enforced = Policy([f"https://{index}.example" for index in range(100)], shadow=Policy([]), clock=clock)
    app = CORSMiddleware(plain_app(), policy=enforced)
    with caplog.at_level(logging.WARNING, logger="corsengine"):
        for index in range(100):
            request(app, f"https://{index}.example")
        assert len(caplog.records) == 20  # a flood of distinct origins cannot fill the disk
        clock.advance(60)
        request(app, "https://0.example")
    assert enforced.shadow_report.counts["would refuse"] == 101
    assert len(caplog.records) == 21


def test_the_shadow_must_be_a_policy() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Policy([APP], shadow=[APP])  # type: ignore[arg-type]
    assert caught.value.codes == ("corsengine.E028",)


def write(tmp_path: Path, name: str, origins: list[str]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"allow_origins": origins}))
    return str(path)


def test_diff_prints_the_origins_that_would_flip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path, "old.json", [APP, PARTNER])
    new = write(tmp_path, "new.json", [APP, NEWCOMER, "https://*.cdn.example"])
    log = tmp_path / "access.log"
    log.write_text(
        f'127.0.0.1 - - [30/Nov/2026] "GET /items HTTP/1.1" 200 12 "{PARTNER}/dashboard" "Mozilla"\n'
        f'127.0.0.1 - - [30/Nov/2026] "GET /items HTTP/1.1" 200 12 "-" "Mozilla" origin={APP}\n'
        "127.0.0.1 - - origin=https://eu.cdn.example sent this\n"
    )
    assert main(["diff", old, new, "--origins", str(log)]) == 1
    out = capsys.readouterr().out
    assert "would refuse: 'https://partner.example'" in out
    assert "would allow: 'https://eu.cdn.example'" in out
    assert "2 of 3 origins would flip" in out
    assert main(["diff", old, old]) == 0
    assert "0 of 2 origins would flip" in capsys.readouterr().out


def test_diff_json_and_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write(tmp_path, "old.json", [APP, PARTNER])
    new = write(tmp_path, "new.json", [APP])
    assert main(["diff", old, new, "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["checked"] == 2
    assert [flip["origin"] for flip in document["flips"]] == [PARTNER]
    bad = write(tmp_path, "bad.json", ["https://app.example.com/path"])
    assert main(["diff", old, bad]) == 2
