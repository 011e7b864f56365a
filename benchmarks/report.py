"""Turn benchmark results into Markdown tables, target verdicts and a plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.asgi import DYNAMIC_SIZE, AsgiResults, FloodResult
from benchmarks.http import FLOOR, HttpResults
from benchmarks.instructions import WITHOUT_VARY, InstructionResults

# The performance targets of docs/DESIGN.md, in one place.
MAX_RATIO_TO_STARLETTE = 0.35
TARGET_SIZE = 100
MAX_SIZE_GROWTH = 1.1
MAX_DYNAMIC_RATIO = 1.1
# Against the floor, a minimal class middleware (benchmarks.apps.MinimalCORSMiddleware): in
# process, corsengine's overhead over the bare app at most these multiples of the floor's...
MAX_RATIO_TO_FLOOR = {"no Origin": 1.25, "allowed": 1.25, "refused": 1.25, "preflight allowed": 1.5}
# ...and behind uvicorn (httptools + uvloop), at least this share of the floor's req/s in the
# same rounds, and at most this many instructions per request above it.
FLOOR_STACK = "httptools, uvloop"
MIN_THROUGHPUT_TO_FLOOR = 0.97
MAX_INSTRUCTIONS_OVER_FLOOR = 3_500
# An app that sets its own Vary: at most this many instructions more than one that does not.
MAX_VARY_INSTRUCTIONS = 2_000


@dataclass(frozen=True)
class Verdict:
    target: str
    met: bool
    detail: str

    def line(self) -> str:
        return f"- **{'MET' if self.met else 'MISSED'}**: {self.target} ({self.detail})"


def _ns(value: float) -> str:
    return f"{value:,.0f}"


def static_table(results: AsgiResults) -> str:
    lines = [
        "| origins | scenario | bare app | Starlette overhead | floor overhead | corsengine overhead "
        "| corsengine / Starlette | corsengine / floor |",
        "|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for size in results.settings.sizes:
        for cell in results.cells:
            starlette, ours = cell.overhead(("starlette", size)), cell.overhead(("corsengine", size))
            floor = cell.overhead(("floor", size))
            lines.append(
                f"| {size:,} | {cell.scenario} | {_ns(cell.median(('bare', 0)))} | {_ns(starlette)} "
                f"| {_ns(floor)} | {_ns(ours)} | {ours / starlette:.2f} | {ours / floor:.2f} |"
            )
    return "\n".join(lines)


def dynamic_table(results: AsgiResults) -> str:
    names = results.dynamic
    lines = [
        "| scenario | static list | " + " | ".join(names) + " |",
        "|---|--:|" + "--:|" * len(names),
    ]
    for cell in results.cells:
        static = cell.overhead(("corsengine", DYNAMIC_SIZE))
        row = []
        for name in names:
            overhead = cell.overhead((name, DYNAMIC_SIZE))
            row.append(f"{_ns(overhead)} ({overhead / static:.2f}x)")
        lines.append(f"| {cell.scenario} | {_ns(static)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def http_table(results: HttpResults) -> str:
    if results.skipped:
        return f"HTTP benchmark skipped: {results.skipped}."
    lines = [
        "| app | req/s (median) | x bare app | x floor | server CPU per request | req/s per round |",
        "|---|--:|--:|--:|--:|---|",
    ]
    for name, samples in results.samples.items():
        runs = ", ".join(f"{sample:,.0f}" for sample in samples)
        cpu = results.cpu_per_request(name)
        cpu_text = "n/a" if cpu is None else f"{cpu:.1f} µs"
        lines.append(
            f"| {name} | {results.median(name):,.0f} | {results.ratio(name):.2f} "
            f"| {results.ratio(name, FLOOR):.2f} | {cpu_text} | {runs} |"
        )
    return "\n".join(lines)


def flood_text(flood: FloodResult | None) -> str:
    if flood is None:
        return "Flood check not run."
    return (
        f"{flood.origins:,} distinct random origins against a predicate policy: the predicate's "
        f"decision cache holds {flood.cache_len:,} entries (bound {flood.cache_size:,}), the rule memo "
        f"{flood.memo_len:,} (bound {flood.memo_size:,}); traced memory peaked at "
        f"{flood.peak_bytes / 1e6:.1f} MB, and at {flood.early_peak_bytes / 1e6:.1f} MB after the first "
        f"tenth of the flood ({flood.seconds:.0f} s under tracemalloc)."
    )


def _worst(ratios: dict[str, float]) -> str:
    scenario = max(ratios, key=ratios.__getitem__)
    return f"worst: {scenario}, {ratios[scenario]:.2f} x"


def asgi_verdicts(results: AsgiResults) -> list[Verdict]:
    verdicts = []
    sizes = results.settings.sizes
    if TARGET_SIZE in sizes:
        ratios = {
            c.scenario: c.overhead(("corsengine", TARGET_SIZE)) / c.overhead(("starlette", TARGET_SIZE))
            for c in results.cells
        }
        verdicts.append(
            Verdict(
                f"overhead ≤ {MAX_RATIO_TO_STARLETTE} x Starlette's "
                f"in every scenario at {TARGET_SIZE} origins",
                all(r <= MAX_RATIO_TO_STARLETTE for r in ratios.values()),
                _worst(ratios),
            )
        )
        verdicts += floor_verdicts(results)
    smallest, largest = min(sizes), max(sizes)
    if smallest != largest:
        growth = {
            c.scenario: c.overhead(("corsengine", largest)) / c.overhead(("corsengine", smallest))
            for c in results.cells
        }
        verdicts.append(
            Verdict(
                f"{largest:,} origins within {MAX_SIZE_GROWTH} x the cost of {smallest:,}",
                all(g <= MAX_SIZE_GROWTH for g in growth.values()),
                _worst(growth),
            )
        )
    for name in results.dynamic:
        ratios = {
            c.scenario: c.overhead((name, DYNAMIC_SIZE)) / c.overhead(("corsengine", DYNAMIC_SIZE))
            for c in results.cells
        }
        verdicts.append(
            Verdict(
                f"warm {name} provider within {MAX_DYNAMIC_RATIO} x a static list ({DYNAMIC_SIZE} origins)",
                all(r <= MAX_DYNAMIC_RATIO for r in ratios.values()),
                _worst(ratios),
            )
        )
    if results.flood is not None:
        flood = results.flood
        # Bounded means: the cache never exceeds its size, and once it is full, nine times more
        # distinct origins do not raise the peak (10% slack for allocator noise).
        bounded = (
            flood.cache_len <= flood.cache_size
            and flood.memo_len <= flood.memo_size
            and flood.peak_bytes <= 1.1 * flood.early_peak_bytes
        )
        verdicts.append(
            Verdict(
                "memory bounded under a flood of distinct origins",
                bounded,
                f"cache {flood.cache_len:,}/{flood.cache_size:,}, peak {flood.peak_bytes / 1e6:.1f} MB "
                f"vs {flood.early_peak_bytes / 1e6:.1f} MB after a tenth of the flood",
            )
        )
    return verdicts


def floor_verdicts(results: AsgiResults) -> list[Verdict]:
    """In process, corsengine's overhead against the floor's, paired within each round."""
    cells = {cell.scenario: cell for cell in results.cells}
    verdicts = []
    for limit in sorted(set(MAX_RATIO_TO_FLOOR.values())):
        ratios = {
            name: cells[name].overhead(("corsengine", TARGET_SIZE))
            / cells[name].overhead(("floor", TARGET_SIZE))
            for name, bound in MAX_RATIO_TO_FLOOR.items()
            if bound == limit and name in cells
        }
        verdicts.append(
            Verdict(
                f"in process, overhead ≤ {limit} x the floor's ({', '.join(ratios)}; {TARGET_SIZE} origins)",
                all(r <= limit for r in ratios.values()),
                _worst(ratios),
            )
        )
    return verdicts


def http_verdicts(results: HttpResults) -> list[Verdict]:
    """req/s against the floor's in the same rounds, on the stack the target names."""
    if results.skipped or FLOOR_STACK not in results.server:
        return []
    ratio = results.ratio("corsengine", FLOOR)
    detail = (
        f"{ratio:.2f} x; Starlette's middleware {results.ratio('starlette', FLOOR):.2f} x; against the "
        f"bare app: corsengine {results.ratio('corsengine'):.2f} x, the floor {results.ratio(FLOOR):.2f} x"
    )
    ours, floor = results.cpu_per_request("corsengine"), results.cpu_per_request(FLOOR)
    if ours and floor:
        # The cross-check: when the load generators cannot keep every server busy (a shared
        # machine), req/s ratios are pulled towards 1, CPU time per request is not.
        detail += f"; server CPU per request {ours:.1f} µs against {floor:.1f} µs ({floor / ours:.2f} x)"
    return [
        Verdict(
            f"{results.server}: req/s with corsengine ≥ {MIN_THROUGHPUT_TO_FLOOR} x the floor's",
            ratio >= MIN_THROUGHPUT_TO_FLOOR,
            detail,
        )
    ]


