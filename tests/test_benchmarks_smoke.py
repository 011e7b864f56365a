"""The benchmark harness runs end to end with a handful of iterations, so it cannot rot.

Structure only: timings on a shared CI machine mean nothing, and benchmarks never gate a build.
"""

from __future__ import annotations

import ast
import os
import shutil
import time
from pathlib import Path

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import apps, asgi, http, instructions, propagation, report
from benchmarks import compile as compiling
from corsengine import providers


@pytest.fixture(scope="module")
def results() -> asgi.AsgiResults:
    return asgi.run(asgi.QUICK)


def test_every_scenario_is_measured_for_every_target(results: asgi.AsgiResults) -> None:
    assert [cell.scenario for cell in results.cells] == [s.name for s in asgi.SCENARIOS]
    expected = {asgi.BARE}
    expected |= {(name, size) for name in asgi.STATIC for size in asgi.QUICK.sizes}
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
    # Ratio to Starlette, two ratios to the floor, allowlist size, each dynamic provider, memory.
    assert len(verdicts) == 5 + len(results.dynamic)
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


def _http_results(server: str) -> http.HttpResults:
    return http.HttpResults(
        http.Settings(),
        server,
        {
            "bare": [100.0, 200.0],
            "headers only": [97.0, 194.0],
            "floor": [90.0, 190.0],
            "starlette": [70.0, 140.0],
            "corsengine": [88.0, 180.0],
        },
        {"bare": [30.0, 31.0], "floor": [31.0, 32.0], "corsengine": [32.0, 34.0]},
    )


def test_http_verdict_compares_with_the_floor_in_the_same_rounds() -> None:
    results = _http_results("uvicorn (httptools, uvloop)")
    (verdict,) = report.http_verdicts(results)
    assert not verdict.met  # median of 88/90 and 180/190: 0.962
    assert verdict.target == "uvicorn (httptools, uvloop): req/s with corsengine ≥ 0.97 x the floor's"
    assert verdict.detail.startswith("0.96 x; Starlette's middleware 0.76 x; against the bare app: ")
    assert verdict.detail.endswith("server CPU per request 33.0 µs against 31.5 µs (0.95 x)")
    table = report.http_table(results)
    assert "| corsengine | 134 | 0.89 | 0.96 | 33.0 µs |" in table
    assert "| starlette | 105 | 0.70 | 0.76 | n/a |" in table


def test_the_throughput_target_is_judged_on_the_httptools_stack_only() -> None:
    assert report.http_verdicts(_http_results("uvicorn (h11, asyncio)")) == []


def test_requests_carry_what_chromium_sends() -> None:
    origin = "https://app99.example.com"
    for headers in (
        apps.browser_headers(origin),
        apps.browser_headers(None),
        apps.browser_headers(origin, preflight=True),
    ):
        assert 8 <= len(headers) <= 15
        names = [name.lower() for name, _ in headers]
        assert names[:2] == ["host", "connection"]
        assert len(set(names)) == len(names)
    assert ("Origin", origin) in apps.browser_headers(origin)
    assert "origin" not in {name.lower() for name, _ in apps.browser_headers(None)}
    # The Lua literal's escapes are Python's too: decoded, it is the request wrk sends.
    literal = http.wrk_script().split("local req = ", 1)[1].split("\nrequest = ", 1)[0]
    request = ast.literal_eval(literal)
    lines = [f"{name}: {value}" for name, value in apps.browser_headers(origin)]
    assert request == "\r\n".join(["GET /items HTTP/1.1", *lines, "", ""])
    assert 'sec-ch-ua-platform: "Linux"' in lines


@pytest.mark.parametrize("scenario", asgi.SCENARIOS, ids=lambda scenario: scenario.name)
def test_the_floor_answers_what_corsengine_answers(scenario: asgi.Scenario) -> None:
    # The floor is only a fair floor if it does the same observable work: same status, same
    # CORS headers (its Vary as a second line when the app sets one, which HTTP allows).
    runner = asgi.Runner(asgi.QUICK)
    origins = apps.make_origins(100)
    app = apps.vary_app if scenario.app_vary else apps.bare_app
    scope = asgi.build_scope(scenario, origins)
    try:
        floor = _answer(runner, apps.floor_cors(app, origins), scope)
        ours = _answer(runner, apps.corsengine_cors(app, origins), scope)
    finally:
        runner.close()
    if scenario.app_vary:
        assert floor[1].pop("vary") == ["Accept-Encoding", "Origin"]
        assert ours[1].pop("vary") == ["Accept-Encoding, Origin"]
    assert floor == ours


def _answer(
    runner: asgi.Runner, app: apps.ASGIApp, scope: apps.Scope
) -> tuple[int, dict[str, list[str]], bytes]:
    sent: list[apps.Message] = []

    async def send(message: apps.Message) -> None:
        sent.append(message)

    runner.run(app(scope, asgi._receive, send))
    headers: dict[str, list[str]] = {}
    for name, value in sent[0]["headers"]:
        headers.setdefault(name.decode().lower(), []).append(value.decode())
    return sent[0]["status"], headers, sent[1]["body"]


