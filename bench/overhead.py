"""Orchestration overhead of conveyor: per-step cost, cached re-run, CLI start-up.

Run from the repository root::

    .venv/bin/python bench/overhead.py [--steps 100] [--repeat 5]

Prints one table (measure | value | goal | ok?) and then the slowest imports behind
``conveyor --help``. It is a report, not a test: the exit code is always 0 and a missed goal
shows as FAIL in the ok? column. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _report import Row, check, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from conveyor.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[1]
STEP_GOAL_S = 0.005
CACHED_RUN_GOAL_S = 1.0
HELP_GOAL_S = 0.3
CLI_REPEAT = 3
HELP_REPEAT = 5
IMPORT_TOP = 5
# Settings that would point the benchmark at someone else's store or project.
_ENV_OVERRIDES = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI")


def spread(values: Sequence[float]) -> str:
    """``median (min-max, n=K)`` of durations."""
    return (
        f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))}, n={len(values)})"
    )


def conveyor_exe() -> Path:
    """The ``conveyor`` console script next to this interpreter (the project's venv)."""
    here = Path(sys.executable).parent / "conveyor"
    return here if here.exists() else REPO / ".venv" / "bin" / "conveyor"


def timed_process(args: Sequence[str | Path]) -> float:
    """Wall time of one subprocess, end to end.

    Raises:
        RuntimeError: the process exited non-zero (its stderr tail is in the message).
    """
    start = time.perf_counter()
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=300
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RuntimeError(f"{' '.join(map(str, args))} exited {proc.returncode}:\n{tail}")
    return took


# -- 1. per-step orchestration overhead -------------------------------------------------------


class FunctionTimer:
    """Adds up the time spent inside the wrapped step functions."""

    def __init__(self) -> None:
        self.total = 0.0

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)  # keeps the signature and source conveyor inspects
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start

        return timed


def _first(seed: int) -> dict[str, int]:
    return {"step": 0, "value": seed}


def _next(prev: dict[str, int]) -> dict[str, int]:
    return {"step": prev["step"] + 1, "value": prev["value"] + 1}


def chain(n: int, timer: FunctionTimer) -> Pipeline:
    """``seed -> step_000 -> step_001 -> ... -> step_{n-1}``, each returning a small dict."""
    from conveyor.pipeline import Pipeline, Step

    steps = [Step(timer.wrap(_first), "step_000", inputs={"seed": "seed"}, outputs=("d000",))]
    steps += [
        Step(
            timer.wrap(_next),
            f"step_{i:03d}",
            inputs={"prev": f"d{i - 1:03d}"},
            outputs=(f"d{i:03d}",),
        )
        for i in range(1, n)
    ]
    return Pipeline(steps, name="overhead", inputs=["seed"])


def bench_steps(n: int, repeat: int, tmp: Path) -> list[Row]:
    """Per-step overhead of uncached runs, and per-step time of a fully cached run."""
    from conveyor.runner import LocalExecutor, Runner
    from conveyor.store.artifacts import open_artifact_store
    from conveyor.store.metadata import StepStatus, open_metadata_store

    timer = FunctionTimer()
    line = chain(n, timer)
    metadata = open_metadata_store(f"sqlite:///{tmp / 'm.db'}")
    artifacts = open_artifact_store(str(tmp / "art"))

    def run(seed: int, *, use_cache: bool) -> tuple[float, float, Any]:
        timer.total = 0.0
        with LocalExecutor(artifacts, lambda: metadata) as executor:
            runner = Runner(metadata, artifacts, executor)
            start = time.perf_counter()
            result = runner.run(line, inputs={"seed": seed}, use_cache=use_cache)
            wall = time.perf_counter() - start
        if not result.ok:
            raise RuntimeError(f"benchmark run failed: {result.failures}")
        return wall, timer.total, result

    try:
        # A new seed per run: every run writes new artifacts, as a real re-run on new data would.
        base = time.time_ns()
        overhead, inside, walls, seed = [], [], [], base
        for r in range(repeat):
            seed = base + r
            wall, in_funcs, _ = run(seed, use_cache=False)
            walls.append(wall)
            overhead.append((wall - in_funcs) / n)
            inside.append(in_funcs / n)
        cached = []
        for _ in range(repeat):  # same seed as the last run: every step is a cache hit
            wall, _, result = run(seed, use_cache=True)
            if any(s is not StepStatus.CACHED for s in result.steps.values()):
                raise RuntimeError("cached re-run did not hit the cache for every step")
            cached.append(wall / n)
    finally:
        metadata.close()
    per_step = statistics.median(overhead)
    return [
        Row(
            f"per-step overhead, {n} chained steps, no cache",
            spread(overhead),
            f"<= {fmt(STEP_GOAL_S)}",
            check(per_step, STEP_GOAL_S),
        ),
        Row("  time inside step functions, per step", fmt(statistics.median(inside))),
        Row(f"  whole run, wall time ({n} steps)", spread(walls)),
        Row(f"per-step time, {n} steps all cached", spread(cached)),
    ]


