"""Drift detection: conveyor's profile + detect, side by side with Evidently 0.7's DataDriftPreset.

Run from the repository root::

    .venv/bin/python bench/drift.py [--sizes 25000,250000,1000000] [--repeat 3]

Evidently is not a conveyor dependency. It is installed on first use into
``bench/.venv-evidently`` (a venv of its own: Evidently 0.7 needs pandas < 3, conveyor's venv
has pandas 3) and measured in subprocesses of that venv's python. The reference (the 25,480-row
visa table) and the drifted current sets are written once to Parquet, so both tools read the
same data. Every (tool, size) measurement is a fresh subprocess that reads the Parquet files
(not timed), warms the tool up on a small slice, then times the drift computation on the
in-memory frames and records its peak RSS above the RSS at its start.

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

from _peers import PeerEnvError, bench_venv
from _report import Row, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

SPEED_GOAL = 20.0  # Evidently time / conveyor time at the largest size
MEMORY_GOAL = 1 / 3  # conveyor's added RSS / Evidently's at the largest size
REFERENCE_SEED = 1
CONTROL_SEED = 99
SHIFTED = ("continent", "prevailing_wage")  # what generate(drift=True) changes
DROPPED = ("case_status", "case_id")  # the label and the row id are not features
WARMUP_ROWS = 2000  # above DriftSettings.small_sample, so the warm-up takes the timed code path
CHILD_TIMEOUT_S = 900

EVIDENTLY_DIR = Path(__file__).resolve().parent / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = ("evidently>=0.7,<0.8", "pandas<3", "pyarrow")
# Written after a successful install; holds the requirements it was made with.
_MARKER = EVIDENTLY_DIR / "conveyor-bench-evidently.txt"


# -- the Evidently venv ------------------------------------------------------------------------


def evidently_python(*, log: bool = True) -> Path:
    """The Evidently venv's python (see :func:`_peers.bench_venv`): a venv of its own because
    Evidently 0.7 does not import with pandas 3.

    Raises:
        PeerEnvError: venv creation or pip install failed (the message says what to try).
    """
    return bench_venv(
        EVIDENTLY_DIR, EVIDENTLY_REQUIREMENTS, marker=_MARKER, label="evidently", log=log
    )


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

    if tool == "conveyor":
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
        tool: version, "pandas": pd.__version__, "numpy": numpy.__version__,
        "scipy": scipy.__version__, "python": sys.version.split()[0],
    }

    if tool == "evidently-arrow":  # pandas 2's opt-in pyarrow strings (pandas 3's default)
        pd.options.future.infer_string = True
    started = time.perf_counter()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    out["load_s"] = time.perf_counter() - started
    out["rows"], out["columns"] = len(cur), list(cur.columns)
    out["string_dtype"] = str(cur["continent"].dtype)

    if tool == "conveyor":
        started = time.perf_counter()
        built = build_profile(ref)
        out["profile_s"] = time.perf_counter() - started
        document = json.dumps(built.to_dict())  # what is stored with a model version
        out["profile_bytes"] = len(document)
        profile = ReferenceProfile.from_dict(json.loads(document))
        del built, document

        def run(frame):
            return detect(profile, frame, DriftSettings())
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
    if tool == "conveyor":
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
    if tool == "conveyor":
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


def size_rows(
    n: int,
    seed: int,
    conv: list[dict[str, Any]],
    evid: list[dict[str, Any]] | None,
    evid_error: str | None,
    *,
    goals: bool,
) -> list[Row]:
    """The rows of one current set: time, memory and verdicts of both tools."""
    c_time = [r["seconds"] for r in conv]
    first = conv[0]
    unshifted = [c for c in first["columns"] if c not in SHIFTED]
    rows = [
        Row(
            f"current: {n:,} rows, generate(n_rows={n}, seed={seed}, drift=True), "
            f"{len(first['columns'])} columns",
            "",
        ),
        Row("  time, conveyor detect(profile, frame, DriftSettings())", spread(c_time)),
    ]
    speed_goal = f">= {SPEED_GOAL:.0f}x" if goals else "-"
    mem_goal = f"<= {MEMORY_GOAL:.2f}" if goals else "-"
    if evid:
        e_time = [r["seconds"] for r in evid]
        speedup = statistics.median(e_time) / statistics.median(c_time)
        c_mem, e_mem = statistics.median(added(conv)), statistics.median(added(evid))
        ratio = c_mem / e_mem if e_mem > 0 else float("inf")
        rows += [
            Row("  time, Evidently Report([DataDriftPreset()]).run(...)", spread(e_time)),
            Row(
                "  speedup (Evidently / conveyor, medians)",
                f"{speedup:,.1f}x",
                speed_goal,
                ("ok" if speedup >= SPEED_GOAL else "FAIL") if goals else "-",
            ),
            Row("  peak RSS added, conveyor", memory(conv)),
            Row("  peak RSS added, Evidently", memory(evid)),
            Row(
                "  added RSS, conveyor / Evidently (medians)",
                f"{ratio:.3f} (1/{1 / ratio:,.0f})" if ratio > 0 else f"{ratio:.3f}",
                mem_goal,
                ("ok" if ratio <= MEMORY_GOAL else "FAIL") if goals else "-",
            ),
        ]
    else:
        rows += [
            Row("  peak RSS added, conveyor", memory(conv)),
            Row(
                "  Evidently: not measured (reason on stderr)", (evid_error or "")[:60], "-", "FAIL"
            ),
        ]
    rows.append(Row("  flagged by conveyor", flagged(first)))
    if evid:
        rows.append(Row("  flagged by Evidently", flagged(evid[0])))
    both = [("conveyor", first)] + ([("Evidently", evid[0])] if evid else [])
    hit = {name: all(c in r["drifted"] for c in SHIFTED) for name, r in both}
    false = {name: [c for c in r["drifted"] if c in unshifted] for name, r in both}
    rows += [
        Row(
            f"  shifted columns ({', '.join(SHIFTED)}) flagged",
            ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in hit.items()),
            "both",
            "ok" if len(hit) == 2 and all(hit.values()) else "FAIL",
        ),
        Row(
            f"  false alarms on the {len(unshifted)} unshifted columns",
            ", ".join(f"{k} {', '.join(v) or 'none'}" for k, v in false.items()),
            "none (conveyor)",
            "ok" if not false["conveyor"] else "FAIL",
        ),
    ]
    if not consistent(conv) or (evid and not consistent(evid)):
        rows.append(Row("  verdicts differ between repeats", "yes", "no", "FAIL"))
    return rows


def arrow_rows(
    conv: list[dict[str, Any]], evid: list[dict[str, Any]], arrow: list[dict[str, Any]]
) -> list[Row]:
    """Evidently again at the largest size, on pyarrow-backed strings (for reference)."""
    a_time = [r["seconds"] for r in arrow]
    c_time = statistics.median(r["seconds"] for r in conv)
    same = arrow[0]["drifted"] == evid[0]["drifted"]
    return [
        Row(
            "  reference: Evidently with pd.options.future.infer_string=True (pyarrow strings)",
            "",
        ),
        Row("    time, Evidently Report(...).run(...)", spread(a_time)),
        Row(
            "    speedup (Evidently arrow strings / conveyor, medians)",
            f"{statistics.median(a_time) / c_time:,.1f}x",
        ),
        Row("    peak RSS added, Evidently arrow strings", memory(arrow)),
        Row(
            "    added RSS, conveyor / Evidently arrow strings",
            f"{statistics.median(added(conv)) / max(statistics.median(added(arrow)), 1):.3f}",
        ),
        Row("    same columns flagged as with object strings", "yes" if same else "NO"),
    ]


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


def control_rows(
    n: int, conv: dict[str, Any], evid: dict[str, Any] | None, evid_error: str | None
) -> list[Row]:
    """The same-distribution control set: nothing should be flagged."""
    rows = [
        Row(
            f"control: {n:,} rows, generate(n_rows={n}, seed={CONTROL_SEED}, drift=False)",
            "",
        ),
        Row(
            "  flagged by conveyor",
            flagged(conv),
            "none",
            "ok" if not conv["drifted"] else "FAIL",
        ),
        Row(
            "  time, conveyor / Evidently",
            f"{fmt(conv['seconds'])} / {fmt(evid['seconds'])}" if evid else fmt(conv["seconds"]),
        ),
    ]
    if evid:
        rows.insert(2, Row("  flagged by Evidently", flagged(evid)))
    elif evid_error:
        rows.append(Row("  Evidently: not measured", evid_error[:60], "-", "FAIL"))
    return rows


def bench(
    sizes: Sequence[int], repeat: int, control: int, arrow_strings: bool, root: Path
) -> list[Row]:
    evid_error: str | None = None
    evid_python: Path | None = None
    try:
        evid_python = evidently_python()
    except PeerEnvError as exc:
        evid_error = str(exc)
        print(f"Evidently not measured: {evid_error}", file=sys.stderr)

    print("[drift] generating the data ...", file=sys.stderr, flush=True)
    made = run_prepare(root, sizes, control)
    script = root / "drift_child.py"
    script.write_text(CHILD_SCRIPT)
    ref = root / "ref.parquet"
    conv_python = Path(sys.executable)

    conv: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    evid: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    arrow: list[dict[str, Any]] = []  # Evidently on pyarrow strings, largest size only
    largest = max(sizes)
    load_before = os.getloadavg()

    def evidently(cur: Path, tool: str = "evidently") -> dict[str, Any] | None:
        nonlocal evid_error
        if evid_python is None or evid_error is not None:
            return None
        try:
            return run_child(evid_python, script, tool, ref, cur)
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            evid_error = f"{type(exc).__name__}: {exc}"
            print(f"Evidently measurement failed: {evid_error}", file=sys.stderr)
            return None

    # Interleave the tools and the sizes, so a change in machine load hits both.
    for r in range(repeat):
        for n in sizes:
            print(f"[drift] round {r + 1}/{repeat}, {n:,} rows ...", file=sys.stderr, flush=True)
            cur = root / f"cur_{n}.parquet"
            first, second = ("conveyor", "evidently") if r % 2 == 0 else ("evidently", "conveyor")
            for tool in (first, second):
                if tool == "conveyor":
                    conv[n].append(run_child(conv_python, script, "conveyor", ref, cur))
                elif (got := evidently(cur)) is not None:
                    evid[n].append(got)
            if arrow_strings and n == largest and (got := evidently(cur, "evidently-arrow")):
                arrow.append(got)
    control_conv: dict[str, Any] | None = None
    control_evid: dict[str, Any] | None = None
    if control:
        print(f"[drift] control set, {control:,} rows ...", file=sys.stderr, flush=True)
        path = root / f"control_{control}.parquet"
        control_conv = run_child(conv_python, script, "conveyor", ref, path)
        control_evid = evidently(path)
    load_after = os.getloadavg()

    all_conv = [r for runs in conv.values() for r in runs]
    all_evid = [r for runs in evid.values() for r in runs]
    versions = all_conv[0]["versions"]
    rows = [
        Row(
            f"reference: generate(seed={REFERENCE_SEED}, dirt=False) minus "
            f"{', '.join(DROPPED)}, 25,480 rows",
            f"written to Parquet in {fmt(made['ref'])}",
        ),
        Row(
            "conveyor build_profile(reference), training time, once per model",
            f"{spread([r['profile_s'] for r in all_conv])}, JSON "
            f"{all_conv[0]['profile_bytes'] / 1024:,.0f} KB",
        ),
        Row(
            f"conveyor {versions['conveyor']}: import (excluded)",
            f"{spread([r['import_s'] for r in all_conv])}; pandas {versions['pandas']}, "
            f"numpy {versions['numpy']}, scipy {versions['scipy']}, strings "
            f"{all_conv[0]['string_dtype']}",
        ),
    ]
    if all_evid:
        ev = all_evid[0]["versions"]
        source = {r.get("verdict_source", "?") for r in all_evid}
        rows += [
            Row(
                f"Evidently {ev['evidently']}: import (excluded)",
                f"{spread([r['import_s'] for r in all_evid])}; pandas {ev['pandas']}, "
                f"numpy {ev['numpy']}, scipy {ev['scipy']}, strings "
                f"{all_evid[0]['string_dtype']}",
            ),
            Row(
                "Evidently's column verdicts taken from",
                "its drift_detected flags" if source == {"Evidently"} else f"{source}",
            ),
        ]
    for n in sizes:
        rows += size_rows(
            n,
            int(made[f"cur_{n}"]["seed"]),
            conv[n],
            evid[n] or None,
            evid_error,
            goals=n == largest,
        )
    if arrow and evid[largest]:
        rows += arrow_rows(conv[largest], evid[largest], arrow)
    rows.append(
        Row(f"statistics at {largest:,} rows (* = drifted for conveyor; threshold 0.1)", "")
    )
    rows += statistic_rows(conv[largest][0], evid[largest][0] if evid[largest] else None)
    if control_conv is not None:
        rows += control_rows(control, control_conv, control_evid, evid_error)
    rows.append(
        Row(
            "load average (1 min) before / after the measurements",
            f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cpus"
            + (" (busy: times are noisy)" if max(load_before[0], load_after[0]) > 0.5 else ""),
        )
    )
    return rows


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
        "--repeat", type=int, default=3, help="measurements per tool and size (default 3)"
    )
    parser.add_argument(
        "--control-rows",
        type=int,
        default=250_000,
        help="rows of an undrifted control set, measured once per tool; 0 skips it "
        "(default 250000)",
    )
    parser.add_argument(
        "--no-arrow-strings",
        action="store_true",
        help="skip the reference run of Evidently on pyarrow strings at the largest size",
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
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        rows = section(
            "drift detection",
            f">= {SPEED_GOAL:.0f}x",
            lambda: bench(
                sizes, args.repeat, args.control_rows, not args.no_arrow_strings, Path(tmp)
            ),
        )
    print(
        f"\ndrift detection: conveyor vs {', '.join(EVIDENTLY_REQUIREMENTS)} "
        f"(python {sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} cpus)\n"
    )
    print_table(rows)
    print(
        "\nTimes cover only the drift computation on frames already in memory (Parquet reading, "
        "imports and a warm-up call on a small slice are excluded), median of the repeats, each "
        "a fresh process. conveyor's side is detect() against a stored profile (built once from "
        "the reference at training time, shown above); Evidently's is Report.run() against the "
        "reference frame. Memory is the peak RSS during that call above the RSS just before it "
        "(the high-water mark is reset through /proc/self/clear_refs)."
    )
    print(f"benchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
