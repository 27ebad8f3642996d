"""Metric logging: 10,000 values through conveyor's API, side by side with MLflow 3 on SQLite.

Run from the repository root::

    .venv/bin/python bench/tracking.py [--metrics 10000] [--repeat 3] [--sqlite-defaults]

MLflow is not a conveyor dependency. It is pinned in bench/_peers.py, installed on first use
into ``bench/.venv-peers`` and measured in a subprocess of that venv's python. conveyor is
measured in this process. Both write a SQLite file in the same temporary folder, with the same
SQLite settings: every connection of both tools gets the same journal mode and synchronous
setting, and the table shows what each connection had. The goals compare like with like only:
one write per call against one write per call, and the same batches against the same batches.
Store opening and database creation are timed apart and left out on both sides.

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

from _peers import PEERS, PeerEnvError, describe, peer_python
from _report import Row, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Sequence

RATIO_GOAL = 20.0  # MLflow time / conveyor time, per call and batched, same SQLite settings
BATCH = 1000  # MLflow's limit of metrics per log_batch call; conveyor's batches are the same
KEY = "loss"
CHILD_TIMEOUT_S = 1800
# SQLite settings per mode: (journal_mode, synchronous), as PRAGMA reads them back.
# "wal" is conveyor's own setting, "defaults" is SQLite's (and MLflow's, which sets neither).
MODES = {"wal": ("wal", "NORMAL"), "defaults": ("delete", "FULL")}
_SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
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
        return f"{fmt(values[0])} (n=1)"
    return (
        f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))}, n={len(values)})"
    )


def timing(values: Sequence[float], n: int) -> str:
    """``median (min-max, n=K), N metrics/s``."""
    return f"{spread(values)}, {n / statistics.median(values):,.0f} metrics/s"


def curve(n: int) -> list[float]:
    """A made-up loss curve: decaying, with a deterministic wobble (same values on both sides)."""
    return [2.0 / (1 + 0.002 * i) + 0.01 * ((i * 7919) % 101) / 101 for i in range(n)]


def describe_settings(seen: Sequence[Sequence[Any]]) -> str:
    """``wal/NORMAL`` for the (journal_mode, synchronous) pairs seen, ``a/B, c/D`` if mixed."""
    names = sorted({f"{j}/{_SYNC_NAMES.get(int(s), s)}" for j, s in seen})
    return ", ".join(names) or "none seen"


# -- MLflow, in the peer venv ------------------------------------------------------------------

MLFLOW_SCRIPT = textwrap.dedent(
    """
    import json, sqlite3, sys, time

    tmp, values_file, batch, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    seen = set()

    started = time.perf_counter()
    import sqlalchemy
    from sqlalchemy import event
    from sqlalchemy.engine import Engine


    # Every SQLAlchemy engine, so every connection MLflow opens. "wal": conveyor's settings.
    # "defaults": nothing is set, as MLflow ships (it sets only foreign_keys, busy_timeout and
    # case_sensitive_like, per session). Either way, read back what the connection has.
    @event.listens_for(Engine, "connect")
    def _settings(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        if mode == "wal":
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        journal = cur.execute("PRAGMA journal_mode").fetchone()[0]
        sync = cur.execute("PRAGMA synchronous").fetchone()[0]
        seen.add((journal, sync))
        cur.close()


    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    imported = time.perf_counter() - started

    values = json.loads(open(values_file).read())
    n = len(values)
    out = {
        "mlflow": mlflow.__version__, "sqlalchemy": sqlalchemy.__version__,
        "sqlite": sqlite3.sqlite_version, "import_s": imported,
    }

    started = time.perf_counter()
    client = MlflowClient(f"sqlite:///{tmp}/mlflow_{mode}.db")
    experiment = client.create_experiment("tracking-bench")  # creates and migrates the DB
    run = client.create_run(experiment)
    out["setup_s"] = time.perf_counter() - started

    started = time.perf_counter()
    for i, v in enumerate(values):
        client.log_metric(run.info.run_id, "loss", v, step=i)
    out["call_s"] = time.perf_counter() - started
    client.set_terminated(run.info.run_id)

    run2 = client.create_run(experiment)
    now = int(time.time() * 1000)
    metrics = [Metric("loss", v, now, i) for i, v in enumerate(values)]
    started = time.perf_counter()
    for k in range(0, n, batch):
        client.log_batch(run2.info.run_id, metrics=metrics[k : k + batch])
    out["batch_s"] = time.perf_counter() - started
    client.set_terminated(run2.info.run_id)

    for name, run_id in (("call", run.info.run_id), ("batch", run2.info.run_id)):
        got = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
        out[name + "_rows"] = len(got)
        out[name + "_exact"] = got == list(enumerate(values))
    out["settings"] = sorted(seen)
    print(json.dumps(out))
    """
)


def mlflow_once(python: Path, tmp: Path, values_file: Path, mode: str) -> dict[str, Any]:
    """One MLflow measurement (per call, then batched) in a fresh folder; its JSON as a dict.

    Raises:
        RuntimeError: the child failed (its stderr tail is in the message).
    """
    tmp.mkdir()
    script = tmp / "mlflow_bench.py"
    script.write_text(MLFLOW_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in _ENV_OVERRIDES}
    env["MLFLOW_ENABLE_ASYNC_LOGGING"] = "false"  # MLflow's default, made explicit
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"  # no usage reports from the benchmark
    env["DO_NOT_TRACK"] = "true"
    proc = subprocess.run(
        [str(python), str(script), str(tmp), str(values_file), str(BATCH), mode],
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


def _check(db: Path, run_id: str, values: list[float]) -> tuple[int, bool]:
    """``(rows, exact)`` of ``loss`` for ``run_id``: the count, and iterations + values equal."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT iteration, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY iteration",
            (run_id, KEY),
        ).fetchall()
    finally:
        con.close()
    return len(rows), rows == list(enumerate(values))


