"""Data validation at scale: 1M visa rows in memory, the `conveyor data validate` CLI, versions.

Run from the repository root::

    .venv/bin/python bench/validate.py [--rows 1000000] [--repeat 3]

The frame comes from the seeded visa generator (with its dirt: negative employee counts that the
schema drops, hourly wages that are yearly amounts, which it warns about). It is built once and
saved (in a child process) to a pickle (the exact frame) and a CSV in a temporary folder.
Every measure then runs in a fresh subprocess, ``--repeat`` times, so each one pays its own
start-up and has its own peak memory. Memory is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of
that child (RSS, so pyarrow-backed strings count too, unlike with tracemalloc). The high-water
mark is reset through ``/proc/self/clear_refs`` after imports and loading, so "peak" is the
high-water mark during the measured call, shown above the RSS at its start and as an absolute.

Prints one table (measure | value | goal | ok?). It is a report, not a test: the exit code is
always 0 and a missed goal shows as FAIL in the ok? column. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _report import Row, check, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

REPO = Path(__file__).resolve().parents[1]
VALIDATE_GOAL_S = 5.0
SEED = 42
CHILD_TIMEOUT_S = 300
# Settings that would point the CLI at someone else's project.
_ENV_OVERRIDES = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI")
# The private functions of conveyor.data.validation timed as phases, in the order they run.
PHASES = {
    "_table_rules": "table rules (required/extra columns, min rows, copy)",
    "_coerce": "dtype conversion (_coerce, once per column)",
    "_column_checks": "column checks (pandera: nullable, unique, min/max, allowed, regex)",
    "_failures_from_pandera": "  of which turning pandera's failure cases into failures",
    "_row_checks": "row checks (DataFrame.eval of when/require)",
    "_apply": "apply severities (drop rows, clip)",
}
NESTED = {"_failures_from_pandera"}  # runs inside _column_checks: not added to the total


def fmt_mb(n_bytes: float) -> str:
    """Bytes as ``412 MB`` or ``1.07 GB`` (powers of 1024)."""
    mb = n_bytes / 2**20
    return f"{mb / 1024:.2f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def spread(values: Sequence[float]) -> str:
    """``median (min-max, n=K)`` of durations."""
    return (
        f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))}, n={len(values)})"
    )


def memory(runs: Sequence[dict[str, Any]]) -> str:
    """``+412 MB (abs 1.07 GB, start 650 MB)``: medians of the peak above the start, the peak and
    the RSS at the start; ``>= +...`` when the high-water mark could not be reset."""
    above = statistics.median(r["peak"] - r["base"] for r in runs)
    text = f"+{fmt_mb(above)} (abs {fmt_mb(statistics.median(r['peak'] for r in runs))}, "
    text += f"start {fmt_mb(statistics.median(r['base'] for r in runs))})"
    return text if all(r["reset"] for r in runs) else f">= {text}"


def conveyor_exe() -> Path:
    """The ``conveyor`` console script next to this interpreter (the project's venv)."""
    here = Path(sys.executable).parent / "conveyor"
    return here if here.exists() else REPO / ".venv" / "bin" / "conveyor"


def visa_schema_path() -> Path:
    """The visa schema.yaml, found without importing the example (it imports pandas)."""
    spec = importlib.util.find_spec("conveyor.examples")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("conveyor.examples not found: run with the project's venv")
    return Path(next(iter(spec.submodule_search_locations))) / "visa" / "schema.yaml"


# -- children: one measure each, in a fresh process ---------------------------------------------


def _maxrss() -> int:
    """Peak RSS of this process in bytes (Linux reports KiB, macOS bytes)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _reset_peak() -> bool:
    """Set this process's RSS high-water mark to its current RSS (Linux only)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class PhaseTimer:
    """Adds up the time spent inside the wrapped functions, per function name."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__
        self.totals[name] = 0.0

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.totals[name] += time.perf_counter() - start

        return timed


def child(mode: str, frame_path: Path, csv_path: Path) -> dict[str, Any]:
    """Run one measure and return what the parent prints; called in a fresh interpreter."""
    import gc

    import pandas as pd

    start = time.perf_counter()
    import pandera.pandas  # noqa: F401 - validate imports it lazily; keep it out of the timing

    pandera_import = time.perf_counter() - start
    from conveyor.config import SourceConfig
    from conveyor.data import sources, validation, versioning
    from conveyor.data.schema import load_schema

    schema = load_schema(visa_schema_path())
    df = None if mode == "load" else pd.read_pickle(frame_path)
    timer = PhaseTimer()
    if mode == "validate":
        for name in PHASES:
            setattr(validation, name, timer.wrap(getattr(validation, name)))
    gc.collect()
    reset = _reset_peak()
    base = _maxrss()
    out: dict[str, Any] = {"reset": reset, "base": base, "pandera_import": pandera_import}
    start = time.perf_counter()
    if mode == "validate":
        _, report = validation.validate(df, schema, source=str(csv_path))
        out["report"] = report.to_dict()
    elif mode in ("fingerprint", "fingerprint-unordered"):
        out["fingerprint"] = versioning.fingerprint(
            df, schema_hash=schema.digest(), ignore_row_order=mode == "fingerprint-unordered"
        )
    elif mode == "load":
        frame = sources.load(SourceConfig(type="csv", path=str(csv_path)), csv_path.parent)
        out["rows"] = len(frame)
    else:
        raise ValueError(f"unknown child mode {mode!r}")
    out["wall"] = time.perf_counter() - start
    out["peak"] = _maxrss()
    out["phases"] = timer.totals
    return out


def run_child(mode: str, frame_path: Path, csv_path: Path, *extra: str | int) -> dict[str, Any]:
    """This script in a fresh interpreter in child mode; its JSON result.

    Raises:
        RuntimeError: the child exited non-zero (its stderr tail is in the message).
    """
    args = [sys.executable, __file__, "--child", mode, "--frame", frame_path, "--csv", csv_path]
    args += extra
    proc = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, check=False, timeout=CHILD_TIMEOUT_S
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RuntimeError(f"child {mode} exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_cli(args: Sequence[str | Path], cwd: Path) -> tuple[float, int, str]:
    """Wall time, peak RSS in bytes (from wait4) and stdout of one CLI process.

    Raises:
        RuntimeError: the process exited non-zero (its output tail is in the message).
    """
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([str(a) for a in args], cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        tail = (stderr or stdout).strip()[-2000:]
        raise RuntimeError(f"{' '.join(map(str, args))} exited {proc.returncode}:\n{tail}")
    peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return took, peak, stdout


# -- the measures --------------------------------------------------------------------------------


def counts(report: dict[str, Any]) -> tuple[int, int, int, int, int]:
    """``(rows in, rows out, dropped, warnings, fixed)`` of a validation report."""
    return (
        report["rows_in"],
        report["rows_out"],
        report["dropped"],
        report["warnings"],
        report["fixed"],
    )


def fmt_counts(c: tuple[int, int, int, int, int]) -> str:
    return f"in {c[0]:,} / out {c[1]:,}, dropped {c[2]:,}, warnings {c[3]:,}, fixed {c[4]:,}"


def bench_validate(
    n: int, repeat: int, frame: Path, csv: Path
) -> tuple[list[Row], tuple[int, ...] | None]:
    """``validate(df, schema)`` in memory: wall time, memory, phases, and the report's counts."""
    runs = [run_child("validate", frame, csv) for _ in range(repeat)]
    walls = [r["wall"] for r in runs]
    found = {counts(r["report"]) for r in runs}
    report = runs[0]["report"]
    c = counts(report)
    real = (
        len(found) == 1
        and c[0] == n
        and c[1] == c[0] - c[2]
        and report["passed"]
        and (c[2] > 0 or n < 1000)  # the dirt must be found: about 0.1% negative counts
    )
    rows = [
        Row(
            f"validate(df, visa schema), {n:,} rows in memory",
            spread(walls),
            f"<= {fmt(VALIDATE_GOAL_S)}",
            check(statistics.median(walls), VALIDATE_GOAL_S),
        ),
        Row("  peak RSS during validate", memory(runs)),
        Row("  report", fmt_counts(c), f"in = {n:,}, passed", "ok" if real else "FAIL"),
    ]
    for f in report["failures"]:
        where = f"{f['column']}: " if f["column"] else ""
        rows.append(Row(f"    {f['severity']}: {where}{f['check']}", f"{f['count']:,} rows"))
    total = statistics.median(walls)
    rows.append(Row("  phases (median of runs, % of validate)", ""))
    top = 0.0
    for name, label in PHASES.items():
        took = statistics.median(r["phases"][name] for r in runs)
        top += 0.0 if name in NESTED else took
        rows.append(Row(f"    {label}", f"{fmt(took)} ({took / total:.0%})"))
    other = max(total - top, 0.0)
    rows.append(
        Row(
            "    other (primary key duplicated, reset_index, ...)",
            f"{fmt(other)} ({other / total:.0%})",
        )
    )
    pandera = statistics.median(r["pandera_import"] for r in runs)
    rows.append(Row("  `import pandera.pandas` (not in the time above)", fmt(pandera)))
    return rows, c


def bench_cli(repeat: int, frame: Path, csv: Path, expected: tuple[int, ...] | None) -> list[Row]:
    """``conveyor data validate big.csv --schema ...`` end to end, and its CSV read alone."""
    cmd: list[str | Path] = [
        conveyor_exe(),
        "data",
        "validate",
        csv,
        "--schema",
        visa_schema_path(),
        "--json",
    ]
    runs = [run_cli(cmd, csv.parent) for _ in range(repeat)]
    walls = [took for took, _, _ in runs]
    peaks = [peak for _, peak, _ in runs]
    c = counts(json.loads(runs[0][2]))
    same = expected is not None and c == expected
    loads = [run_child("load", frame, csv) for _ in range(repeat)]
    size = csv.stat().st_size
    return [
        Row(f"`conveyor data validate` {csv.name} ({fmt_mb(size)}), subprocess", spread(walls)),
        Row("  peak RSS of the CLI process (absolute)", fmt_mb(statistics.median(peaks))),
        Row("  report", fmt_counts(c), "= in-memory", "ok" if same else "FAIL"),
        Row("  sources.load(csv) alone, in-process", spread([r["wall"] for r in loads])),
        Row("  peak RSS during sources.load(csv)", memory(loads)),
    ]


def bench_fingerprint(repeat: int, frame: Path, csv: Path) -> list[Row]:
    """``versioning.fingerprint`` of the frame, in row order and ignoring it."""
    rows = []
    for mode, label in (
        ("fingerprint", "fingerprint(df)"),
        ("fingerprint-unordered", "fingerprint(df, ignore_row_order=True)"),
    ):
        runs = [run_child(mode, frame, csv) for _ in range(repeat)]
        same = len({r["fingerprint"] for r in runs}) == 1
        rows += [
            Row(f"versioning.{label}", spread([r["wall"] for r in runs])),
            Row("  peak RSS during it", memory(runs)),
            Row(
                "  fingerprint, same in every run",
                runs[0]["fingerprint"][:16],
                "stable",
                "ok" if same else "FAIL",
            ),
        ]
    return rows


def make_data(n: int, frame: Path, csv: Path) -> dict[str, Any]:
    """Child mode: the seeded visa frame, saved as a pickle (exact) and a CSV (what a user
    validates). In a child so the parent stays small (see :func:`prepare`)."""
    import pandas as pd

    from conveyor.examples.visa.generate import generate

    start = time.perf_counter()
    df = generate(n_rows=n, seed=SEED)
    made = time.perf_counter() - start
    pd.to_pickle(df, frame)
    start = time.perf_counter()
    df.to_csv(csv, index=False)
    return {"generate": made, "to_csv": time.perf_counter() - start}


def prepare(n: int, root: Path) -> tuple[Path, Path, list[Row]]:
    """Build the data in a child process.

    The parent must not hold the frame: on Linux a child's ``ru_maxrss`` starts at the RSS of
    the process it was forked from, so a big parent would hide every child's peak.
    """
    frame, csv = root / "visa.pkl", root / "big.csv"
    made = run_child("prepare", frame, csv, "--rows", n)
    return (
        frame,
        csv,
        [
            Row(f"generate(n_rows={n:,}, seed={SEED}), once", fmt(made["generate"])),
            Row(f"  DataFrame.to_csv, once ({fmt_mb(csv.stat().st_size)})", fmt(made["to_csv"])),
        ],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows (default 1000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (default 3)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--frame", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "prepare":
        print(json.dumps(make_data(args.rows, args.frame, args.csv)))
        return 0
    if args.child:
        print(json.dumps(child(args.child, args.frame, args.csv)))
        return 0
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    for var in _ENV_OVERRIDES:
        os.environ.pop(var, None)

    started = time.perf_counter()
    goal = f"<= {fmt(VALIDATE_GOAL_S)}"
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        try:
            frame, csv, rows = prepare(args.rows, root)
        except Exception as exc:
            traceback.print_exc()
            frame = csv = root
            rows = [Row("generate the visa frame", f"error: {type(exc).__name__}", goal, "FAIL")]
        found: list[tuple[int, ...] | None] = [None]

        def in_memory() -> list[Row]:
            got, found[0] = bench_validate(args.rows, args.repeat, frame, csv)
            return got

        rows += section("validate in memory", goal, in_memory)
        rows += section(
            "`conveyor data validate`", "-", lambda: bench_cli(args.repeat, frame, csv, found[0])
        )
        rows += section("fingerprint", "-", lambda: bench_fingerprint(args.repeat, frame, csv))

    print(f"conveyor validation benchmark (python {sys.version.split()[0]}, {sys.platform})\n")
    print_table(rows)
    print(f"\nbenchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