# -- 2. cached re-run of the visa line ---------------------------------------------------------


def bench_visa(tmp: Path) -> list[Row]:
    """Cold and cached ``conveyor run`` of the scaffolded visa project, and in-process."""
    from conveyor.cli.init import scaffold

    project = tmp / "visa"
    scaffold(project, example="visa")
    cmd: list[str | Path] = [conveyor_exe(), "run", "-p", project]
    cold = timed_process(cmd)
    cli = [timed_process(cmd) for _ in range(CLI_REPEAT)]

    from conveyor.project import Project

    def in_process() -> float:
        start = time.perf_counter()
        with Project.load(project) as proj:
            result = proj.run()
        took = time.perf_counter() - start
        if not result.ok:
            raise RuntimeError(f"visa run failed: {result.failures}")
        return took

    first = in_process()
    warm = [in_process() for _ in range(CLI_REPEAT)]

    with Project.load(project) as proj:  # every timed re-run must have been fully cached
        runs = proj.metadata.list_runs(limit=len(cli) + len(warm) + 1)
    reruns = runs[:-1]
    not_cached = [r.id[:8] for r in reruns if any(str(s.status) != "cached" for s in r.steps)]
    median = statistics.median(cli)
    return [
        Row("visa: `conveyor run` cold (trains), subprocess", fmt(cold)),
        Row(
            "visa: `conveyor run` cached re-run, subprocess",
            spread(cli),
            f"<= {fmt(CACHED_RUN_GOAL_S)}",
            "FAIL" if not_cached else check(median, CACHED_RUN_GOAL_S),
        ),
        Row("visa: Project.load().run() cached, in-process, 1st", fmt(first)),
        Row("visa: Project.load().run() cached, in-process", spread(warm)),
        *(
            [Row("visa: re-runs NOT fully cached", ", ".join(not_cached), "none", "FAIL")]
            if not_cached
            else []
        ),
    ]


# -- 3. CLI start-up ---------------------------------------------------------------------------


def bench_help() -> list[Row]:
    """``conveyor --help`` as a new process each time (the OS file cache warmed once)."""
    cmd: list[str | Path] = [conveyor_exe(), "--help"]
    timed_process(cmd)
    times = [timed_process(cmd) for _ in range(HELP_REPEAT)]
    bare = [timed_process([sys.executable, "-c", "pass"]) for _ in range(HELP_REPEAT)]
    return [
        Row(
            "`conveyor --help`, new process",
            spread(times),
            f"<= {fmt(HELP_GOAL_S)}",
            check(statistics.median(times), HELP_GOAL_S),
        ),
        Row("  bare `python -c pass`, for reference", spread(bare)),
    ]


def import_times(code: str) -> list[tuple[int, int, str]]:
    """``(self_us, cumulative_us, indented module name)`` from ``python -X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    found = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        found.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
    return found


def print_imports(title: str, code: str) -> None:
    rows = import_times(code)
    total = sum(own for own, _, _ in rows)
    print(f"\n{title}\n  python -X importtime -c {code!r}  (all imports: {total / 1000:.0f} ms)")
    print(f"  {'cumulative':>10}  {'self':>8}  module (indent = nesting)")
    for own, cumulative, name in sorted(rows, key=lambda r: -r[1])[:IMPORT_TOP]:
        print(f"  {cumulative / 1000:>7.1f} ms  {own / 1000:>5.1f} ms  {name.removeprefix(' ')}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="chained steps (default 100)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per measure (default 5)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeat < 1:
        parser.error("--steps and --repeat must be at least 1")
    for var in _ENV_OVERRIDES:
        os.environ.pop(var, None)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        (root / "steps").mkdir()
        rows = section(
            "per-step overhead",
            f"<= {fmt(STEP_GOAL_S)}",
            lambda: bench_steps(args.steps, args.repeat, root / "steps"),
        )
        rows += section(
            "visa cached re-run", f"<= {fmt(CACHED_RUN_GOAL_S)}", lambda: bench_visa(root)
        )
        rows += section("`conveyor --help`", f"<= {fmt(HELP_GOAL_S)}", bench_help)

    print(f"conveyor overhead benchmark (python {sys.version.split()[0]}, {sys.platform})\n")
    print_table(rows)
    print_imports("slowest imports of the CLI module:", "import conveyor.cli.main")
    print_imports(
        "slowest imports of a whole `conveyor --help` (incl. what help rendering imports):",
        "import sys; sys.argv = ['conveyor', '--help']; from conveyor.cli.main import main; main()",
    )
    print(f"\nbenchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
