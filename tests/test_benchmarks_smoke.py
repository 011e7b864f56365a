"""The benchmark harness runs end to end with a handful of iterations, so it cannot rot.

Structure only: timings on a shared CI machine mean nothing, and benchmarks never gate a build.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import asgi, http, report
from corsengine import providers


@pytest.fixture(scope="module")
def results() -> asgi.AsgiResults:
    return asgi.run(asgi.QUICK)


def test_every_scenario_is_measured_for_every_target(results: asgi.AsgiResults) -> None:
    assert [cell.scenario for cell in results.cells] == [s.name for s in asgi.SCENARIOS]
    expected = {asgi.BARE}
    expected |= {(name, size) for name in ("starlette", "corsengine") for size in asgi.QUICK.sizes}
    expected |= {(name, asgi.DYNAMIC_SIZE) for name in results.dynamic}
    for cell in results.cells:
        assert set(cell.samples) == expected


def test_every_dynamic_provider_kind_is_measured(results: asgi.AsgiResults) -> None:
    kinds = {"callable", "predicate"}
    if hasattr(providers, "RemoteJSONProvider"):
        kinds.add("remote")
    assert set(results.dynamic) == kinds


def test_every_sample_is_a_positive_number_per_round(results: asgi.AsgiResults) -> None:
    for cell in results.cells:
        for samples in cell.samples.values():
            assert len(samples) == asgi.QUICK.rounds * asgi.QUICK.processes  # pooled
            assert all(sample > 0 for sample in samples)


def test_flood_keeps_the_decision_cache_within_its_bound(results: asgi.AsgiResults) -> None:
    flood = results.flood
    assert flood is not None
    assert flood.origins == asgi.QUICK.flood_origins
    assert 0 < flood.cache_len <= flood.cache_size == asgi.QUICK.flood_cache_size
    assert flood.peak_bytes > 0


def test_report_has_a_verdict_for_every_in_process_target(results: asgi.AsgiResults) -> None:
    verdicts = report.asgi_verdicts(results)
    # Ratio to Starlette, allowlist size, each dynamic provider, memory bound.
    assert len(verdicts) == 3 + len(results.dynamic)
    text = bench_main.render(results, [])
    assert text.count("\n| ") > len(asgi.SCENARIOS) * len(asgi.QUICK.sizes)
    assert all(verdict.line() in text for verdict in verdicts)


def test_plot_is_written(results: asgi.AsgiResults, tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.png"
    report.plot(results, [], path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_wrk_output_is_parsed() -> None:
    output = (
        "Running 4s test @ http://127.0.0.1:1/\n  2 threads and 50 connections\nRequests/sec:  12345.67\n"
    )
    assert http.parse_wrk(output) == pytest.approx(12345.67)
    with pytest.raises(ValueError):
        http.parse_wrk("unable to connect")


def test_wrk_request_count_is_parsed() -> None:
    output = "Running 2s test @ http://127.0.0.1:1/items\n  25 connections\n  18311 requests in 2.00s, 2.6MB read\n"
    assert http.parse_requests(output) == 18311
    with pytest.raises(ValueError):
        http.parse_requests("unable to connect")


def test_http_verdict_compares_with_the_bare_app_in_the_same_rounds() -> None:
    results = http.HttpResults(
        http.Settings(),
        "uvicorn (httptools, uvloop)",
        {
            "bare": [100.0, 200.0],
            "headers only": [97.0, 194.0],
            "minimal middleware": [96.0, 192.0],
            "starlette": [70.0, 140.0],
            "corsengine": [95.0, 180.0],
        },
        {"bare": [30.0, 31.0], "corsengine": [32.0, 34.0]},
    )
    (verdict,) = report.http_verdicts(results)
    assert verdict.met  # median of 0.95 and 0.90 per round
    assert verdict.target.startswith("uvicorn (httptools, uvloop): ")
    assert "0.93 x; Starlette's middleware 0.70 x" in verdict.detail
    assert "no policy 0.96 x; the bare app writing them itself 0.97 x" in verdict.detail
    table = report.http_table(results)
    assert "| corsengine | 138 | 0.93 | 33.0 µs |" in table
    assert "| starlette | 105 | 0.70 | n/a |" in table


def test_the_command_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "plot.png"
    assert bench_main.main(["--quick", "--no-http", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "### Targets" in out
    assert "### Event-loop stall while a large callable allowlist refreshes" in out
    assert "stalls the event loop at most 10 ms" in out
    assert plot.exists()


def test_cpu_time_of_a_process_is_read_precisely() -> None:
    before = http._cpu_seconds(os.getpid())  # Linux: the suite runs where /proc exists
    assert before is not None
    deadline = time.process_time() + 0.02
    while time.process_time() < deadline:  # 20 ms of work: two ticks, millions of nanoseconds
        pass
    after = http._cpu_seconds(os.getpid())
    assert after is not None
    assert 0.015 < after - before < 1.0
