"""Turn benchmark results into Markdown tables, target verdicts and a plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.asgi import DYNAMIC_SIZE, AsgiResults, FloodResult
from benchmarks.http import HttpResults

# The performance targets of docs/DESIGN.md, in one place.
MAX_RATIO_TO_STARLETTE = 0.35
TARGET_SIZE = 100
MAX_SIZE_GROWTH = 1.1
MAX_DYNAMIC_RATIO = 1.1
MIN_THROUGHPUT_RATIO = 0.9


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
        "| origins | scenario | bare app | Starlette overhead | corsengine overhead "
        "| corsengine / Starlette |",
        "|--:|---|--:|--:|--:|--:|",
    ]
    for size in results.settings.sizes:
        for cell in results.cells:
            starlette, ours = cell.overhead(("starlette", size)), cell.overhead(("corsengine", size))
            lines.append(
                f"| {size:,} | {cell.scenario} | {_ns(cell.median(('bare', 0)))} | {_ns(starlette)} "
                f"| {_ns(ours)} | {ours / starlette:.2f} |"
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
        "| app | req/s (median) | x bare app (median per round) | server CPU per request | req/s per round |",
        "|---|--:|--:|--:|---|",
    ]
    for name, samples in results.samples.items():
        runs = ", ".join(f"{sample:,.0f}" for sample in samples)
        cpu = results.cpu_per_request(name)
        cpu_text = "n/a" if cpu is None else f"{cpu:.1f} µs"
        lines.append(
            f"| {name} | {results.median(name):,.0f} | {results.ratio(name):.2f} | {cpu_text} | {runs} |"
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


def http_verdicts(results: HttpResults) -> list[Verdict]:
    if results.skipped:
        return []
    ratio, starlette = results.ratio("corsengine"), results.ratio("starlette")
    minimal, headers_only = results.ratio("minimal middleware"), results.ratio("headers only")
    detail = (
        f"{ratio:.2f} x; Starlette's middleware {starlette:.2f} x; a minimal middleware writing the "
        f"same headers with no policy {minimal:.2f} x; the bare app writing them itself {headers_only:.2f} x"
    )
    return [
        Verdict(
            f"{results.server}: throughput with corsengine ≥ {MIN_THROUGHPUT_RATIO} x the bare app's",
            ratio >= MIN_THROUGHPUT_RATIO,
            detail,
        )
    ]


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
    for (name, label), colour in zip(_LABELS.items(), ("C0", "C1"), strict=True):
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
            ax.bar(xs_http, [results.ratio(name) for name in names], step, label=results.server)
        ax.axhline(MIN_THROUGHPUT_RATIO, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(list(range(len(names))), names, rotation=15)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel("req/s, x the bare app's (median per round)")
        ax.set_title("Throughput behind uvicorn on loopback, wrk")
        ax.legend(fontsize="small", loc="lower left")
    else:
        ax.set_axis_off()

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


_LABELS = {"starlette": "Starlette CORSMiddleware", "corsengine": "corsengine CORSMiddleware"}
