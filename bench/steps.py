"""Step-by-step runs (what an exported cloud pipeline executes) against one whole `conveyor run`.

Scaffolds the visa example in a temporary folder (embedded SQLite + local artifact folder), then,
``--repeat`` times each, with ``--no-cache`` so every step really runs:

- whole: ``conveyor run --no-cache`` as one process;
- stepwise: ``conveyor run --run-id KEY --step NAME --no-cache``, one process per step in DAG
  order (a new key per repeat), as a cloud pipeline's containers do (container start aside).

Overhead per step = (stepwise - whole) / steps. Also shown: the slowest and the quickest step
process (the quickest, a trivial step such as ``gate``, is the floor each step pays: Python
start, imports, opening the stores). The last rows check that the two forms gave the same model
digest. The stores this machine's user has are never touched (``CONVEYOR_*`` cleared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Row, fmt, print_table

if TYPE_CHECKING:
    from collections.abc import Sequence

CONVEYOR = Path(sys.executable).parent / "conveyor"
_ENV = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI")


def _conveyor(*args: str | Path) -> tuple[float, Any]:
    """Run ``conveyor ARGS --json``: (wall seconds, parsed stdout)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(CONVEYOR), *map(str, args), "--json"], capture_output=True, text=True, check=False
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"conveyor {' '.join(map(str, args))}: {proc.stderr[-2000:]}")
    return took, json.loads(proc.stdout)


def measure(project: Path, repeat: int) -> list[Row]:
    _, planned = _conveyor("run", "--plan", "--run-id", "bench-plan", "-p", project)
    steps = [s["name"] for s in planned["steps"]]
    whole_times, step_totals, digests = [], [], set()
    per_step: dict[str, list[float]] = {s: [] for s in steps}
    for i in range(repeat):
        took, whole = _conveyor("run", "--no-cache", "-p", project)
        whole_times.append(took)
        digests.add(
            (
                "whole",
                next(s for s in whole["steps"] if s["name"] == "evaluate")["outputs"]["model"],
            )
        )
        total = 0.0
        for name in steps:
            took, summary = _conveyor(
                "run", "--run-id", f"bench-{i}", "--step", name, "--no-cache", "-p", project
            )
            per_step[name].append(took)
            total += took
            if name == "evaluate":
                digests.add(("stepwise", summary["outputs"]["model"]))
        step_totals.append(total)
    whole_s, stepwise_s = statistics.median(whole_times), statistics.median(step_totals)
    medians = {name: statistics.median(t) for name, t in per_step.items()}
    slowest = max(medians, key=medians.__getitem__)
    quickest = min(medians, key=medians.__getitem__)
    same = len({digest for _, digest in digests}) == 1
    return [
        Row("steps in the line", str(len(steps))),
        Row(f"whole run, one process (median of {repeat})", fmt(whole_s)),
        Row(f"step by step, {len(steps)} processes (median of {repeat})", fmt(stepwise_s)),
        Row("overhead per step", fmt((stepwise_s - whole_s) / len(steps))),
        Row(f"slowest step process ({slowest})", fmt(medians[slowest])),
        Row(f"quickest step process ({quickest}): the floor", fmt(medians[quickest])),
        Row("same model digest, whole vs step by step", "yes" if same else "NO", "yes",
            "ok" if same else "FAIL"),
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each form (default 2)")
    args = parser.parse_args(argv)
    for var in _ENV:
        os.environ.pop(var, None)
    from conveyor.cli.init import scaffold

    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        project = Path(tmp) / "visa"
        scaffold(project, example="visa")
        rows = measure(project, max(1, args.repeat))
    print(
        f"step-by-step runs vs one run (python {sys.version.split()[0]}, {os.cpu_count()} cores)\n"
    )
    print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
