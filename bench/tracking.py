"""Metric logging: 10,000 values through conveyor's API, side by side with MLflow 3 on SQLite.

Run from the repository root::

    .venv/bin/python bench/tracking.py [--metrics 10000] [--repeat 3] [--mlflow-repeat 1]

MLflow is not a conveyor dependency. It is installed on first use into ``bench/.venv-peers``
(see bench/_peers.py) and measured in a subprocess of that venv's python. conveyor is measured
in this process. Both write a SQLite file in the same temporary folder. MLflow's import and its
database creation are timed apart and left out of its figures, as conveyor's store opening is.

Prints one table (measure | value | goal | ok?). It is a report, not a test: the exit code is
always 0 and a missed goal shows as FAIL in the ok? column. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _peers import PEERS, PeerEnvError, peer_python
from _report import Row, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Sequence

RATIO_GOAL = 20.0
MLFLOW_BATCH = 1000  # MLflow's limit of metrics per log_batch call
KEY = "loss"
CHILD_TIMEOUT_S = 900
# Settings that would point either side at someone else's store.
_ENV_OVERRIDES = (
    "CONVEYOR_PROJECT",
    "CONVEYOR_METADATA_URL",
    "CONVEYOR_ARTIFACTS_URI",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_RUN_ID",
)


def spread(values: Sequence[float]) -> str:
    """``median (min-max, n=K)`` of durations."""
    if len(values) == 1:
        return fmt(values[0])
    return (
        f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))}, n={len(values)})"
    )


def timing(values: Sequence[float], n: int) -> str:
    """``median (min-max, n=K), N metrics/s``."""
    return f"{spread(values)}, {n / statistics.median(values):,.0f} metrics/s"


def curve(n: int) -> list[float]:
    """A made-up loss curve: decaying, with a deterministic wobble (same values on both sides)."""
    return [2.0 / (1 + 0.002 * i) + 0.01 * ((i * 7919) % 101) / 101 for i in range(n)]


# -- MLflow, in the peer venv ------------------------------------------------------------------

MLFLOW_SCRIPT = textwrap.dedent(
    """
    import json, sqlite3, sys, time

    started = time.perf_counter()
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    imported = time.perf_counter() - started

    tmp, values_file, batch, wal = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    values = json.loads(open(values_file).read())
    n = len(values)
    out = {"mlflow": mlflow.__version__, "import_s": imported}


    def per_call(db, prefix):
        started = time.perf_counter()
        mlflow.set_tracking_uri(f"sqlite:///{db}")
        run = mlflow.start_run()  # creates and migrates the database
        out[prefix + "setup_s"] = time.perf_counter() - started
        started = time.perf_counter()
        for i, v in enumerate(values):
            mlflow.log_metric("loss", v, step=i)
        out[prefix + "log_metric_s"] = time.perf_counter() - started
        mlflow.end_run()
        con = sqlite3.connect(db)
        out[prefix + "journal_mode"] = con.execute("PRAGMA journal_mode").fetchone()[0]
        con.close()
        return run


    def check(name, run_id):
        got = sorted((m.step, m.value) for m in MlflowClient().get_metric_history(run_id, "loss"))
        out[name + "_rows"] = len(got)
        out[name + "_exact"] = got == list(enumerate(values))


    run = per_call(f"{tmp}/mlflow.db", "")
    check("log_metric", run.info.run_id)

    client = MlflowClient()
    run2 = client.create_run(run.info.experiment_id)
    now = int(time.time() * 1000)
    metrics = [Metric("loss", v, now, i) for i, v in enumerate(values)]
    started = time.perf_counter()
    for k in range(0, n, batch):
        client.log_batch(run2.info.run_id, metrics=metrics[k : k + batch])
    out["log_batch_s"] = time.perf_counter() - started
    client.set_terminated(run2.info.run_id)
    check("log_batch", run2.info.run_id)

    if wal:  # the same per-call logging on a database created in WAL mode (the mode persists)
        con = sqlite3.connect(f"{tmp}/mlflow_wal.db")
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
        run3 = per_call(f"{tmp}/mlflow_wal.db", "wal_")
        check("wal_log_metric", run3.info.run_id)
    print(json.dumps(out))
    """
)


def mlflow_once(python: Path, tmp: Path, values_file: Path, *, wal: bool) -> dict[str, Any]:
    """One MLflow measurement in a fresh folder; its JSON (the last stdout line) as a dict.

    Raises:
        RuntimeError: the child failed (its stderr tail is in the message).
    """
    tmp.mkdir()
    script = tmp / "mlflow_bench.py"
    script.write_text(MLFLOW_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in _ENV_OVERRIDES}
    env["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"  # MLflow's default, made explicit
    proc = subprocess.run(
        [str(python), str(script), str(tmp), str(values_file), str(MLFLOW_BATCH), str(int(wal))],
        capture_output=True,
        text=True,
        check=False,
        timeout=CHILD_TIMEOUT_S,
        env=env,
        cwd=tmp,  # MLflow may write ./mlruns for artifacts; keep it in the temporary folder
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RuntimeError(f"MLflow child exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- conveyor, in this process -----------------------------------------------------------------


def _read_back(db: Path, run_id: str) -> tuple[int, list[tuple[int, float]]]:
    """``(count, rows)``: the ``(iteration, value)`` rows of ``loss`` for ``run_id``, in order."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT iteration, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY iteration",
            (run_id, KEY),
        ).fetchall()
    finally:
        con.close()
    return len(rows), rows