def conveyor_store(
    tmp: Path, name: str, values: list[float], mode: str, chunk: int | None
) -> dict[str, Any]:
    """``store.log_metrics``: one call per value (``chunk`` None) or calls of ``chunk`` rows.

    The store opens as it ships (WAL, synchronous=NORMAL). For ``mode == "defaults"`` its
    connections are switched to SQLite's defaults (rollback journal, synchronous=FULL) before
    anything is timed. In both modes the settings of every connection are read back.
    """
    from sqlalchemy import event

    from conveyor.store.metadata import RunStatus, open_metadata_store

    tmp.mkdir(exist_ok=True)
    db = tmp / f"conveyor_{name}.db"  # a fresh file per variant
    started = time.perf_counter()
    store = open_metadata_store(f"sqlite:///{db}")
    opened = time.perf_counter() - started
    seen: set[tuple[str, int]] = set()
    # A benchmark-only hook on the store's engine (a private attribute): close the connections
    # made while opening, so every later one also runs this listener, after conveyor's own.
    engine = store._engine
    engine.dispose()

    @event.listens_for(engine, "connect")
    def _settings(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if mode == "defaults":
            cur.execute("PRAGMA journal_mode=DELETE")
            cur.execute("PRAGMA synchronous=FULL")
        seen.add(
            (
                cur.execute("PRAGMA journal_mode").fetchone()[0],
                cur.execute("PRAGMA synchronous").fetchone()[0],
            )
        )
        cur.close()

    try:
        run_id, _ = store.create_run("tracking", [], executor="bench")  # connects: not timed
        started = time.perf_counter()
        if chunk is None:
            for i, v in enumerate(values):
                store.log_metrics(run_id, {KEY: v}, iteration=i)
        else:
            rows = [(KEY, v, i) for i, v in enumerate(values)]
            for k in range(0, len(rows), chunk):
                store.log_metrics(run_id, rows[k : k + chunk])
        took = time.perf_counter() - started
        store.finish_run(run_id, RunStatus.SUCCEEDED)
    finally:
        store.close()
    count, exact = _check(db, run_id, values)
    return {"open_s": opened, "run_s": took, "rows": count, "exact": exact, "settings": seen}


def conveyor_step_api(tmp: Path, values: list[float]) -> dict[str, Any]:
    """A one-step pipeline whose step calls ``ctx.log_metric`` once per value (buffered)."""
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
    tmp.mkdir(exist_ok=True)
    db = tmp / "conveyor_step.db"
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
    count, exact = _check(db, result.run_id, values)
    return {"open_s": opened, "run_s": wall, "body_s": body[0], "rows": count, "exact": exact}


# -- the report --------------------------------------------------------------------------------


def ratio_row(label: str, slow: list[float], fast: list[float], goal: float | None) -> Row:
    """``slow / fast`` of the medians; judged against ``goal`` when there is one."""
    ratio = statistics.median(slow) / statistics.median(fast)
    if goal is None:
        return Row(label, f"{ratio:,.1f}x")
    return Row(label, f"{ratio:,.1f}x", f">= {goal:.0f}x", "ok" if ratio >= goal else "FAIL")


class Results:
    """Every measurement of one benchmark run, by side and variant."""

    def __init__(self) -> None:
        self.conveyor: dict[str, list[dict[str, Any]]] = {}
        self.mlflow: dict[str, list[dict[str, Any]]] = {}
        self.mlflow_error: str | None = None
        self.load: tuple[float, float] = (0.0, 0.0)  # 1-min load average before / after

    def add(self, side: str, variant: str, result: dict[str, Any]) -> None:
        runs = self.conveyor if side == "conveyor" else self.mlflow
        runs.setdefault(variant, []).append(result)

    def conv(self, variant: str, key: str = "run_s") -> list[float]:
        return [float(m[key]) for m in self.conveyor.get(variant, [])]

    def ml(self, mode: str, key: str) -> list[float]:
        return [float(m[key]) for m in self.mlflow.get(mode, [])]


def measure(n: int, repeat: int, modes: Sequence[str], root: Path) -> tuple[Results, str]:
    """Run every variant ``repeat`` times, interleaved: per round and mode, conveyor then MLflow
    (MLflow first in odd rounds). Returns the results and the peer versions (or the error)."""
    values = curve(n)
    values_file = root / "values.json"
    values_file.write_text(json.dumps(values))
    res = Results()
    python: Path | None = None
    peers = ""
    try:
        python = peer_python()
        peers = describe(python, PEERS)
    except PeerEnvError as exc:
        res.mlflow_error = str(exc)

    def conveyor_side(r: int, mode: str) -> None:
        where = root / f"conveyor{r}"
        res.add(
            "conveyor", f"{mode}-call", conveyor_store(where, f"{mode}-call", values, mode, None)
        )
        res.add(
            "conveyor", f"{mode}-batch", conveyor_store(where, f"{mode}-batch", values, mode, BATCH)
        )
        if mode == "wal":  # context rows, conveyor as it ships
            res.add("conveyor", "bulk", conveyor_store(where, "bulk", values, mode, n))
            res.add("conveyor", "step", conveyor_step_api(where, values))

    def mlflow_side(r: int, mode: str) -> None:
        if python is None or res.mlflow_error is not None:
            return
        print(f"[mlflow] round {r + 1}/{repeat}, SQLite {mode} ...", file=sys.stderr, flush=True)
        try:
            res.add(
                "mlflow", mode, mlflow_once(python, root / f"mlflow{r}{mode}", values_file, mode)
            )
        except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
            res.mlflow_error = f"{type(exc).__name__}: {exc}"
            print(f"MLflow measurement failed: {res.mlflow_error}", file=sys.stderr)

    before = os.getloadavg()[0]
    for r in range(repeat):
        for mode in modes:
            first, second = (
                (conveyor_side, mlflow_side) if r % 2 == 0 else (mlflow_side, conveyor_side)
            )
            first(r, mode)
            second(r, mode)
    res.load = (before, os.getloadavg()[0])
    return res, peers or f"not installed: {res.mlflow_error}"


def mode_rows(res: Results, n: int, mode: str, *, goals: bool) -> list[Row]:
    """The like-for-like rows of one SQLite setting: per call and batched, both sides."""
    journal, sync = MODES[mode]
    want = f"{journal}/{sync}"
    goal = RATIO_GOAL if goals else None
    goal_text = f">= {RATIO_GOAL:.0f}x" if goals else "-"
    call, batch = res.conv(f"{mode}-call"), res.conv(f"{mode}-batch")
    conv_seen = [
        s for v in ("call", "batch") for m in res.conveyor[f"{mode}-{v}"] for s in m["settings"]
    ]
    ml_runs = res.mlflow.get(mode, [])
    ml_seen = [s for m in ml_runs for s in m["settings"]]
    same = describe_settings(conv_seen) == want and (
        not ml_runs or describe_settings(ml_seen) == want
    )
    rows = [
        Row(
            "  SQLite journal/synchronous read back on every connection",
            f"conveyor {describe_settings(conv_seen)}"
            + (f", MLflow {describe_settings(ml_seen)}" if ml_runs else ""),
            f"both {want}",
            "ok" if same else "FAIL",
        ),
        Row(
            f"  per call: conveyor store.log_metrics(run, {{k: v}}, iteration=i) x{n:,}",
            timing(call, n),
        ),
    ]
    if ml_runs:
        ml_call = res.ml(mode, "call_s")
        rows += [
            Row(
                f"  per call: MLflow MlflowClient.log_metric(run, k, v, step=i) x{n:,}",
                timing(ml_call, n),
            ),
            ratio_row("  ratio per call, MLflow / conveyor (medians)", ml_call, call, goal),
        ]
    else:
        rows.append(missing(res, "  ratio per call, MLflow / conveyor", goal_text))
    rows.append(
        Row(
            f"  batch: conveyor store.log_metrics(run, {BATCH:,} rows) x{n // BATCH}",
            timing(batch, n),
        )
    )
    if ml_runs:
        ml_batch = res.ml(mode, "batch_s")
        rows += [
            Row(
                f"  batch: MLflow MlflowClient.log_batch(run, {BATCH:,} metrics) x{n // BATCH}",
                timing(ml_batch, n),
            ),
            ratio_row("  ratio batch, MLflow / conveyor (medians)", ml_batch, batch, goal),
        ]
    else:
        rows.append(missing(res, "  ratio batch, MLflow / conveyor", goal_text))
    return rows


def missing(res: Results, label: str, goal: str) -> Row:
    """A ratio that could not be computed because MLflow was not measured."""
    why = (res.mlflow_error or "not run").strip().splitlines()[0][:60]
    return Row(f"{label}: MLflow not measured (stderr)", why, goal, "FAIL" if goal != "-" else "-")


def report(res: Results, n: int, modes: Sequence[str]) -> list[Row]:
    rows = [
        Row("LIKE FOR LIKE (the goals): WAL + synchronous=NORMAL on both sides", ""),
        *mode_rows(res, n, "wal", goals=True),
    ]
    if "defaults" in modes:
        rows += [
            Row("CONTEXT, no goal: both on SQLite's defaults (MLflow as it ships)", ""),
            *mode_rows(res, n, "defaults", goals=False),
        ]
    step, body = res.conv("step"), res.conv("step", "body_s")
    rows += [
        Row("CONTEXT, no goal: not the same work on both sides", ""),
        Row(f"  conveyor step API: ctx.log_metric x{n:,} in a step, whole run", timing(step, n)),
        Row(f"    of which the step body ({n:,} calls, buffered in memory)", spread(body)),
        Row(
            "    of which run bookkeeping + 1 bulk INSERT (run - body)",
            spread([s - b for s, b in zip(step, body, strict=True)]),
        ),
        Row(f"  conveyor store.log_metrics(run, {n:,} rows), 1 call", timing(res.conv("bulk"), n)),
    ]
    if res.mlflow.get("wal"):
        rows.append(
            ratio_row(
                "  MLflow per call (WAL) / conveyor step API",
                res.ml("wal", "call_s"),
                step,
                None,
            )
        )
    if res.mlflow.get("defaults"):
        rows.append(
            ratio_row(
                "  MLflow per call as shipped / conveyor step API (old headline)",
                res.ml("defaults", "call_s"),
                step,
                None,
            )
        )
    rows += [
        Row("EXCLUDED from every time above", ""),
        Row(
            "  conveyor: open a fresh SQLite store (create + migrate)",
            spread([m["open_s"] for runs in res.conveyor.values() for m in runs]),
        ),
    ]
    all_ml = [m for runs in res.mlflow.values() for m in runs]
    if all_ml:
        rows += [
            Row("  MLflow: import mlflow", spread([m["import_s"] for m in all_ml])),
            Row(
                "  MLflow: create_experiment + create_run (creates the DB)",
                spread([m["setup_s"] for m in all_ml]),
            ),
        ]
    counts = [m["rows"] for runs in res.conveyor.values() for m in runs]
    exact = all(m["exact"] for runs in res.conveyor.values() for m in runs)
    counts += [m[f"{k}_rows"] for m in all_ml for k in ("call", "batch")]
    exact = exact and all(m[f"{k}_exact"] for m in all_ml for k in ("call", "batch"))
    ok = exact and all(c == n for c in counts)
    rows.append(
        Row(
            f"read back: {n:,} rows per run, iterations + values exact",
            f"all {len(counts)} runs" if ok else f"NO: rows {sorted(set(counts))}, exact={exact}",
            "all runs",
            "ok" if ok else "FAIL",
        )
    )
    busy = " (busy: times are noisy)" if max(res.load) > 0.5 else ""
    rows.append(
        Row(
            "load average (1 min) before / after the measurements",
            f"{res.load[0]:.2f} / {res.load[1]:.2f} on {os.cpu_count()} cpus{busy}",
        )
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=10_000, help="values logged (default 10000)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measurements of every variant, the same on both sides (default 3)",
    )
    parser.add_argument(
        "--sqlite-defaults",
        action="store_true",
        help="also compare both sides on SQLite's defaults (rollback journal, synchronous=FULL: "
        "MLflow as it ships); an fsync per commit makes it slow (minutes per round)",
    )
    args = parser.parse_args(argv)
    if args.metrics < BATCH or args.metrics % BATCH or args.repeat < 1:
        parser.error(f"--metrics must be a multiple of {BATCH}, --repeat at least 1")
    for var in _ENV_OVERRIDES:
        os.environ.pop(var, None)
    modes = ("wal", "defaults") if args.sqlite_defaults else ("wal",)

    import sqlalchemy

    import conveyor

    started = time.perf_counter()
    peers = "?"
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:

        def run() -> list[Row]:
            nonlocal peers
            res, peers = measure(args.metrics, args.repeat, modes, Path(tmp))
            return report(res, args.metrics, modes)

        rows = section("metric logging", f">= {RATIO_GOAL:.0f}x", run)
    print(
        f"\nmetric logging: conveyor {conveyor.__version__} (sqlalchemy {sqlalchemy.__version__}) "
        f"vs MLflow (peer venv: {peers}); python {sys.version.split()[0]}, "
        f"sqlite {sqlite3.sqlite_version}, {sys.platform}, {os.cpu_count()} cpus\n"
    )
    print_table(rows)
    print(
        "\nGoals are judged on like-for-like rows only: one write (one transaction) per call on "
        f"both sides, and the same batches of {BATCH:,} on both sides, with the same SQLite "
        "journal mode and synchronous setting on every connection of both tools (read back "
        "above). Values are median (min-max, n=runs), each side measured the same number of "
        "times, interleaved; ratios divide the medians. Context rows carry no goal: the step "
        "API buffers in memory and writes once, MLflow as shipped keeps SQLite's defaults "
        "(rollback journal, synchronous=FULL: an fsync per commit)."
    )
    print(f"benchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