def instruction_verdicts(results: InstructionResults) -> list[Verdict]:
    if results.skipped:
        return []
    verdicts = []
    over_floor = results.over("corsengine", FLOOR)
    if over_floor is not None:
        verdicts.append(
            Verdict(
                f"{results.server}: corsengine ≤ the floor + {MAX_INSTRUCTIONS_OVER_FLOOR:,} instructions "
                "per request",
                over_floor <= MAX_INSTRUCTIONS_OVER_FLOOR,
                f"{over_floor:+,.0f}: {results.per_request['corsengine']:,.0f} against "
                f"{results.per_request[FLOOR]:,.0f}",
            )
        )
    # What the app's Vary line costs corsengine itself: its overhead over the bare app that sets
    # Vary, less its overhead over the bare app that does not. The server's own work on that
    # line (the bare app pays it too) is not the middleware's.
    vary = "corsengine, app sets Vary"
    own = results.over(vary, "bare, app sets Vary")
    plain = results.over("corsengine", "bare")
    raw = results.over(vary, WITHOUT_VARY[vary])
    if own is not None and plain is not None and raw is not None:
        extra = own - plain
        verdicts.append(
            Verdict(
                f"{results.server}: an app that sets Vary costs corsengine ≤ {MAX_VARY_INSTRUCTIONS:,} "
                "instructions more per request (its overhead over the bare app, with and without Vary)",
                extra <= MAX_VARY_INSTRUCTIONS,
                f"{extra:+,.0f}; the whole request {raw:+,.0f}, of which the server's work on the app's "
                f"Vary line {_signed(results.over('bare, app sets Vary', 'bare'))}; the floor "
                f"{_signed(results.over('floor, app sets Vary', FLOOR))}",
            )
        )
    return verdicts


