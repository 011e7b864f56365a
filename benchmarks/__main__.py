"""``python -m benchmarks``: both benchmarks, a Markdown report and docs/benchmarks.png.

Benchmarks report; they do not gate anything, so the exit code is 0 whatever the verdicts.
``--update-docs`` replaces the results block of docs/benchmarks.md with this run's output.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from benchmarks import asgi, http, instructions, propagation, report, stall
from benchmarks import compile as compiling

ROOT = Path(__file__).resolve().parent.parent
PLOT = ROOT / "docs" / "benchmarks.png"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def _machine() -> str:
    return f"Python {platform.python_version()} on {platform.system()} {platform.machine()}"


def render(
    asgi_results: asgi.AsgiResults,
    http_results: list[http.HttpResults],
    stall_results: list[stall.StallResult] | None = None,
    instruction_results: instructions.InstructionResults | None = None,
    propagation_results: list[propagation.PropagationResult] | str | None = None,
    compile_results: compiling.CompileResults | None = None,
) -> str:
    """The report; ``propagation_results`` is a reason when the run was skipped."""
    verdicts = report.asgi_verdicts(asgi_results)
    parts = [
        f"Measured with `make bench` ({_machine()}).",
        "",
        "### Overhead per request, in-process (ns; overhead = with middleware - bare app)",
        "",
        report.static_table(asgi_results),
        "",
        "### Dynamic providers on a warm cache (overhead in ns, ratio to the static list)",
        "",
        report.dynamic_table(asgi_results),
        "",
        "### Flood of distinct origins",
        "",
        report.flood_text(asgi_results.flood),
        "",
    ]
    for results in http_results:
        verdicts += report.http_verdicts(results)
        settings = results.settings
        parts += [
            f"### Throughput behind {results.server}, loopback "
            f"(every app loaded at once on one core, one wrk each with {settings.connections} connections, "
            f"{settings.duration_s} s x {settings.rounds} rounds x {settings.sessions} sets of servers)",
            "",
            report.http_table(results),
            "",
        ]
    if instruction_results is not None:
        verdicts += report.instruction_verdicts(instruction_results)
        counted = instruction_results.settings
        parts += [
            f"### Instructions per request behind {instruction_results.server} (callgrind, "
            f"{counted.requests:,} requests counted after {counted.warmup:,} warm-up requests)",
            "",
            instructions.table(instruction_results),
            "",
        ]
    if stall_results:
        parts += [
            "### Event-loop stall while a large callable allowlist refreshes",
            "",
            stall.table(stall_results),
            "",
        ]
    if compile_results is not None:
        parts += [
            "### Compiling allowlists (per origin; an unchanged refresh is a comparison, not a compile)",
            "",
            compiling.table(compile_results),
            "",
        ]
    if isinstance(propagation_results, str):
        parts += ["### Propagation of a change to every worker", "", propagation_results, ""]
    elif propagation_results:
        parts += [
            "### Propagation of a change to every worker "
            "(from the change call's return to the change in force in each worker)",
            "",
            propagation.table(propagation_results),
            "",
        ]
    parts += ["### Targets", "", *(verdict.line() for verdict in verdicts)]
    if stall_results:
        parts.append(stall.verdict_line(stall_results))
    if compile_results is not None:
        parts.append(compiling.verdict_line(compile_results))
    if propagation_results and not isinstance(propagation_results, str):
        parts.append(propagation.verdict_line(propagation_results))
    return "\n".join(parts) + "\n"


def update_docs(text: str) -> None:
    doc = DOC.read_text()
    head, _, rest = doc.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{DOC} has no {BEGIN} marker")
    DOC.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few iterations: checks the harness runs")
    parser.add_argument("--no-http", action="store_true", help="skip the uvicorn + wrk benchmark")
    parser.add_argument("--no-count", action="store_true", help="skip the instruction count (valgrind)")
    parser.add_argument(
        "--no-propagation", action="store_true", help="skip the fleet propagation benchmark (Redis, file)"
    )
    parser.add_argument("--update-docs", action="store_true", help=f"write the results into {DOC.name}")
    parser.add_argument("--plot", type=Path, default=PLOT, help="where to save the plot (PNG)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    print("in-process ASGI benchmark...", file=sys.stderr)
    asgi_results = asgi.run(asgi.QUICK if args.quick else asgi.Settings())
    print("event-loop stall benchmark...", file=sys.stderr)
    stall_results = stall.run(stall.QUICK_SIZES if args.quick else stall.SIZES)
    print("allowlist compile benchmark...", file=sys.stderr)
    compile_results = compiling.run(
        compiling.QUICK if args.quick else compiling.Settings(count=not args.no_count)
    )
    propagation_results: list[propagation.PropagationResult] | str | None = None
    if not args.no_propagation:
        print("propagation benchmark (redis-server, uvicorn fleets)...", file=sys.stderr)
        try:
            propagation_results = propagation.run(quick=args.quick)
        except propagation.FleetError as error:
            propagation_results = f"Skipped: {error}."
    http_results: list[http.HttpResults] = []
    if not args.no_http:
        print("uvicorn + wrk benchmark...", file=sys.stderr)
        http_results = http.run(
            http.Settings(rounds=1, sessions=1, duration_s=1) if args.quick else http.Settings()
        )
    instruction_results = None
    if not args.no_count:
        print("instruction count under valgrind...", file=sys.stderr)
        instruction_results = instructions.run(instructions.QUICK if args.quick else instructions.Settings())

    text = render(
        asgi_results, http_results, stall_results, instruction_results, propagation_results, compile_results
    )
    print(text)
    report.plot(asgi_results, http_results, args.plot)
    print(f"plot written to {args.plot}", file=sys.stderr)
    if args.update_docs:
        update_docs(text)
        print(f"results written to {DOC.relative_to(ROOT)}", file=sys.stderr)
    print(f"done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
