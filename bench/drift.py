"""Drift detection: conveyor's profile + detect, side by side with Evidently 0.7's DataDriftPreset.

Run from the repository root::

    .venv/bin/python bench/drift.py [--sizes 25000,250000,1000000] [--repeat 3]

Evidently is not a conveyor dependency. It is pinned (exact versions, below), installed on first
use into ``bench/.venv-evidently`` (a venv of its own: Evidently 0.7 needs pandas < 3, conveyor's
venv has pandas 3) and measured in subprocesses of that venv's python. The reference (the
25,480-row visa table) and the drifted current sets are written once to Parquet, so both tools
read the same data. Every (variant, size) measurement is a fresh subprocess that reads the
Parquet files (not timed), warms the tool up on a small slice, then times the drift computation
on the in-memory frames and records its peak RSS above the RSS at its start.

The goals compare like with like: conveyor building its reference profile and then detecting
(``build_profile`` + ``detect``, both timed) against Evidently's ``Report.run`` on the same
reference and current frames, with pyarrow-backed strings on both sides (conveyor's pandas 3
default; ``string[pyarrow]`` for Evidently). conveyor's detect against an already stored profile
and Evidently on ``object`` strings are shown as context, without a goal.

Prints one table (measure | value | goal | ok?). It is a report, not a test: the exit code is
always 0 and a missed goal shows as FAIL in the ok? column. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _peers import PeerEnvError, bench_venv, describe
from _report import Row, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

SPEED_GOAL = 20.0  # Evidently time / conveyor build + detect time, at the largest size
MEMORY_GOAL = 1 / 3  # conveyor's added RSS (build + detect) / Evidently's, at the largest size
REFERENCE_SEED = 1
CONTROL_SEED = 99
SHIFTED = ("continent", "prevailing_wage")  # what generate(drift=True) changes
DROPPED = ("case_status", "case_id")  # the label and the row id are not features
WARMUP_ROWS = 2000  # above DriftSettings.small_sample, so the warm-up takes the timed code path
CHILD_TIMEOUT_S = 900

EVIDENTLY_DIR = Path(__file__).resolve().parent / ".venv-evidently"
# Exact pins (bench/_peers.py reinstalls when the venv has other versions). numpy, scipy and
# pyarrow are the versions in conveyor's venv, so the numeric and string layers are the same on
# both sides; pandas is the last 2.x, because Evidently 0.7 does not import with pandas 3.
EVIDENTLY_REQUIREMENTS = (
    "evidently==0.7.23",
    "pandas==2.3.3",
    "pyarrow==26.0.1",
    "numpy==2.4.6",
    "scipy==1.17.1",
)
# The variants measured: (key, label). Goals compare CONVEYOR_E2E with EVIDENTLY_ARROW.
CONVEYOR_E2E = "conveyor-build"  # build_profile(reference) + detect(profile, current), timed
CONVEYOR_STORED = "conveyor"  # detect(stored profile, current): the profile built beforehand
EVIDENTLY_ARROW = "evidently-arrow"  # string columns as pandas string[pyarrow]
EVIDENTLY_OBJECT = "evidently"  # string columns as object (what pandas 2 reads by default)
LABELS = {
    CONVEYOR_E2E: "conveyor build_profile(reference) + detect(profile, current)",
    CONVEYOR_STORED: "conveyor detect(stored profile, current) only",
    EVIDENTLY_ARROW: "Evidently Report([DataDriftPreset()]).run, string[pyarrow]",
    EVIDENTLY_OBJECT: "Evidently Report([DataDriftPreset()]).run, object strings",
}
SHORT = {
    CONVEYOR_E2E: "conveyor build + detect",
    CONVEYOR_STORED: "conveyor detect only",
    EVIDENTLY_ARROW: "Evidently string[pyarrow]",
    EVIDENTLY_OBJECT: "Evidently object",
}


# -- the Evidently venv ------------------------------------------------------------------------


def evidently_python(*, log: bool = True) -> Path:
    """The Evidently venv's python (see :func:`_peers.bench_venv`): a venv of its own because
    Evidently 0.7 does not import with pandas 3.

    Raises:
        PeerEnvError: venv creation or pip install failed (the message says what to try).
    """
    return bench_venv(EVIDENTLY_DIR, EVIDENTLY_REQUIREMENTS, label="evidently", log=log)


# -- the measured child (runs in either venv) --------------------------------------------------

CHILD_SCRIPT = textwrap.dedent(
    """
    import gc, json, resource, sys, time

    tool, ref_path, cur_path, warm_rows = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    out = {"tool": tool}


    def rss():
        try:
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


    def peak():
        value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return value if sys.platform == "darwin" else value * 1024


    def reset_peak():
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            return False
        return True


    started = time.perf_counter()
    import numpy
    import pandas as pd
    import scipy

    if tool.startswith("conveyor"):
        import conveyor
        from conveyor.monitoring.drift import DriftSettings, detect
        from conveyor.monitoring.profile import ReferenceProfile, build_profile

        version = getattr(conveyor, "__version__", "?")
    else:
        import evidently
        from evidently import Report
        from evidently.presets import DataDriftPreset

        version = evidently.__version__
    out["import_s"] = time.perf_counter() - started
    out["versions"] = {
        "tool": version, "pandas": pd.__version__, "numpy": numpy.__version__,
        "scipy": scipy.__version__, "python": sys.version.split()[0],
    }

    started = time.perf_counter()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    if tool == "evidently-arrow":  # pandas 2 reads object strings; make them string[pyarrow]
        for frame in (ref, cur):
            for name in frame.columns:
                if frame[name].dtype == object:
                    frame[name] = frame[name].astype("string[pyarrow]")
    out["load_s"] = time.perf_counter() - started
    out["rows"], out["columns"] = len(cur), list(cur.columns)
    dtype = cur["continent"].dtype
    storage = getattr(dtype, "storage", None)  # pandas' StringDtype: "python" or "pyarrow"
    out["string_dtype"] = f"{dtype} ({storage})" if storage else str(dtype)

    if tool == "conveyor":  # the profile is built and stored beforehand, as at training time
        started = time.perf_counter()
        built = build_profile(ref)
        out["profile_cold_s"] = time.perf_counter() - started
        document = json.dumps(built.to_dict())  # what is stored with a model version
        out["profile_bytes"] = len(document)
        profile = ReferenceProfile.from_dict(json.loads(document))
        del built, document

        def run(frame):
            return detect(profile, frame, DriftSettings())
    elif tool == "conveyor-build":  # from the reference frame, as Evidently starts

        def run(frame):
            started = time.perf_counter()
            built = build_profile(ref)
            out["profile_s"] = time.perf_counter() - started  # the timed call's comes last
            return detect(built, frame, DriftSettings())
    else:

        def run(frame):
            return Report([DataDriftPreset()]).run(current_data=frame, reference_data=ref)

    warm = cur.head(warm_rows).copy()  # lazy imports and first-call costs, on both sides
    started = time.perf_counter()
    run(warm)
    out["warmup_s"] = time.perf_counter() - started
    del warm
    gc.collect()

    out["reset"] = reset_peak()
    out["start_rss"] = rss()
    started = time.perf_counter()
    result = run(cur)
    out["seconds"] = time.perf_counter() - started
    out["peak_rss"] = peak()

    columns = {}
    if tool.startswith("conveyor"):
        for c in result.columns:
            columns[c.column] = {
                "method": c.method, "statistic": c.statistic, "threshold": c.threshold,
                "drifted": c.drifted,
            }
        out["dataset_drift"] = result.dataset_drift
        out["share"] = result.share_drifted
    else:
        # The public output: one ValueDrift per column (method, threshold, score) and the
        # DriftedColumnsCount (count, share).
        drift_share = 0.5
        for m in result.dict()["metrics"]:
            config = m["config"]
            if config["type"].endswith(":ValueDrift"):
                columns[config["column"]] = {
                    "method": config["method"], "statistic": m["value"],
                    "threshold": config["threshold"], "drifted": None,
                }
            elif config["type"].endswith(":DriftedColumnsCount"):
                out["share"] = m["value"]["share"]
                drift_share = config["drift_share"]
        # Evidently's own verdicts (drift_detected, dataset_drift) are on the legacy results
        # the preset computed; they are not in dict(). Fall back on its rule if they move.
        legacy = getattr(getattr(result, "_context", None), "_legacy_metrics", {}) or {}
        out["verdict_source"] = "rule"
        for value, _widgets in legacy.values():
            for name, col in (getattr(value, "drift_by_columns", None) or {}).items():
                if name in columns:
                    columns[name]["drifted"] = bool(col.drift_detected)
                    out["verdict_source"] = "Evidently"
            if hasattr(value, "dataset_drift"):
                out["dataset_drift"] = bool(value.dataset_drift)
        for col in columns.values():
            if col["drifted"] is None:  # p-value tests drift below, distances at or above
                below = "p_value" in col["method"]
                score, limit = col["statistic"], col["threshold"]
                col["drifted"] = bool(score < limit if below else score >= limit)
        if "dataset_drift" not in out:
            out["dataset_drift"] = out.get("share", 0.0) >= drift_share
    out["drift"] = columns
    out["drifted"] = sorted(name for name, col in columns.items() if col["drifted"])
    print(json.dumps(out))
    """
)


def run_child(python: Path, script: Path, tool: str, ref: Path, cur: Path) -> dict[str, Any]:
    """One measurement in a fresh interpreter; its JSON (the last stdout line) as a dict.

    Raises:
        RuntimeError: the child failed (its stderr tail is in the message).
    """
    env = dict(os.environ)
    env["DO_NOT_TRACK"] = "1"  # Evidently's telemetry switch (only its UI uses it)
    if tool.startswith("conveyor"):
        src = str(Path(__file__).resolve().parent.parent / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [str(python), str(script), tool, str(ref), str(cur), str(WARMUP_ROWS)],
        capture_output=True,
        text=True,
        check=False,
        timeout=CHILD_TIMEOUT_S,
        env=env,
        cwd=script.parent,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RuntimeError(f"{tool} child exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- the data (made in a child, so this process stays small) -----------------------------------


def prepare(root: Path, sizes: Sequence[int], control: int) -> dict[str, Any]:
    """Write ref.parquet, cur_N.parquet (drifted) and control_N.parquet; their timings."""
    from conveyor.examples.visa.generate import generate

    made: dict[str, Any] = {}
    started = time.perf_counter()
    generate(seed=REFERENCE_SEED, dirt=False).drop(columns=list(DROPPED)).to_parquet(
        root / "ref.parquet"
    )
    made["ref"] = time.perf_counter() - started
    jobs = [(f"cur_{n}", n, seed, True) for seed, n in enumerate(sizes, start=REFERENCE_SEED + 1)]
    if control:
        jobs.append((f"control_{control}", control, CONTROL_SEED, False))
    for name, n, seed, drift in jobs:
        started = time.perf_counter()
        frame = generate(n_rows=n, seed=seed, drift=drift, dirt=False)
        frame.drop(columns=list(DROPPED)).to_parquet(root / f"{name}.parquet")
        made[name] = {"seconds": time.perf_counter() - started, "seed": seed}
        del frame
    return made


def run_prepare(root: Path, sizes: Sequence[int], control: int) -> dict[str, Any]:
    """:func:`prepare` in a fresh interpreter (``drift.py --prepare``)."""
    args = [sys.executable, __file__, "--prepare", str(root)]
    args += ["--sizes", ",".join(map(str, sizes)), "--control-rows", str(control)]
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"data preparation failed:\n{proc.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- the report --------------------------------------------------------------------------------


def fmt_mb(n_bytes: float) -> str:
    """Bytes as ``412 MB`` or ``1.07 GB`` (powers of 1024)."""
    mb = n_bytes / 2**20
    return f"{mb / 1024:.2f} GB" if abs(mb) >= 1024 else f"{mb:.0f} MB"


def fmt_delta(n_bytes: float) -> str:
    """A signed :func:`fmt_mb`: ``+45 MB``, ``-1 MB``."""
    text = fmt_mb(abs(n_bytes))
    return ("-" if n_bytes < 0 and text != "0 MB" else "+") + text


def spread(values: Sequence[float], show: Callable[[float], str] = fmt) -> str:
    """``median (min-max, n=K)`` of durations, or of anything ``show`` formats."""
    if len(values) == 1:
        return show(values[0])
    return (
        f"{show(statistics.median(values))} "
        f"({show(min(values))}-{show(max(values))}, n={len(values)})"
    )


def added(runs: Sequence[dict[str, Any]]) -> list[float]:
    """Peak RSS during the measured call above the RSS at its start, per run."""
    return [float(r["peak_rss"] - r["start_rss"]) for r in runs]


def memory(runs: Sequence[dict[str, Any]]) -> str:
    """``+45 MB (+40 MB-+50 MB, n=3), RSS before 380 MB``; flagged when not reset."""
    start = statistics.median(r["start_rss"] for r in runs)
    text = f"{spread(added(runs), fmt_delta)}, RSS before {fmt_mb(start)}"
    if not all(r["reset"] for r in runs):
        text += " (peak not reset: upper bound)"
    return text


def flagged(run: dict[str, Any]) -> str:
    """``continent, prevailing_wage (2 of 10; dataset drift: no, share 0.20)``."""
    names = ", ".join(run["drifted"]) or "none"
    verdict = {True: "yes", False: "no", None: "n/a"}[run["dataset_drift"]]
    share = run.get("share")
    share_text = f", share {share:.2f}" if share is not None else ""
    count = f"{len(run['drifted'])} of {len(run['drift'])}"
    return f"{names} ({count}; dataset drift: {verdict}{share_text})"


def consistent(runs: Sequence[dict[str, Any]]) -> bool:
    """Every repeat gave the same flagged columns and the same dataset verdict."""
    return len({(tuple(r["drifted"]), r["dataset_drift"]) for r in runs}) == 1


def ratio(slow: Sequence[float], fast: Sequence[float]) -> float:
    """``median(slow) / median(fast)``."""
    return statistics.median(slow) / statistics.median(fast)


def times(runs: Sequence[dict[str, Any]]) -> list[float]:
    return [float(r["seconds"]) for r in runs]


def size_rows(
    n: int,
    seed: int,
    runs: dict[str, list[dict[str, Any]]],
    evid_error: str | None,
    *,
    goals: bool,
) -> list[Row]:
    """The rows of one current set: time, memory and verdicts of every variant."""
    e2e, stored = runs[CONVEYOR_E2E], runs[CONVEYOR_STORED]
    arrow, obj = runs.get(EVIDENTLY_ARROW, []), runs.get(EVIDENTLY_OBJECT, [])
    first = stored[0]
    unshifted = [c for c in first["columns"] if c not in SHIFTED]
    speed_goal = f">= {SPEED_GOAL:.0f}x" if goals else "-"
    mem_goal = f"<= {MEMORY_GOAL:.2f}" if goals else "-"
    rows = [
        Row(
            f"current: {n:,} rows, generate(n_rows={n}, seed={seed}, drift=True), "
            f"{len(first['columns'])} columns",
            "",
        ),
        Row(f"  time, {LABELS[CONVEYOR_E2E]}", spread(times(e2e))),
        Row("    of which build_profile(reference)", spread([r["profile_s"] for r in e2e])),
    ]
    rows += [
        Row(f"  time, {LABELS[k]}", spread(times(v)))
        for k, v in runs.items()
        if k != CONVEYOR_E2E and v
    ]
    if arrow:
        speedup = ratio(times(arrow), times(e2e))
        rows.append(
            Row(
                f"  speedup, like for like: {SHORT[EVIDENTLY_ARROW]} / {SHORT[CONVEYOR_E2E]}",
                f"{speedup:,.1f}x",
                speed_goal,
                ("ok" if speedup >= SPEED_GOAL else "FAIL") if goals else "-",
            )
        )
    else:
        rows.append(
            Row(
                "  speedup, like for like: Evidently not measured (stderr)",
                (evid_error or "not run").splitlines()[0][:60],
                speed_goal,
                "FAIL" if goals else "-",
            )
        )
    context = [(EVIDENTLY_OBJECT, CONVEYOR_E2E), (EVIDENTLY_ARROW, CONVEYOR_STORED)]
    context.append((EVIDENTLY_OBJECT, CONVEYOR_STORED))
    for slow, fast in context:
        if runs.get(slow):
            rows.append(
                Row(
                    f"    context: {SHORT[slow]} / {SHORT[fast]}",
                    f"{ratio(times(runs[slow]), times(runs[fast])):,.1f}x",
                )
            )
    rows += [Row(f"  peak RSS added, {SHORT[k]}", memory(v)) for k, v in runs.items() if v]
    if arrow:
        c_mem, e_mem = statistics.median(added(e2e)), statistics.median(added(arrow))
        share = c_mem / e_mem if e_mem > 0 else float("inf")
        rows.append(
            Row(
                f"  added RSS, like for like: {SHORT[CONVEYOR_E2E]} / {SHORT[EVIDENTLY_ARROW]}",
                f"{share:.3f} (1/{1 / share:,.0f})" if share > 0 else f"{share:.3f}",
                mem_goal,
                ("ok" if share <= MEMORY_GOAL else "FAIL") if goals else "-",
            )
        )
    if obj:
        rows.append(
            Row(
                f"    context: {SHORT[CONVEYOR_STORED]} / {SHORT[EVIDENTLY_OBJECT]}",
                f"{statistics.median(added(stored)) / max(statistics.median(added(obj)), 1):.3f}",
            )
        )
    rows.append(Row(f"  flagged by {SHORT[CONVEYOR_STORED]}", flagged(first)))
    for key in (EVIDENTLY_ARROW, EVIDENTLY_OBJECT):
        if runs.get(key):
            rows.append(Row(f"  flagged by {SHORT[key]}", flagged(runs[key][0])))
    measured = {k: v[0] for k, v in runs.items() if v}
    hit = {k: all(c in r["drifted"] for c in SHIFTED) for k, r in measured.items()}
    false = {k: [c for c in r["drifted"] if c in unshifted] for k, r in measured.items()}
    conv_false = false[CONVEYOR_STORED] + false[CONVEYOR_E2E]
    missed = [SHORT[k] for k, v in hit.items() if not v]
    rows += [
        Row(
            f"  shifted columns ({', '.join(SHIFTED)}) flagged",
            f"by all {len(hit)} variants" if not missed else f"NOT by {', '.join(missed)}",
            "all",
            "ok" if not missed and arrow else "FAIL",
        ),
        Row(
            f"  false alarms on the {len(unshifted)} unshifted columns",
            "; ".join(
                [f"conveyor {', '.join(sorted(set(conv_false))) or 'none'}"]
                + [
                    f"{SHORT[k]} {', '.join(false[k]) or 'none'}"
                    for k in (EVIDENTLY_ARROW, EVIDENTLY_OBJECT)
                    if k in false
                ]
            ),
            "none (conveyor)",
            "ok" if not conv_false else "FAIL",
        ),
    ]
    differ = [k for k, v in runs.items() if v and not consistent(v)]
    if not consistent([*stored, *e2e]) and CONVEYOR_STORED not in differ:
        differ.append("conveyor stored vs fresh profile")
    if differ:
        rows.append(
            Row(
                "  verdicts differ between runs",
                ", ".join(SHORT.get(k, k) for k in differ),
                "no",
                "FAIL",
            )
        )
    return rows


def statistic_rows(conv: dict[str, Any], evid: dict[str, Any] | None) -> list[Row]:
    """Per column: method and statistic of each tool on the same current set."""
    rows = []
    for name, c in conv["drift"].items():
        value = f"conveyor {c['method']} {c['statistic']:.4f}"
        if evid and name in evid["drift"]:
            e = evid["drift"][name]
            value += f" | Evidently {e['method']} {e['statistic']:.4f}"
        mark = " *" if c["drifted"] else ""
        rows.append(Row(f"  {name}{mark}", value))
    return rows


def control_rows(n: int, runs: dict[str, dict[str, Any]], evid_error: str | None) -> list[Row]:
    """The same-distribution control set: nothing should be flagged."""
    conv = runs[CONVEYOR_STORED]
    rows = [
        Row(
            f"control: {n:,} rows, generate(n_rows={n}, seed={CONTROL_SEED}, drift=False)",
            "",
        ),
        Row(
            f"  flagged by {SHORT[CONVEYOR_STORED]}",
            flagged(conv),
            "none",
            "ok" if not conv["drifted"] else "FAIL",
        ),
        Row(
            f"  flagged by {SHORT[CONVEYOR_E2E]}",
            flagged(runs[CONVEYOR_E2E]),
            "none",
            "ok" if not runs[CONVEYOR_E2E]["drifted"] else "FAIL",
        ),
    ]
    for key in (EVIDENTLY_ARROW, EVIDENTLY_OBJECT):
        if key in runs:
            rows.append(Row(f"  flagged by {SHORT[key]}", flagged(runs[key])))
    rows.append(
        Row(
            "  time (one run each)",
            ", ".join(f"{SHORT[k]} {fmt(r['seconds'])}" for k, r in runs.items()),
        )
    )
    if EVIDENTLY_ARROW not in runs and evid_error:
        rows.append(Row("  Evidently: not measured", evid_error.splitlines()[0][:60]))
    return rows


def bench(
    sizes: Sequence[int], repeat: int, control: int, object_strings: bool, root: Path
) -> tuple[list[Row], str]:
    """Measure everything; the table's rows and the versions of Evidently's venv."""
    evid_error: str | None = None
    evid_python: Path | None = None
    evid_versions = ""
    try:
        evid_python = evidently_python()
        evid_versions = describe(evid_python, EVIDENTLY_REQUIREMENTS)
    except PeerEnvError as exc:
        evid_error = str(exc)
        evid_versions = f"not installed: {evid_error.splitlines()[0]}"
        print(f"Evidently not measured: {evid_error}", file=sys.stderr)

    print("[drift] generating the data ...", file=sys.stderr, flush=True)
    made = run_prepare(root, sizes, control)
    script = root / "drift_child.py"
    script.write_text(CHILD_SCRIPT)
    ref = root / "ref.parquet"
    conv_python = Path(sys.executable)

    variants = [CONVEYOR_E2E, CONVEYOR_STORED, EVIDENTLY_ARROW]
    if object_strings:
        variants.append(EVIDENTLY_OBJECT)
    runs: dict[int, dict[str, list[dict[str, Any]]]] = {n: {k: [] for k in variants} for n in sizes}
    largest = max(sizes)
    load_before = os.getloadavg()

    def measure(tool: str, cur: Path) -> dict[str, Any] | None:
        nonlocal evid_error
        if tool.startswith("conveyor"):
            return run_child(conv_python, script, tool, ref, cur)
        if evid_python is None or evid_error is not None:
            return None
        try:
            return run_child(evid_python, script, tool, ref, cur)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            evid_error = f"{type(exc).__name__}: {exc}"
            print(f"Evidently measurement failed: {evid_error}", file=sys.stderr)
            return None

    # Interleave the variants and the sizes, so a change in machine load hits all of them; the
    # order of the variants rotates from round to round.
    for r in range(repeat):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]
        for n in sizes:
            print(f"[drift] round {r + 1}/{repeat}, {n:,} rows ...", file=sys.stderr, flush=True)
            for tool in order:
                if (got := measure(tool, root / f"cur_{n}.parquet")) is not None:
                    runs[n][tool].append(got)
    control_runs: dict[str, dict[str, Any]] = {}
    if control:
        print(f"[drift] control set, {control:,} rows ...", file=sys.stderr, flush=True)
        for tool in variants:
            if (got := measure(tool, root / f"control_{control}.parquet")) is not None:
                control_runs[tool] = got
    load_after = os.getloadavg()

    every = [r for by_tool in runs.values() for v in by_tool.values() for r in v]
    conv_all = [r for r in every if r["tool"].startswith("conveyor")]
    evid_all = [r for r in every if not r["tool"].startswith("conveyor")]
    stored_all = [r for r in conv_all if r["tool"] == CONVEYOR_STORED]
    versions = conv_all[0]["versions"]
    rows = [
        Row(
            f"reference: generate(seed={REFERENCE_SEED}, dirt=False) minus "
            f"{', '.join(DROPPED)}, 25,480 rows",
            f"written to Parquet in {fmt(made['ref'])}",
        ),
        Row(
            f"conveyor {versions['tool']}: import (excluded)",
            f"{spread([r['import_s'] for r in conv_all])}; pandas {versions['pandas']}, "
            f"numpy {versions['numpy']}, scipy {versions['scipy']}, strings "
            f"{conv_all[0]['string_dtype']}",
        ),
        Row(
            "conveyor profile as stored (JSON; what detect-only reads)",
            f"{stored_all[0]['profile_bytes'] / 1024:,.0f} KB, first build (cold) "
            f"{spread([r['profile_cold_s'] for r in stored_all])}",
        ),
    ]
    if evid_all:
        ev = evid_all[0]["versions"]
        source = {r.get("verdict_source", "?") for r in evid_all}
        dtypes = sorted({r["string_dtype"] for r in evid_all})
        rows += [
            Row(
                f"Evidently {ev['tool']}: import (excluded)",
                f"{spread([r['import_s'] for r in evid_all])}; pandas {ev['pandas']}, "
                f"numpy {ev['numpy']}, scipy {ev['scipy']}, strings {' / '.join(dtypes)}",
            ),
            Row(
                "Evidently's column verdicts taken from",
                "its drift_detected flags" if source == {"Evidently"} else f"{source}",
            ),
        ]
    for n in sizes:
        rows += size_rows(n, int(made[f"cur_{n}"]["seed"]), runs[n], evid_error, goals=n == largest)
    top = runs[largest]
    evid_top = top[EVIDENTLY_ARROW][0] if top[EVIDENTLY_ARROW] else None
    rows.append(
        Row(
            f"statistics at {largest:,} rows (* = conveyor drifted; threshold 0.1)",
            "",
        )
    )
    rows += statistic_rows(top[CONVEYOR_STORED][0], evid_top)  # Evidently: string[pyarrow]
    if top.get(EVIDENTLY_OBJECT) and evid_top:
        same = all(
            abs(e["statistic"] - top[EVIDENTLY_OBJECT][0]["drift"][c]["statistic"]) < 1e-9
            for c, e in evid_top["drift"].items()
        )
        rows.append(
            Row("  Evidently statistics, object strings = string[pyarrow]", "yes" if same else "NO")
        )
    if control_runs:
        rows += control_rows(control, control_runs, evid_error)
    rows.append(
        Row(
            "load average (1 min) before / after the measurements",
            f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cpus"
            + (" (busy: times are noisy)" if max(load_before[0], load_after[0]) > 0.5 else ""),
        )
    )
    return rows, evid_versions


def parse_sizes(text: str) -> list[int]:
    return [int(s.replace("_", "")) for s in text.split(",") if s.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="25000,250000,1000000",
        help="current-set rows, comma separated; the goals apply to the largest (default "
        "25000,250000,1000000)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measurements per variant and size, the same for every variant (default 3)",
    )
    parser.add_argument(
        "--control-rows",
        type=int,
        default=250_000,
        help="rows of an undrifted control set, measured once per variant; 0 skips it "
        "(default 250000)",
    )
    parser.add_argument(
        "--no-object-strings",
        action="store_true",
        help="skip Evidently on object strings (context only; the goals use string[pyarrow])",
    )
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # internal: data child
    args = parser.parse_args(argv)
    sizes = parse_sizes(args.sizes)
    if not sizes or min(sizes) < 1 or args.repeat < 1 or args.control_rows < 0:
        parser.error("--sizes must be positive, --repeat at least 1, --control-rows >= 0")
    if args.prepare is not None:
        print(json.dumps(prepare(args.prepare, sizes, args.control_rows)))
        return 0

    started = time.perf_counter()
    versions = ", ".join(EVIDENTLY_REQUIREMENTS)
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:

        def run() -> list[Row]:
            nonlocal versions
            rows, versions = bench(
                sizes, args.repeat, args.control_rows, not args.no_object_strings, Path(tmp)
            )
            return rows

        rows = section("drift detection", f">= {SPEED_GOAL:.0f}x", run)
    print(
        f"\ndrift detection: conveyor vs Evidently (its venv: {versions}); "
        f"python {sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} cpus\n"
    )
    print_table(rows)
    print(
        "\nTimes cover the drift computation on frames already in memory (Parquet reading, "
        "imports and a warm-up call on a small slice are excluded): median (min-max, n=runs), "
        "every variant measured the same number of times, each run a fresh process. The goals "
        "compare like with like: conveyor building its profile from the reference and then "
        "detecting, against Evidently's Report.run() on the same reference and current frames, "
        "both with pyarrow-backed strings. conveyor's detect() against a profile stored at "
        "training time and Evidently on object strings are context, without a goal. Memory is "
        "the peak RSS during the timed call above the RSS just before it (the high-water mark "
        "is reset through /proc/self/clear_refs)."
    )
    print(f"benchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