def _signed(value: float | None) -> str:
    return "not counted" if value is None else f"{value:+,.0f}"


def plot(asgi: AsgiResults, http: list[HttpResults], path: Path) -> None:
    import matplotlib

    # No display on a server or in CI.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    scenarios = [cell.scenario for cell in asgi.cells]
    xs = list(range(len(scenarios)))
    sizes = asgi.settings.sizes
    size = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]

    def bars(ax: Any, names: list[tuple[str, str]], at: int) -> None:
        step = 0.8 / len(names)
        for i, (name, label) in enumerate(names):
            values = [cell.overhead((name, at)) / 1000 for cell in asgi.cells]
            ax.bar([x - 0.4 + step * (i + 0.5) for x in xs], values, step, label=label)
        ax.set_xticks(xs, scenarios, rotation=15)
        ax.set_ylabel("overhead over the bare app (µs / request)")
        ax.legend(fontsize="small")

    ax = axes[0][0]
    bars(ax, list(_LABELS.items()), size)
    ax.set_title(f"Per-request overhead, {size:,} origins")

    ax = axes[0][1]
    for (name, label), colour in zip(_LABELS.items(), ("C0", "C1", "C2"), strict=True):
        for scenario, style in (("allowed", "-o"), ("refused", "--s")):
            cell = next(cell for cell in asgi.cells if cell.scenario == scenario)
            values = [cell.overhead((name, at)) / 1000 for at in sizes]
            ax.plot(sizes, values, style, color=colour, label=f"{label}, {scenario}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("exact origins in the allowlist")
    ax.set_ylabel("overhead (µs / request)")
    ax.set_title("Cost against allowlist size")
    ax.legend(fontsize="small")

    ax = axes[1][0]
    bars(ax, [("corsengine", "static list"), *((name, name) for name in asgi.dynamic)], DYNAMIC_SIZE)
    ax.set_title(f"corsengine providers on a warm cache, {DYNAMIC_SIZE} origins")

    ax = axes[1][1]
    measured = [results for results in http if not results.skipped]
    if measured:
        names = list(measured[0].samples)
        step = 0.8 / len(measured)
        for i, results in enumerate(measured):
            xs_http = [x - 0.4 + step * (i + 0.5) for x in range(len(names))]
            ax.bar(xs_http, [results.ratio(name, FLOOR) for name in names], step, label=results.server)
        ax.axhline(MIN_THROUGHPUT_TO_FLOOR, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(list(range(len(names))), names, rotation=15)
        ax.set_ylim(0, 1.3)
        ax.set_ylabel("req/s, x the floor's (median per round)")
        ax.set_title("Throughput behind uvicorn on loopback, wrk")
        ax.legend(fontsize="small", loc="lower left")
    else:
        ax.set_axis_off()

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


_LABELS = {
    "starlette": "Starlette CORSMiddleware",
    "floor": "minimal class middleware (floor)",
    "corsengine": "corsengine CORSMiddleware",
}
