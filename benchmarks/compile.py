"""What compiling an allowlist costs per origin, and what a refresh of an unchanged list costs.

    python -m benchmarks.compile [--quick] [--no-count]

Three lists of each size (1,000, 10,000 and 100,000 entries), compiled with the public
``Rules.from_entries``:

- **canonical**: exact origins as a database holds them (``https://tenant-00042.example.com``),
  the case the fast path is for;
- **non-canonical**, for contrast: the same origins in upper case, with the default port, with a
  trailing slash, or as a wildcard pattern (a quarter each), which take the general path
  (splitting, IDNA, the Public Suffix guard, re-serializing);
- **unchanged refresh**: a ``CallableProvider`` whose function returns a new list with the same
  canonical origins as last time, loaded again: a comparison, no compile.

CPU time of the process (``time.process_time_ns``, which counts a worker thread too and not time
spent descheduled), the median of ``runs`` compiles in each of ``processes`` fresh interpreters,
pooled. With valgrind installed, the canonical compile is also counted in instructions per
origin (callgrind, counters switched on around the compile only), which load cannot move.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from corsengine.providers import CallableProvider, Rules

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (100, 1_000)
KINDS = ("canonical", "non-canonical", "unchanged refresh")
# Issue 16: a canonical exact origin compiles in at most this many microseconds.
MAX_CANONICAL_US = 0.5
_TOTALS = re.compile(r"^totals:\s+([0-9]+)", re.MULTILINE)


@dataclass
class Settings:
    sizes: tuple[int, ...] = SIZES
    runs: int = 11
    processes: int = 3
    count: bool = True  # instructions under callgrind, when valgrind is installed


QUICK = Settings(sizes=QUICK_SIZES, runs=2, processes=1, count=False)


@dataclass
class CompileResults:
    settings: Settings
    # (kind, size) -> CPU ns per origin, one sample per run, pooled over the processes
    samples: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    # size -> instructions per canonical origin (None: not counted)
    instructions: dict[int, float] | None = None
    skipped_count: str | None = None

    def per_origin_us(self, kind: str, size: int) -> float:
        return statistics.median(self.samples[(kind, size)]) / 1_000


def canonical(size: int) -> list[str]:
    return [f"https://tenant-{index:05d}.example.com" for index in range(size)]


def non_canonical(size: int) -> list[str]:
    forms = (
        "https://Tenant-{:05d}.Example.com",
        "https://tenant-{:05d}.example.com:443",
        "https://tenant-{:05d}.example.com/",
        "https://*.tenant-{:05d}.example.com",
    )
    return [forms[index % 4].format(index) for index in range(size)]


def _cpu_ns(work: Callable[[], object]) -> int:
    start = time.process_time_ns()
    work()
    return time.process_time_ns() - start


async def _refresh_samples(size: int, runs: int) -> list[float]:
    # Each call returns a new list of new strings, as a database query does: equal to the last
    # one, not identical. They are built before the clock starts: only corsengine's work counts.
    lists = [canonical(size) for _ in range(runs + 1)]
    provider = CallableProvider(lists.pop)
    first = await provider.load()
    samples = []
    for _ in range(runs):
        start = time.process_time_ns()
        rules = await provider.load()
        elapsed = time.process_time_ns() - start
        if rules is not first:
            raise RuntimeError("an unchanged list was compiled again")
        samples.append(elapsed / size)
    await provider.aclose()
    return samples


def _measure_in_this_process(settings: Settings) -> dict[tuple[str, int], list[float]]:
    Rules.from_entries(["https://*.warm-up.example"])  # loads the Public Suffix List, once
    samples: dict[tuple[str, int], list[float]] = {}
    for size in settings.sizes:
        for kind, make in (("canonical", canonical), ("non-canonical", non_canonical)):
            entries = make(size)
            Rules.from_entries(entries)  # warm-up
            samples[(kind, size)] = [
                _cpu_ns(partial(Rules.from_entries, entries)) / size for _ in range(settings.runs)
            ]
        samples[("unchanged refresh", size)] = asyncio.run(_refresh_samples(size, settings.runs))
    return samples


# --- instructions under callgrind -------------------------------------------------------------


def _child(sizes: list[int]) -> None:
    """Under callgrind: compile each size once warm, with the counters on around it only."""
    for size in sizes:
        entries = canonical(size)
        Rules.from_entries(entries)  # warm-up
        print("ready", flush=True)
        sys.stdin.readline()  # the counters are on and zeroed
        Rules.from_entries(entries)
        print("done", flush=True)
        sys.stdin.readline()  # the counters are off and dumped


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def count_instructions(sizes: tuple[int, ...]) -> dict[int, float]:
    """Instructions per canonical origin, for each size; compile only, warm."""
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        command += [sys.executable, "-m", "benchmarks.compile", "--child", *map(str, sizes)]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        with subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        ) as child:
            if child.stdin is None or child.stdout is None:
                raise RuntimeError("no pipes to the child")
            for size in sizes:
                if child.stdout.readline().strip() != "ready":
                    raise RuntimeError("the compile benchmark's child did not start")
                _control(child.pid, "--instr=on")
                _control(child.pid, "--zero")
                child.stdin.write("go\n")
                child.stdin.flush()
                child.stdout.readline()
                _control(child.pid, "--instr=off")
                _control(child.pid, "--dump")
                dumps = sorted(Path(tmp).glob("callgrind.out.*"), key=lambda path: path.stat().st_mtime_ns)
                match = _TOTALS.search(dumps[-1].read_text(errors="replace"))
                if match is None:
                    raise RuntimeError(f"no totals in {dumps[-1]}")
                result[size] = int(match.group(1)) / size
                child.stdin.write("next\n")
                child.stdin.flush()
    return result


def run(settings: Settings | None = None) -> CompileResults:
    settings = settings or Settings()
    results = CompileResults(settings)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, not a fork of this one
    for _ in range(settings.processes):
        # One process at a time: two at once would compete for the CPU they measure.
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            part = pool.submit(_measure_in_this_process, settings).result()
        for key, samples in part.items():
            results.samples.setdefault(key, []).extend(samples)
    if settings.count:
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            results.skipped_count = "valgrind is not installed"
        else:
            results.instructions = count_instructions(settings.sizes)
    return results


def table(results: CompileResults) -> str:
    sizes = results.settings.sizes
    lines = [
        "| list | " + " | ".join(f"{size:,} origins" for size in sizes) + " |",
        "|---|" + "--:|" * len(sizes),
    ]
    for kind in KINDS:
        cells = [f"{results.per_origin_us(kind, size) * 1_000:,.0f} ns" for size in sizes]
        lines.append(f"| {kind}, CPU per origin | " + " | ".join(cells) + " |")
    if results.instructions:
        cells = [f"{results.instructions[size]:,.0f}" for size in sizes]
        lines.append("| canonical, instructions per origin | " + " | ".join(cells) + " |")
    elif results.skipped_count:
        lines += ["", f"Instruction count skipped: {results.skipped_count}."]
    return "\n".join(lines)


def verdict_line(results: CompileResults) -> str:
    figures = [results.per_origin_us("canonical", size) for size in results.settings.sizes]
    met = max(figures) <= MAX_CANONICAL_US
    sizes = " / ".join(
        f"{size // 1_000:,}k" if size >= 1_000 else str(size) for size in results.settings.sizes
    )
    values = " / ".join(f"{figure:.2f}" for figure in figures)
    return (
        f"- **{'MET' if met else 'MISSED'}**: compiling a canonical exact origin costs "
        f"≤ {MAX_CANONICAL_US} µs ({sizes}: {values} µs)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compile", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small lists, few runs: checks it runs")
    parser.add_argument("--no-count", action="store_true", help="skip the instruction count (valgrind)")
    parser.add_argument("--child", nargs="+", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child)
        return 0
    settings = Settings(**vars(QUICK)) if args.quick else Settings()
    if args.no_count:
        settings.count = False
    results = run(settings)
    print(table(results))
    print()
    print(verdict_line(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