def test_instruction_counts_are_reported_against_the_floor(results: asgi.AsgiResults) -> None:
    counted = instructions.InstructionResults(
        instructions.Settings(),
        "uvicorn 0.54.0 (httptools, uvloop)",
        {
            "bare": 150_000.0,
            "floor": 180_000.0,
            "corsengine": 183_000.0,
            "bare, app sets Vary": 151_000.0,
            "floor, app sets Vary": 181_000.0,
            "corsengine, app sets Vary": 186_500.0,
        },
    )
    first, second = report.instruction_verdicts(counted)
    assert first.met and first.detail.startswith("+3,000: 183,000 against 180,000")
    assert first.target.endswith("corsengine ≤ the floor + 3,500 instructions per request")
    # Its overhead over the bare app with Vary (+35,500) less its overhead without (+33,000).
    assert not second.met and second.detail == (
        "+2,500; the whole request +3,500, of which the server's work on the app's Vary line +1,000; "
        "the floor +1,000"
    )
    table = instructions.table(counted)
    assert "| corsengine | 183,000 | +33,000 | +3,000 |" in table
    assert "| corsengine, app sets Vary | 186,500 | +35,500 | +5,500 |" in table
    assert "| corsengine | +3,500 |" in table
    text = bench_main.render(results, [], None, counted)
    assert "### Instructions per request behind uvicorn 0.54.0 (httptools, uvloop)" in text
    assert first.line() in text and second.line() in text


@pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="valgrind is not installed")
def test_the_instruction_count_runs_under_valgrind() -> None:
    settings = instructions.Settings(**{**vars(instructions.QUICK), "apps": ("floor",)})
    results = instructions.run(settings)
    assert results.skipped is None
    # The floor serves a 15-header request in well over 50,000 instructions and well under a million.
    assert 50_000 < results.per_request["floor"] < 1_000_000


def test_the_command_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "plot.png"
    assert bench_main.main(["--quick", "--no-http", "--no-count", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "### Targets" in out
    assert "### Event-loop stall while a large callable allowlist refreshes" in out
    assert "stalls the event loop at most 10 ms" in out
    assert "### Compiling allowlists" in out
    assert "compiling a canonical exact origin costs ≤ 0.5 µs (100 / 1k: " in out
    assert "### Propagation of a change to every worker" in out
    if propagation.REDIS_SERVER is not None:
        assert "Redis propagation p99 < 250 ms on loopback" in out
    assert plot.exists()


def test_propagation_figures_and_verdict() -> None:
    results = [
        propagation.PropagationResult("Redis (pub/sub)", 2, 2, [0.001, 0.002, 0.003, 0.3]),
        propagation.PropagationResult("file", 2, 2, [0.05, 0.06, 0.07, 0.08]),
    ]
    assert results[0].p50_ms == pytest.approx(2.5)
    assert results[0].p99_ms == pytest.approx(300.0) and results[0].max_ms == pytest.approx(300.0)
    assert "| Redis (pub/sub) | 2 x 2 | 2.5 ms | 300.0 ms | 300.0 ms |" in propagation.table(results)
    assert propagation.verdict_line(results).startswith("- **MISSED**: Redis propagation p99 < 250 ms")
    results[0] = propagation.PropagationResult("Redis (pub/sub)", 2, 2, [0.001, 0.002])
    assert propagation.verdict_line(results).startswith("- **MET**")


def test_cpu_time_of_a_process_is_read_precisely() -> None:
    before = http._cpu_seconds(os.getpid())  # Linux: the suite runs where /proc exists
    assert before is not None
    deadline = time.process_time() + 0.02
    while time.process_time() < deadline:  # 20 ms of work: two ticks, millions of nanoseconds
        pass
    after = http._cpu_seconds(os.getpid())
    assert after is not None
    assert 0.015 < after - before < 1.0


def test_the_compile_benchmark_runs_in_quick_mode() -> None:
    results = compiling.run(compiling.QUICK)
    for kind in compiling.KINDS:
        for size in compiling.QUICK.sizes:
            samples = results.samples[(kind, size)]
            assert len(samples) == compiling.QUICK.runs * compiling.QUICK.processes
            assert all(sample > 0 for sample in samples)
    table = compiling.table(results)
    assert "| canonical, CPU per origin |" in table and "| unchanged refresh, CPU per origin |" in table
    line = compiling.verdict_line(results)
    assert line.startswith(("- **MET**: compiling", "- **MISSED**: compiling"))
    assert "(100 / 1k: " in line


def test_the_compile_benchmark_lists_are_what_they_claim() -> None:
    from corsengine import _patterns

    assert all(_patterns._canonical_exact(origin) for origin in compiling.canonical(600))
    assert not any(_patterns._canonical_exact(origin) for origin in compiling.non_canonical(600))


@pytest.mark.skipif(shutil.which("callgrind_control") is None, reason="valgrind is not installed")
def test_the_compile_benchmark_counts_instructions_under_valgrind() -> None:
    per_origin = compiling.count_instructions((200,))
    assert 100 < per_origin[200] < 100_000
