"""Model quality on real tables: conveyor's default line vs a plain HistGradientBoosting.

Run from the repository root::

    .venv/bin/python bench/quality.py [--tables iris,wage,...] [--keep DIR] [--hgb-only]

For each table of the real-data corpus (tests/corpus/tables.py, data bundled in installed
packages, nothing downloaded), the script writes the table's ``train.csv`` (85% of the rows,
seeded) and ``holdout.csv`` to a temporary folder, then runs what a new user runs:
``conveyor init DIR --from train.csv --target COL`` and ``conveyor run -p DIR`` as
subprocesses, with no edits in between. From the run's stores it takes the train and test
split the run used and the chosen model's test metrics (the ``evaluation`` artifact). A
``HistGradientBoostingClassifier()`` / ``HistGradientBoostingRegressor()`` with default
settings (``random_state`` fixed) is fitted on the same train split and scored on the same test
split with the same metric function (``conveyor.evaluation.metrics``), so both scores mean the
same thing. ``--hgb-only`` skips conveyor and splits ``train.csv`` itself, to check the corpus,
the baseline and the printing without a conveyor that has ``init --from``.

Prints one row per table and then the issue's goals, each PASS or FAIL. It is a report, not a
test: the exit code is 0 even when a goal is missed. See bench/README.md.
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
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SEED = 42
HGB_MAX_CATEGORIES = 255  # HistGradientBoosting's limit for a native categorical feature
TOLERANCE = 0.01  # conveyor may trail HGB by this much and still count as "as good"
WORST = 0.03  # and never by more than this
SHARE_GOAL = 0.80  # of the tables within TOLERANCE
TIME_GOAL_S = 60.0  # per `conveyor run`, for tables below TIME_GOAL_ROWS rows
TIME_GOAL_ROWS = 10_000
RUN_TIMEOUT_S = 1800
# Settings that would point the CLI at someone else's project.
_ENV_OVERRIDES = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI")
# Error metrics (lower is better): on regression tables the comparison uses R2 instead, whose
# scale (1 = perfect, 0 = the mean) gives the 0.01 / 0.03 thresholds a meaning on every table.
_ERROR_METRICS = {"rmse", "mse", "mae"}

HEADER = f"""\
conveyor's default line vs HistGradientBoosting with default settings, on real tables.
- rows: rows of train.csv (85% of the table, seeded). `conveyor init --from` + `conveyor run`
  split them into a train and a test split; HGB is fitted on that same train split and scored
  on that same test split (rows with no target left out, as conveyor does).
- metric: the primary metric of the conveyor.yaml that `init --from` wrote, computed for both
  models by conveyor.evaluation.metrics (binary f1: the positive class conveyor used, in
  brackets). Regression is compared on r2 whatever the primary (rmse and mae have no common
  scale across tables); the primary is then named in brackets. model: conveyor's chosen model.
