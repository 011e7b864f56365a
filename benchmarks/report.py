"""Turn benchmark results into Markdown tables, target verdicts and a plot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.asgi import DYNAMIC_SIZE, SCENARIOS, AsgiResults, Cell, FloodResult
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


def _cells(cells: list[Cell], size: int) -> dict[str, Cell]:
    return {cell.scenario: cell for cell in cells if cell.size == size}


def _ns(value: float) -> str:
    return f"{value:,.0f}"


def static_table(results: AsgiResults) -> str:
    lines = [
        "| origins | scenario | bare app | Starlette overhead | corsengine overhead "
        "| corsengine / Starlette |",
        "|--:|---|--:|--:|--:|--:|",
    ]
    for cell in results.static:
        starlette, ours = cell.overhead("starlette"), cell.overhead("corsengine")
        lines.append(
            f"| {cell.size:,} | {cell.scenario} | {_ns(cell.median('bare'))} | {_ns(starlette)} "
            f"| {_ns(ours)} | {ours / starlette:.2f} |"
        )
    return "\n".join(lines)


def dynamic_table(results: AsgiResults) -> str:
    names = [name for name in results.dynamic[0].samples if name not in ("bare", "static")]
    lines = [
        "| scenario | static list | " + " | ".join(names) + " |",
        "|---|--:|" + "--:|" * len(names),
    ]
    for cell in results.dynamic:
        static = cell.overhead("static")
        row = [f"{_ns(cell.overhead(name))} ({cell.overhead(name) / static:.2f}x)" for name in names]
        lines.append(f"| {cell.scenario} | {_ns(static)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def http_table(results: HttpResults) -> str:
    if results.skipped:
        return f"HTTP benchmark skipped: {results.skipped}."
    bare = results.median("bare")
    lines = ["| app | req/s (median) | x bare app | samples |", "|---|--:|--:|---|"]
    for name, samples in results.samples.items():
        median = results.median(name)
        runs = ", ".join(f"{sample:,.0f}" for sample in samples)
        lines.append(f"| {name} | {median:,.0f} | {median / bare:.2f} | {runs} |")
    return "\n".join(lines)


def flood_text(flood: FloodResult | None) -> str:
    if flood is None:
        return "Flood check not run."
    return (
        f"{flood.origins:,} distinct random origins against a predicate policy: decision cache holds "
        f"{flood.cache_len:,} entries (bound {flood.cache_size:,}); traced memory peaked at "
        f"{flood.peak_bytes / 1e6:.1f} MB, and at {flood.early_peak_bytes / 1e6:.1f} MB after the first "
        f"tenth of the flood ({flood.seconds:.0f} s under tracemalloc)."
    )


def asgi_verdicts(results: AsgiResults) -> list[Verdict]:
    verdicts = []
    at_target = _cells(results.static, TARGET_SIZE)
    if at_target:
        ratios = {s: c.overhead("corsengine") / c.overhead("starlette") for s, c in at_target.items()}
        worst = max(ratios, key=ratios.__getitem__)
        verdicts.append(
            Verdict(
                f"overhead ≤ {MAX_RATIO_TO_STARLETTE} x Starlette's "
                f"in every scenario at {TARGET_SIZE} origins",
                all(r <= MAX_RATIO_TO_STARLETTE for r in ratios.values()),
                f"worst: {worst}, {ratios[worst]:.2f} x",
            )
        )
    smallest, largest = min(results_sizes(results)), max(results_sizes(results))
    if smallest != largest:
        small, large = _cells(results.static, smallest), _cells(results.static, largest)
        growth = {s: large[s].overhead("corsengine") / small[s].overhead("corsengine") for s in small}
        worst = max(growth, key=growth.__getitem__)
        verdicts.append(
            Verdict(
                f"{largest:,} origins within {MAX_SIZE_GROWTH} x the cost of {smallest:,}",
                all(g <= MAX_SIZE_GROWTH for g in growth.values()),
                f"worst: {worst}, {growth[worst]:.2f} x",
            )
        )
    for name in results.dynamic[0].samples if results.dynamic else ():
        if name in ("bare", "static"):
            continue
        ratios = {c.scenario: c.overhead(name) / c.overhead("static") for c in results.dynamic}
        worst = max(ratios, key=ratios.__getitem__)
        verdicts.append(
            Verdict(
                f"warm {name} provider within {MAX_DYNAMIC_RATIO} x a static list ({DYNAMIC_SIZE} origins)",
                all(r <= MAX_DYNAMIC_RATIO for r in ratios.values()),
                f"worst: {worst}, {ratios[worst]:.2f} x",
            )
        )
    if results.flood is not None:
        flood = results.flood
        # Bounded means: the cache never exceeds its size, and once it is full, nine times more
        # distinct origins do not raise the peak (10% slack for allocator noise).
        bounded = flood.cache_len <= flood.cache_size and flood.peak_bytes <= 1.1 * flood.early_peak_bytes
        verdicts.append(
            Verdict(
                "memory bounded under a flood of distinct origins",
                bounded,
                f"cache {flood.cache_len:,}/{flood.cache_size:,}, peak {flood.peak_bytes / 1e6:.1f} MB "
                f"vs {flood.early_peak_bytes / 1e6:.1f} MB after a tenth of the flood",
            )
        )
    return verdicts


def results_sizes(results: AsgiResults) -> list[int]:
    return sorted({cell.size for cell in results.static})


def http_verdicts(results: HttpResults) -> list[Verdict]:
    if results.skipped:
        return []
    ratio = results.median("corsengine") / results.median("bare")
    starlette = results.median("starlette") / results.median("bare")
    return [
        Verdict(
            f"uvicorn throughput with corsengine ≥ {MIN_THROUGHPUT_RATIO} x the bare app's",
            ratio >= MIN_THROUGHPUT_RATIO,
            f"{ratio:.2f} x; Starlette's middleware {starlette:.2f} x",
        )
    ]


def plot(asgi: AsgiResults, http: HttpResults | None, path: Path) -> None:
    import matplotlib

    # No display on a server or in CI.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    scenario_names = [s.name for s in SCENARIOS]
    width = 0.38

    ax = axes[0][0]
    cells = _cells(asgi.static, TARGET_SIZE) or _cells(asgi.static, results_sizes(asgi)[-1])
    xs = range(len(scenario_names))
    for offset, (target, label) in zip((-width / 2, width / 2), _LABELS.items(), strict=True):
        values = [cells[name].overhead(target) / 1000 for name in scenario_names]
        ax.bar([x + offset for x in xs], values, width, label=label)
    ax.set_xticks(list(xs), scenario_names, rotation=20)
    ax.set_ylabel("overhead over bare app (µs / request)")
    ax.set_title(f"Per-request overhead, {next(iter(cells.values())).size} origins")
    ax.legend()

    ax = axes[0][1]
    sizes = results_sizes(asgi)
    for target, label in _LABELS.items():
        for scenario, style in (("allowed", "-o"), ("refused", "--s")):
            values = [_cells(asgi.static, size)[scenario].overhead(target) / 1000 for size in sizes]
            ax.plot(sizes, values, style, label=f"{label}, {scenario}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("exact origins in the allowlist")
    ax.set_ylabel("overhead (µs / request)")
    ax.set_title("Cost against allowlist size")
    ax.legend(fontsize="small")

    ax = axes[1][0]
    if asgi.dynamic:
        names = [name for name in asgi.dynamic[0].samples if name != "bare"]
        step = 0.8 / len(names)
        for i, name in enumerate(names):
            values = [cell.overhead(name) / 1000 for cell in asgi.dynamic]
            ax.bar([x - 0.4 + step * (i + 0.5) for x in xs], values, step, label=name)
        ax.set_xticks(list(xs), [cell.scenario for cell in asgi.dynamic], rotation=20)
        ax.legend(fontsize="small")
    ax.set_ylabel("overhead (µs / request)")
    ax.set_title(f"corsengine providers on a warm cache, {DYNAMIC_SIZE} origins")

    ax = axes[1][1]
    if http is not None and not http.skipped:
        names = list(http.samples)
        ax.bar(names, [http.median(name) for name in names], color=["grey", "C0", "C1"][: len(names)])
        ax.set_ylabel("requests / s (median)")
        ax.set_title(f"{http.server} on loopback, wrk")
    else:
        ax.set_axis_off()

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


_LABELS = {"starlette": "Starlette CORSMiddleware", "corsengine": "corsengine CORSMiddleware"}