def conveyor_step_api(tmp: Path, values: list[float]) -> dict[str, Any]:
    """A one-step pipeline whose step calls ``ctx.log_metric`` once per value."""
    from conveyor.pipeline import Pipeline, Step
    from conveyor.runner import LocalExecutor, Runner
    from conveyor.store.artifacts import open_artifact_store
    from conveyor.store.metadata import open_metadata_store

    body: list[float] = []

    def log_curve(ctx: Any) -> int:
        started = time.perf_counter()
        for i, v in enumerate(values):
            ctx.log_metric(KEY, v, iteration=i)
        body.append(time.perf_counter() - started)
        return len(values)

    line = Pipeline([Step(log_curve, "log_curve", inputs={}, outputs=("n",))], name="tracking")
    db = tmp / "conveyor.db"
    started = time.perf_counter()
    metadata = open_metadata_store(f"sqlite:///{db}")
    opened = time.perf_counter() - started
    artifacts = open_artifact_store(str(tmp / "art"))
    try:
        with LocalExecutor(artifacts, lambda: metadata) as executor:
            runner = Runner(metadata, artifacts, executor)
            started = time.perf_counter()
            result = runner.run(line, use_cache=False)
            wall = time.perf_counter() - started
    finally:
        metadata.close()
    if not result.ok:
        raise RuntimeError(f"step-API run failed: {result.failures}")
    rows, got = _read_back(db, result.run_id)
    return {
        "open_s": opened,
        "run_s": wall,
        "body_s": body[0],
        "rows": rows,
        "exact": got == list(enumerate(values)),
    }


def conveyor_store(tmp: Path, values: list[float], *, bulk: bool) -> dict[str, Any]:
    """``store.log_metrics`` with every row in one call (bulk) or one call per value."""
    from conveyor.store.metadata import RunStatus, open_metadata_store

    db = tmp / "conveyor.db"
    started = time.perf_counter()
    store = open_metadata_store(f"sqlite:///{db}")
    opened = time.perf_counter() - started
    try:
        run_id, _ = store.create_run("tracking", [], executor="bench")
        started = time.perf_counter()
        if bulk:
            store.log_metrics(run_id, [(KEY, v, i) for i, v in enumerate(values)])
        else:
            for i, v in enumerate(values):
                store.log_metrics(run_id, {KEY: v}, iteration=i)
        took = time.perf_counter() - started
        store.finish_run(run_id, RunStatus.SUCCEEDED)
    finally:
        store.close()
    rows, got = _read_back(db, run_id)
    return {"open_s": opened, "run_s": took, "rows": rows, "exact": got == list(enumerate(values))}


# -- the report --------------------------------------------------------------------------------