- HGB input: the split's columns minus the target and conveyor.yaml's features.drop; text
  columns with up to {HGB_MAX_CATEGORIES} distinct values as pandas categoricals
  (categorical_features="from_dtype"), columns with more (HGB's limit) as the rank of the
  value; dates as text; booleans as 0/1. random_state={SEED}, no tuning.
- delta = conveyor - HGB (positive: conveyor better). verdict: ok when delta >= -{TOLERANCE},
  worse down to -{WORST}, FAIL below; "slow" when a table under {TIME_GOAL_ROWS:,} rows took
  over {TIME_GOAL_S:.0f} s; the run's status when not succeeded ("gated": model refused).
- conveyor s: wall time of `conveyor run -p DIR` (a subprocess: start-up, imports, every step).
  HGB s: fit + predict in this process."""

HGB_ONLY_HEADER = f"""\
--hgb-only: no conveyor. HistGradientBoosting with default settings (random_state={SEED}) on
train.csv (85% of the table, seeded), split 80/20 here (stratified for classes, seed {SEED}),
rows with no target left out. metric: binary f1 of the rarer class (in brackets), multiclass
macro f1, regression r2. Text columns as in the full run: up to {HGB_MAX_CATEGORIES} distinct
values as categoricals, more as the rank of the value. HGB s: fit + predict."""


@dataclass
class Result:
    """One table's line of the report."""

    table: str
    rows: int
    task: str
    metric: str = "-"
    conveyor: float | None = None
    model: str = "-"
    hgb: float | None = None
    conveyor_s: float | None = None
    hgb_s: float | None = None
    status: str = "-"  # conveyor's run status: succeeded, gated, failed
    error: str | None = None

    @property
    def delta(self) -> float | None:
        if self.conveyor is None or self.hgb is None:
            return None
        return self.conveyor - self.hgb

    def verdict(self) -> str:
        if self.error:
            return "error (below)"
        delta = self.delta
        if delta is None:
            return "-"
        words = ["ok" if delta >= -TOLERANCE else "worse" if delta >= -WORST else "FAIL"]
        if self.slow:
            words.append("slow")
        if self.status not in ("succeeded", "-"):
            words.append(self.status)
        return ", ".join(words)

    @property
    def slow(self) -> bool:
        return (
            self.rows < TIME_GOAL_ROWS
            and self.conveyor_s is not None
            and self.conveyor_s > TIME_GOAL_S
        )


# -- the corpus ----------------------------------------------------------------------------------


def corpus() -> Any:
    """``tests.corpus.tables`` (the repository root is not on ``sys.path`` for a bench script)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import tests.corpus.tables as tables

    return tables


# -- HistGradientBoosting on the same split ------------------------------------------------------


def hgb_inputs(train: Any, test: Any, target: str, drop: list[str]) -> tuple[Any, Any]:
    """``X_train, X_test`` for HistGradientBoosting: numbers as floats, booleans as 0/1, text
    as categoricals (categories from the train split) or, past HGB's category limit, as the
    rank of the value among the train split's values (unknown values -> NaN)."""
    import numpy as np
    import pandas as pd

    columns = [c for c in train.columns if c != target and c not in drop]
    out_train, out_test = {}, {}
    for name in columns:
        a, b = train[name], test[name]
        if pd.api.types.is_bool_dtype(a) or pd.api.types.is_numeric_dtype(a):
            out_train[name], out_test[name] = a.astype("float64"), b.astype("float64")
            continue
        a, b = a.astype("string"), b.astype("string")  # text, categories, dates as text
        categories = sorted(a.dropna().unique())
        coded_a = pd.Categorical(a, categories=categories)
        coded_b = pd.Categorical(b.where(b.isin(categories)), categories=categories)
        if len(categories) <= HGB_MAX_CATEGORIES:
            out_train[name] = pd.Series(coded_a, index=a.index)
            out_test[name] = pd.Series(coded_b, index=b.index)
        else:
            out_train[name] = pd.Series(np.where(coded_a.codes < 0, np.nan, coded_a.codes), a.index)
            out_test[name] = pd.Series(np.where(coded_b.codes < 0, np.nan, coded_b.codes), b.index)
    return pd.DataFrame(out_train), pd.DataFrame(out_test)


def fit_hgb(
    train: Any, test: Any, *, target: str, drop: list[str], task: str, positive: Any
) -> tuple[dict[str, float], float]:
    """Default HGB fitted on ``train`` and scored on ``test`` by conveyor's metric functions;
    returns ``(metrics, seconds for fit + predict)``. Rows with no target are left out."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from conveyor.evaluation.metrics import classification_metrics, regression_metrics

    train, test = train[train[target].notna()], test[test[target].notna()]
    X_train, X_test = hgb_inputs(train, test, target, drop)
    y_train, y_test = train[target], test[target]
    kwargs: dict[str, Any] = {"categorical_features": "from_dtype", "random_state": SEED}
    # OpenMP may have started before OMP_NUM_THREADS was set: apply it explicitly
    threads = os.environ.get("OMP_NUM_THREADS")
    limit = int(threads) if threads and threads.isdigit() else None
    with threadpool_limits(limits=limit, user_api="openmp"):
        start = time.perf_counter()
        if task == "regression":
            y_train, y_test = y_train.astype("float64"), y_test.astype("float64")
            model = HistGradientBoostingRegressor(**kwargs).fit(X_train, y_train)
            pred = model.predict(X_test)
            took = time.perf_counter() - start
            return regression_metrics(y_test, pred), took
        model = HistGradientBoostingClassifier(**kwargs).fit(X_train, y_train)
        pred, proba = model.predict(X_test), model.predict_proba(X_test)
        took = time.perf_counter() - start
    scores = classification_metrics(
        y_test, pred, proba, classes=list(model.classes_), positive=positive
    )
    return scores, took


def compared_metric(primary: str, task: str) -> tuple[str, str]:
    """``(metric compared, label shown)``: the primary, or r2 for a regression error metric."""
    if task == "regression" and primary in _ERROR_METRICS:
        return "r2", f"r2 (primary {primary})"
    return primary, primary


def higher_is_better(metric: str) -> bool:
    from conveyor.evaluation.metrics import higher_is_better as better

    return better(metric)


# -- conveyor -------------------------------------------------------------------------------------


def conveyor_exe() -> Path:
    """The ``conveyor`` console script next to this interpreter (the project's venv)."""
    here = Path(sys.executable).parent / "conveyor"
    return here if here.exists() else REPO / ".venv" / "bin" / "conveyor"


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_OVERRIDES}
    env.update({"NO_COLOR": "1", "COLUMNS": "200"})
    return env


def init_has_from() -> bool:
    """Whether this conveyor's ``init`` takes ``--from`` (the option being built for issue 11)."""
    proc = subprocess.run(
        [str(conveyor_exe()), "init", "--help"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
        check=False,
    )
    return "--from" in proc.stdout


def cli(args: list[str | Path], *, timeout: float) -> tuple[Any, float]:
    """``(completed process, wall seconds)`` of one CLI command."""
    start = time.perf_counter()
    proc = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        check=False,
    )
    return proc, time.perf_counter() - start


def tail(proc: subprocess.CompletedProcess[str], limit: int = 400) -> str:
    """The last lines of a failed command's output, on one line."""
    text = (proc.stderr or proc.stdout or "").strip()
    return " | ".join(text.splitlines()[-4:])[-limit:] or f"exit {proc.returncode}"


def bench_conveyor(table: Any, folder: Path, frame: Any, *, timeout: float) -> Result:
    """init --from, run, then both models scored on the run's own split."""
    import pandas as pd

    from conveyor.project import Project

    tables = corpus()
    # the project folder is named after the table (so is the model); its data in data/
    project = folder
    train_csv, _ = tables.write_split(table, project / "data", frame=frame)
    rows = len(pd.read_csv(train_csv))  # not a line count: quoted text may hold newlines
    result = Result(table.name, rows, table.task)
    proc, _ = cli(
        [conveyor_exe(), "init", project, "--from", train_csv, "--target", table.target],
        timeout=timeout,
    )
    if proc.returncode != 0:
        result.error = f"conveyor init: {tail(proc)}"
        return result
    proc, result.conveyor_s = cli([conveyor_exe(), "run", "-p", project, "--json"], timeout=timeout)
    try:
        summary = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result.error = f"conveyor run (exit {proc.returncode}): {tail(proc)}"
        return result
    result.status = summary["status"]
    digests = {
        name: digest for step in summary["steps"] for name, digest in step["outputs"].items()
    }
    missing = [name for name in ("train", "test", "evaluation") if name not in digests]
    if missing:
        failed = [f"{s['name']}: {s['error']}" for s in summary["steps"] if s.get("error")]
        why = failed[0] if failed else summary.get("error") or "no error recorded"
        result.error = f"run {summary['status']}, no {', '.join(missing)}: {why}"[:400]
        return result
    # conveyor.yaml as conveyor reads it: target, features.drop, evaluation.primary
    with Project.load(project) as proj:
        config = proj.config
        train, test = proj.load_artifact(digests["train"]), proj.load_artifact(digests["test"])
        evaluation = proj.load_artifact(digests["evaluation"]).to_json()
    assert config.data is not None  # init --from always writes a data section
    target, drop = config.data.target, list(config.features.drop)
    primary = config.evaluation.primary
    metric, result.metric = compared_metric(primary, evaluation["task"])
    if metric == "f1" and table.task == "binary":
        result.metric = f"f1 ({evaluation.get('positive')})"
    elif metric == "f1" and table.task == "multiclass":
        result.metric = "f1 (macro)"
    result.model = str(evaluation.get("best", "-"))
    result.conveyor = evaluation["metrics"].get(metric)
    hgb_scores, result.hgb_s = fit_hgb(
        train,
        test,
        target=target,
        drop=drop,
        task=evaluation["task"],
        positive=evaluation.get("positive"),
    )
    result.hgb = hgb_scores.get(metric)
    if not higher_is_better(metric) and result.conveyor is not None and result.hgb is not None:
        result.conveyor, result.hgb = -result.conveyor, -result.hgb  # delta > 0: conveyor better
        result.metric = f"-{result.metric}"
    if result.conveyor is None or result.hgb is None:
        result.error = f"metric {metric!r} missing from the scores"
    return result


def bench_hgb_only(table: Any, folder: Path, frame: Any) -> Result:
    """HGB alone on train.csv split 80/20 here: checks the corpus, the baseline and printing."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    tables = corpus()
    train_csv, _ = tables.write_split(table, folder, frame=frame)
    data = pd.read_csv(train_csv)
    result = Result(table.name, len(data), table.task)
    data = data[data[table.target].notna()]
    y = data[table.target]
    classes = table.task != "regression"
    stratify = y if classes and y.value_counts().min() >= 2 else None
    train, test = train_test_split(data, test_size=0.2, random_state=SEED, stratify=stratify)
    positive = y.value_counts().idxmin() if table.task == "binary" else None
    task = "classification" if classes else "regression"
    metric = "r2" if task == "regression" else "f1"
    result.metric = {"binary": f"f1 ({positive})", "multiclass": "f1 (macro)"}.get(
        table.task, metric
    )
    scores, result.hgb_s = fit_hgb(
        train, test, target=table.target, drop=[], task=task, positive=positive
    )
    result.hgb = scores[metric]
    return result


# -- printing -------------------------------------------------------------------------------------


def fmt_score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def print_rows(header: list[str], rows: list[list[str]], right: set[int]) -> None:
    """An aligned plain-text table: no wrapping, no truncation, whatever the terminal."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(header))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def print_results(results: list[Result], *, hgb_only: bool) -> None:
    header = ["table", "rows", "task", "metric", "conveyor", "model", "HGB", "delta"]
    header += ["conveyor s", "HGB s", "verdict"]
    rows = []
    for r in results:
        delta = r.delta
        rows.append(
            [
                r.table,
                f"{r.rows:,}",
                r.task,
                r.metric,
                fmt_score(r.conveyor),
                r.model,
                fmt_score(r.hgb),
                "-" if delta is None else f"{delta:+.3f}",
                fmt_s(r.conveyor_s),
                fmt_s(r.hgb_s),
                "-" if hgb_only and not r.error else r.verdict(),
            ]
        )
    print_rows(header, rows, right={1, 4, 6, 7, 8, 9})
    errors = [r for r in results if r.error]
    if errors:
        print("\nerrors:")
        for r in errors:
            print(f"  {r.table}: {r.error}")


def goals(results: list[Result]) -> list[list[str]]:
    """The issue's three goals with the numbers behind each; an error counts as a miss."""
    n = len(results)
    within = [r for r in results if r.delta is not None and r.delta >= -TOLERANCE]
    share = len(within) / n if n else 0.0
    scored = [r for r in results if r.delta is not None]
    failed = [r.table for r in results if r.delta is None]
    worst = min(scored, key=lambda r: r.delta or 0.0) if scored else None
    worst_text = "-" if worst is None else f"worst {worst.delta:+.3f} ({worst.table})"
    never_worse = not failed and (worst is None or (worst.delta or 0.0) >= -WORST)
    small = [r for r in results if r.rows < TIME_GOAL_ROWS]
    timed = [r for r in small if r.conveyor_s is not None]
    slowest = max(timed, key=lambda r: r.conveyor_s or 0.0) if timed else None
    in_time = len(timed) == len(small) and not any(r.slow for r in small)
    slow_text = (
        "-"
        if slowest is None
        else f"max {slowest.conveyor_s:.1f} s ({slowest.table}), "
        f"median {statistics.median(r.conveyor_s or 0.0 for r in timed):.1f} s, "
        f"{sum(r.slow for r in small)} over"
    )
    if failed:
        worst_text += f"; no score: {', '.join(failed)}"
    return [
        [
            f"conveyor >= HGB - {TOLERANCE} on >= {SHARE_GOAL:.0%} of tables",
            f"{len(within)}/{n} ({share:.0%})",
            "PASS" if n and share >= SHARE_GOAL else "FAIL",
        ],
        [
            f"never worse by more than {WORST}",
            worst_text,
            "PASS" if scored and never_worse else "FAIL",
        ],
        [
            f"under {TIME_GOAL_S:.0f} s per table below {TIME_GOAL_ROWS:,} rows",
            f"{len(timed)}/{len(small)} timed; {slow_text}",
            "PASS" if small and in_time else "FAIL",
        ],
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", help="comma-separated corpus table names (default: all)")
    parser.add_argument("--keep", type=Path, help="write the projects here and keep them")
    parser.add_argument(
        "--hgb-only", action="store_true", help="no conveyor: HGB on a split made here"
    )
    parser.add_argument(
        "--timeout", type=float, default=RUN_TIMEOUT_S, help="seconds per conveyor command"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="OpenMP threads for both sides (sets OMP_NUM_THREADS); default: the environment's",
    )
    args = parser.parse_args(argv)
    tables = corpus()
    chosen = list(tables.TABLES)
    if args.tables:
        names = [n.strip() for n in args.tables.split(",") if n.strip()]
        unknown = [n for n in names if n not in tables.BY_NAME]
        if unknown:
            parser.error(f"unknown tables {unknown}; choose from {', '.join(tables.BY_NAME)}")
        chosen = [tables.BY_NAME[n] for n in names]
    if not args.hgb_only and not init_has_from():
        parser.error(
            f"{conveyor_exe()} init has no --from option yet; run with --hgb-only to check the "
            "corpus and the baseline"
        )
    for var in _ENV_OVERRIDES:
        os.environ.pop(var, None)
    if args.threads is not None:
        if args.threads < 1:
            parser.error("--threads must be at least 1")
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # conveyor's subprocesses inherit it

    print(HGB_ONLY_HEADER if args.hgb_only else HEADER)
    # both sides use OpenMP threads (HGB, LightGBM): on a busy machine that skews every time
    threads = os.environ.get("OMP_NUM_THREADS", "unset (all cores)")
    print(
        f"- machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
        f"OMP_NUM_THREADS={threads} for both sides\n"
        "  (on a busy machine, OpenMP threads waiting for a core can make a fit many times\n"
        "  slower: compare times with --threads 1)"
    )
    print()
    started = time.perf_counter()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-quality-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp)
        for table in chosen:
            folder = root / table.name
            print(f"  {table.name} ...", file=sys.stderr, flush=True)
            try:
                frame = table.load()
                if args.hgb_only:
                    results.append(bench_hgb_only(table, folder, frame))
                else:
                    results.append(bench_conveyor(table, folder, frame, timeout=args.timeout))
            except Exception as exc:
                traceback.print_exc()
                results.append(
                    Result(table.name, 0, table.task, error=f"{type(exc).__name__}: {exc}"[:400])
                )
    print_results(results, hgb_only=args.hgb_only)
    print()
    if args.hgb_only:
        print("goals: not checked with --hgb-only (no conveyor scores)")
    else:
        print_rows(["goal", "value", "ok?"], goals(results), right=set())
    if args.keep:
        print(f"\nprojects kept in {args.keep.resolve()}")
    print(f"\ntook {time.perf_counter() - started:.0f} s for {len(chosen)} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