def ratio_row(label: str, slow: list[float], fast: list[float], goal: float | None) -> Row:
    ratio = statistics.median(slow) / statistics.median(fast)
    if goal is None:
        return Row(label, f"{ratio:,.1f}x")
    return Row(label, f"{ratio:,.1f}x", f">= {goal:.0f}x", "ok" if ratio >= goal else "FAIL")


def bench(n: int, repeat: int, mlflow_repeat: int, wal: bool, root: Path) -> list[Row]:
    values = curve(n)
    values_file = root / "values.json"
    values_file.write_text(json.dumps(values))

    conveyor: dict[str, list[dict[str, Any]]] = {"step": [], "bulk": [], "call": []}
    mlflow_runs: list[dict[str, Any]] = []
    mlflow_error: str | None = None
    python: Path | None = None
    try:
        python = peer_python()
    except PeerEnvError as exc:
        mlflow_error = str(exc)
    # Interleave the sides, so a change in machine load hits both.
    for r in range(max(repeat, mlflow_repeat)):
        if r < repeat:
            conveyor["step"].append(conveyor_step_api(root / f"step{r}", values))
            conveyor["bulk"].append(conveyor_store(root / f"bulk{r}", values, bulk=True))
            conveyor["call"].append(conveyor_store(root / f"call{r}", values, bulk=False))
        if r < mlflow_repeat and python is not None and mlflow_error is None:
            print(f"[mlflow] measurement {r + 1}/{mlflow_repeat} ...", file=sys.stderr, flush=True)
            try:
                mlflow_runs.append(mlflow_once(python, root / f"mlflow{r}", values_file, wal=wal))
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
                mlflow_error = f"{type(exc).__name__}: {exc}"
                print(f"MLflow measurement failed: {mlflow_error}", file=sys.stderr)

    def times(side: str, key: str = "run_s") -> list[float]:
        return [m[key] for m in conveyor[side]]

    step, body, bulk, call = times("step"), times("step", "body_s"), times("bulk"), times("call")
    rows = [
        Row(
            f"conveyor step API: ctx.log_metric x{n:,}, whole run (buffered, 1 bulk INSERT)",
            timing(step, n),
        ),
        Row(f"  of which the step body ({n:,} ctx.log_metric calls, in memory)", spread(body)),
        Row(
            "  of which run bookkeeping + the bulk INSERT (run - body)",
            spread([s - b for s, b in zip(step, body, strict=True)]),
        ),
        Row(
            f"conveyor bulk: store.log_metrics(run, {n:,} rows), 1 call = 1 transaction",
            timing(bulk, n),
        ),
        Row(
            f"conveyor per-call: store.log_metrics(run, {{k: v}}, iteration=i) x{n:,}, 1 tx each",
            timing(call, n),
        ),
        Row(
            "  conveyor: open a fresh SQLite store (create + migrate; excluded)",
            spread([m["open_s"] for side in conveyor.values() for m in side]),
        ),
    ]
    counts = {side: [m["rows"] for m in runs] for side, runs in conveyor.items()}
    exact = all(m["exact"] for runs in conveyor.values() for m in runs)
    verified = all(c == n for cs in counts.values() for c in cs) and exact
    got = ", ".join(f"{side} {'/'.join(map(str, cs))}" for side, cs in counts.items())

    if mlflow_error is not None or not mlflow_runs:
        why = mlflow_error or "not run"
        print(f"\nMLflow not measured: {why}", file=sys.stderr)
        return [
            *rows,
            Row("MLflow: not measured (reason on stderr)", why.splitlines()[0][:80], "-", "FAIL"),
            Row(
                "ratio MLflow log_metric / conveyor step API",
                "n/a",
                f">= {RATIO_GOAL:.0f}x",
                "FAIL",
            ),
            Row(
                f"read back: {n:,} rows per run, iterations + values exact (conveyor)",
                "all runs" if verified else f"NO: {got}",
                "all runs",
                "ok" if verified else "FAIL",
            ),
        ]

    def ml(key: str) -> list[float]:
        return [m[key] for m in mlflow_runs]

    first = mlflow_runs[0]
    ml_metric, ml_batch = ml("log_metric_s"), ml("log_batch_s")
    rows += [
        Row(
            f"MLflow {first['mlflow']} per-call: mlflow.log_metric x{n:,}, 1 tx each "
            f"(journal {first['journal_mode']})",
            timing(ml_metric, n),
        ),
        Row(
            f"MLflow batch: MlflowClient.log_batch, {n // MLFLOW_BATCH} calls of {MLFLOW_BATCH:,}",
            timing(ml_batch, n),
        ),
    ]
    if wal:
        rows.append(
            Row(
                f"MLflow per-call, DB made in journal {first['wal_journal_mode']} (reference)",
                timing(ml("wal_log_metric_s"), n),
            )
        )
    rows += [
        Row("  MLflow: import mlflow (excluded)", spread(ml("import_s"))),
        Row(
            "  MLflow: set_tracking_uri + start_run, creates the DB (excluded)",
            spread(ml("setup_s")),
        ),
        ratio_row(
            "ratio MLflow per-call / conveyor step API (buffered) [headline]",
            ml_metric,
            step,
            RATIO_GOAL,
        ),
        ratio_row(
            "ratio MLflow per-call / conveyor per-call (both unbuffered)",
            ml_metric,
            call,
            None,
        ),
    ]
    if wal:
        rows.append(
            ratio_row(
                "  same, MLflow's DB in WAL (conveyor: WAL, synchronous=NORMAL)",
                ml("wal_log_metric_s"),
                call,
                None,
            )
        )
    rows.append(
        ratio_row("ratio MLflow batch / conveyor bulk (both batched)", ml_batch, bulk, None)
    )
    names = ("log_metric", "log_batch", *(("wal_log_metric",) if wal else ()))
    ml_counts = [m[f"{k}_rows"] for m in mlflow_runs for k in names]
    ml_exact = all(m[f"{k}_exact"] for m in mlflow_runs for k in names)
    all_ok = verified and ml_exact and all(c == n for c in ml_counts)
    total = sum(len(cs) for cs in counts.values()) + len(ml_counts)
    rows.append(
        Row(
            f"read back: {n:,} rows per run, iterations + values exact",
            f"all {total} runs" if all_ok else f"NO: {got}, mlflow {ml_counts} exact={ml_exact}",
            "all runs",
            "ok" if all_ok else "FAIL",
        )
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=10_000, help="values logged (default 10000)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="measurements of each conveyor variant (default 3)"
    )
    parser.add_argument(
        "--mlflow-repeat",
        type=int,
        default=1,
        help="MLflow measurements (default 1; each takes about 1.5-3 min)",
    )
    parser.add_argument(
        "--no-wal", action="store_true", help="skip the reference run of MLflow on a WAL database"
    )
    args = parser.parse_args(argv)
    if args.metrics < MLFLOW_BATCH or args.repeat < 1 or args.mlflow_repeat < 1:
        parser.error(
            f"--metrics must be at least {MLFLOW_BATCH}, --repeat and --mlflow-repeat at least 1"
        )
    for var in _ENV_OVERRIDES:
        os.environ.pop(var, None)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        rows = section(
            "metric logging",
            f">= {RATIO_GOAL:.0f}x",
            lambda: bench(
                args.metrics, args.repeat, args.mlflow_repeat, not args.no_wal, Path(tmp)
            ),
        )
    print(
        f"\nmetric logging: conveyor vs {', '.join(PEERS)} on SQLite "
        f"(python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, {sys.platform}, "
        f"{os.cpu_count()} cpus)\n"
    )
    print_table(rows)
    print(
        "\nThe headline ratio is the same training-loop code on each side: conveyor's step API "
        "buffers in memory and writes one bulk INSERT when the step ends, MLflow's log_metric "
        "writes each call. The per-call and batch ratios compare like with like. SQLite "
        "settings differ: conveyor opens its store in WAL mode with synchronous=NORMAL, MLflow "
        "keeps SQLite's defaults (rollback journal, synchronous=FULL: an fsync per commit); the "
        "WAL reference row shows how much of MLflow's per-call time that explains."
    )
    print(f"benchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
