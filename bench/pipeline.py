"""conveyor's overhead on a real line: the visa train line vs a plain script doing the same work.

Run from the repository root::

    .venv/bin/python bench/pipeline.py [--repeat 3] [--trials 4] [--no-cli]

The conveyor side is ``Project.load(DIR, overrides=...).run(use_cache=False)`` on a fresh copy of
the scaffolded visa project, in this process. The plain side, in the same process, on the same
CSV with the same seeds, calls the same library functions the line's steps call: read the CSV,
drop the rows the schema drops (``no_of_employees < 1``), a stratified split, then for each
candidate ``tuning.tune`` and ``candidates.fit_candidate``, then ``metrics.evaluate``,
``diagnostics.diagnose`` and ``report.build_report``. What conveyor does on top (schema
validation, fingerprints, artifact storage, metadata, gates, registration) is its overhead.

Prints one table (measure | value | goal | ok?). It is a report, not a test: the exit code is
always 0 and a missed goal shows as FAIL in the ok? column. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _report import Row, fmt, print_table, section

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from conveyor.config import ProjectConfig

REPO = Path(__file__).resolve().parents[1]
OVERHEAD_GOAL = 0.10
CLI_TIMEOUT_S = 1800
# Settings that would point the benchmark at someone else's store or project.
_ENV_OVERRIDES = ("CONVEYOR_PROJECT", "CONVEYOR_METADATA_URL", "CONVEYOR_ARTIFACTS_URI")
# What the plain script does in place of each group of the line's steps.
_LOAD, _SPLIT, _EVALUATE, _REPORT = "load", "split", "evaluate", "report"
# What both sides import (libraries and the conveyor functions the plain script calls), imported
# before any clock starts, so the side that happens to run first does not pay for it.
SHARED_IMPORTS = (
    "pandas",
    "sklearn.calibration",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.inspection",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "lightgbm",
    "optuna",
    "matplotlib.figure",
    "jinja2",
    "conveyor.evaluation.diagnostics",
    "conveyor.evaluation.metrics",
    "conveyor.evaluation.plots",
    "conveyor.evaluation.report",
    "conveyor.examples.visa.features",
    "conveyor.features.derive",
    "conveyor.features.preprocess",
    "conveyor.training.candidates",
    "conveyor.training.tuning",
)
OPTIONAL_SHARED_IMPORTS = ("distributed",)  # tune() looks for a Dask worker when installed


def signed(seconds: float) -> str:
    """A difference of durations, ``+1.20 s`` or ``-35.0 ms``."""
    return ("+" if seconds >= 0 else "-") + fmt(abs(seconds))


def spread(values: Sequence[float]) -> str:
    """``median (min-max, n=K)`` of durations."""
    if len(values) == 1:
        return fmt(values[0])
    return (
        f"{fmt(statistics.median(values))} ({fmt(min(values))}-{fmt(max(values))}, n={len(values)})"
    )


def conveyor_exe() -> Path:
    """The ``conveyor`` console script next to this interpreter (the project's venv)."""
    here = Path(sys.executable).parent / "conveyor"
    return here if here.exists() else REPO / ".venv" / "bin" / "conveyor"


def fresh_copy(template: Path, dest: Path) -> Path:
    """The scaffolded project copied without its store, so every run starts the same."""
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns(".conveyor"))
    return dest


# -- the conveyor side -------------------------------------------------------------------------


class CallTimer:
    """Adds up the time spent in the wrapped methods of a store (outermost calls only), in total
    and per step (``where[0]``: the step running then, None between steps)."""

    def __init__(self, where: list[str | None]) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.by_step: dict[str | None, float] = {}
        self._where = where
        self._depth = 0

    def wrap(self, obj: Any, names: Sequence[str]) -> None:
        """Replace ``obj.NAME`` by a timing wrapper, on this instance only."""
        for name in names:
            setattr(obj, name, self._timed(getattr(obj, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth += 1
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    took = time.perf_counter() - start
                    self.seconds += took
                    self.calls += 1
                    step = self._where[0]
                    self.by_step[step] = self.by_step.get(step, 0.0) + took

        return timed


def step_tracker(where: list[str | None]) -> Any:
    """Run hooks that keep ``where[0]`` set to the step being executed.

    With the inline LocalExecutor a step runs right after ``before_step_run``, so artifact
    loads and stores are attributed to the right step.
    """
    from conveyor.runner import RunHooks

    class _Tracker(RunHooks):
        def before_step_run(self, step_name: str) -> None:
            where[0] = step_name

        def after_step_run(self, step_name: str, status: Any, duration: float | None) -> None:
            where[0] = None

    return _Tracker()


def _public_methods(obj: Any) -> list[str]:
    return [
        n
        for n in dir(type(obj))
        if not n.startswith("_") and n != "close" and callable(getattr(type(obj), n, None))
    ]


def conveyor_once(template: Path, dest: Path, overrides: list[str]) -> dict[str, Any]:
    """One uncached in-process run of the train line; its wall time and the run record.

    Raises:
        RuntimeError: the run did not succeed.
    """
    from conveyor.project import Project

    fresh_copy(template, dest)
    where: list[str | None] = [None]
    artifacts, metadata = CallTimer(where), CallTimer(where)
    started = time.perf_counter()
    with Project.load(dest, overrides=overrides) as proj:
        # Opening the stores stays inside the timing; the wrappers cost ~1 us a call.
        artifacts.wrap(proj.artifacts, ("get", "put", "exists"))
        metadata.wrap(proj.metadata, _public_methods(proj.metadata))
        result = proj.run(use_cache=False, hooks=step_tracker(where))
    wall = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"visa run ended {result.status}: {result.failures}")
    with Project.load(dest, overrides=overrides) as proj:  # reading the record is not timed
        record = proj.metadata.get_run(result.run_id)
    steps = {s.name: (s.ended_at or 0.0) - (s.started_at or 0.0) for s in record.steps}
    best = {k.removeprefix("test."): v for k, v in record.metrics.items() if k.startswith("test.")}
    return {
        "wall": wall,
        "steps": steps,
        "test": best,
        "artifacts": (artifacts.seconds, artifacts.calls),
        "artifacts_by_step": artifacts.by_step,
        "metadata": (metadata.seconds, metadata.calls),
    }


# -- the plain side ----------------------------------------------------------------------------


def plain_once(root: Path, config: ProjectConfig) -> dict[str, Any]:
    """The line's sklearn/Optuna work as a plain script; wall time and time per phase."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from conveyor.evaluation.diagnostics import diagnose
    from conveyor.evaluation.metrics import evaluate, higher_is_better
    from conveyor.evaluation.report import build_report
    from conveyor.training.candidates import fit_candidate
    from conveyor.training.tuning import tune

    data, training, features = config.data, config.training, config.features
    assert data is not None and training is not None and config.registry is not None
    target, seed, positive = data.target, data.split.seed, data.positive_class
    task = training.task or "classification"
    primary = config.evaluation.primary
    phases: dict[str, float] = {}
    started = mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = now - mark
        mark = now

    df = pd.read_csv(root / data.source.path)
    df = df[df["no_of_employees"] >= 1].reset_index(drop=True)  # the schema's one drop rule
    lap(_LOAD)
    train, test = train_test_split(
        df,
        test_size=data.split.test_size,
        stratify=df[target] if data.split.stratify else None,
        random_state=seed,
    )
    lap(_SPLIT)
    models: dict[str, Any] = {}
    for candidate in training.candidates:
        best_params = None
        if candidate.search and training.tuning is not None:
            tuning = training.tuning
            best_params = tune(
                candidate,
                train,
                target=target,
                features=features,
                trials=tuning.trials,
                cv=tuning.cv,
                metric=tuning.metric or primary,
                task=task,
                positive=positive,
                seed=seed,
                workers=tuning.workers,
                timeout=tuning.timeout,
            ).best_params
            lap(f"tune_{candidate.name}")
        models[candidate.name] = fit_candidate(
            train,
            target=target,
            features=features,
            candidate=candidate,
            seed=seed,
            params=best_params,
        )
        lap(f"train_{candidate.name}")
    board = []
    for name, model in sorted(models.items()):
        scores = evaluate(model, test, target=target, task=task, positive=positive)
        params = model.named_steps["estimator"].get_params(deep=False)
        plain = {
            k: v if isinstance(v, str | int | float | bool | None) else repr(v)
            for k, v in params.items()
        }
        board.append({"candidate": name, "metrics": scores, "params": plain})
    sign = 1 if higher_is_better(primary) else -1
    board.sort(key=lambda row: (-sign * row["metrics"][primary], row["candidate"]))
    best = board[0]
    lap(_EVALUATE)
    diagnostics = diagnose(
        models[best["candidate"]],
        test,
        target=target,
        task=task,
        positive=positive,
        seed=seed,
        importance_repeats=config.evaluation.importance.repeats,
        importance_max_rows=config.evaluation.importance.max_rows,
    )
    build_report(
        {
            "run_id": "plain",
            "model_name": config.registry.model,
            "data": {"fingerprint": "-", "source": str(data.source.path), "rows": len(df)},
            "task": task,
            "primary": primary,
            "leaderboard": board,
            "best": best["candidate"],
            "metrics": best["metrics"],
            "gates": [],
            "decision": None,
            "diagnostics": diagnostics,
        }
    )
    lap(_REPORT)
    return {"wall": time.perf_counter() - started, "phases": phases, "test": best["metrics"]}


# -- the report --------------------------------------------------------------------------------


def step_groups(config: ProjectConfig) -> list[tuple[str, tuple[str, ...], str | None]]:
    """``(label, the line's steps, the plain phase doing the same work)``, in run order."""
    assert config.training is not None
    groups: list[tuple[str, tuple[str, ...], str | None]] = [
        ("ingest + validate  | plain: read CSV + drop rows", ("ingest", "validate"), _LOAD),
        ("split", ("split",), _SPLIT),
    ]
    for c in config.training.candidates:
        if c.search:
            groups.append((f"tune_{c.name}", (f"tune_{c.name}",), f"tune_{c.name}"))
    for c in config.training.candidates:
        groups.append((f"train_{c.name}", (f"train_{c.name}",), f"train_{c.name}"))
    groups += [
        ("evaluate", ("evaluate",), _EVALUATE),
        ("gate  | plain: none", ("gate",), None),
        ("report  | plain: diagnose + build_report", ("report",), _REPORT),
        ("register  | plain: none", ("register",), None),
    ]
    return groups


def breakdown(
    config: ProjectConfig, conv: list[dict[str, Any]], plain: list[dict[str, Any]]
) -> list[Row]:
    """Per step group: conveyor's step time vs the plain phase (medians), and the difference."""
    rows = []
    bookkeeping = 0.0  # differences in the steps that do no model work
    model_steps: list[str] = []
    for label, steps, phase in step_groups(config):
        c = statistics.median(sum(run["steps"].get(s, 0.0) for s in steps) for run in conv)
        p = 0.0 if phase is None else statistics.median(run["phases"][phase] for run in plain)
        if phase in (None, _LOAD, _SPLIT):
            bookkeeping += c - p
        else:
            model_steps += steps
        plain_time = "-" if phase is None else fmt(p)
        rows.append(Row(f"  {label}", f"{fmt(c)} vs {plain_time} plain ({signed(c - p)})"))
    outside = [run["wall"] - sum(run["steps"].values()) for run in conv]
    in_model_steps = statistics.median(
        sum(run["artifacts_by_step"].get(s, 0.0) for s in model_steps) for run in conv
    )
    bookkeeping += statistics.median(outside) + in_model_steps
    p_wall = statistics.median(run["wall"] for run in plain)
    art = [run["artifacts"] for run in conv]
    meta = [run["metadata"] for run in conv]
    rows += [
        Row(
            "  outside steps: load config, open stores, schedule, record (wall - steps)",
            spread(outside),
        ),
        Row(
            "  within the run: artifact store get/put/exists (serialize, hash, I/O)",
            f"{spread([s for s, _ in art])} in {art[0][1]} calls",
        ),
        Row(
            "    of which in the model steps (tune, train, evaluate, report)",
            fmt(in_model_steps),
        ),
        Row(
            "  within the run: metadata store calls (SQLite)",
            f"{spread([s for s, _ in meta])} in {meta[0][1]} calls",
        ),
        Row(
            "  conveyor-only work: data steps' extra, gate, register, outside, model-step I/O",
            f"{fmt(bookkeeping)} = {bookkeeping / p_wall:.1%} of plain (less noisy estimate)",
        ),
    ]
    return rows


def same_results(conv: list[dict[str, Any]], plain: list[dict[str, Any]], primary: str) -> Row:
    """Whether both sides found the same best test metrics (so they did the same work)."""
    runs = [*conv, *plain]
    ref = runs[0]["test"]
    same = all(
        set(r["test"]) == set(ref) and all(abs(r["test"][k] - ref[k]) < 1e-9 for k in ref)
        for r in runs
    )
    value = f"test {primary} {ref.get(primary, float('nan')):.4f} in all {len(runs)} runs"
    if not same:
        value = "DIFFERENT: " + "; ".join(f"{r['test'].get(primary, 'n/a')}" for r in runs)
    return Row("same best test metrics on both sides", value, "identical", "ok" if same else "FAIL")


def bench(root: Path, repeat: int, overrides: list[str], cli: bool) -> list[Row]:
    from conveyor.cli.init import scaffold
    from conveyor.project import Project

    template = root / "template"
    scaffold(template, example="visa")
    config = Project.load(template, overrides=overrides).config

    started = time.perf_counter()
    for module in SHARED_IMPORTS:
        importlib.import_module(module)
    for module in OPTIONAL_SHARED_IMPORTS:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    if "forkserver" in multiprocessing.get_all_start_methods():
        # tune()'s process pools fork from it; the first pool of the process would start it
        from multiprocessing import forkserver

        forkserver.ensure_running()
    warm = time.perf_counter() - started

    conv: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    for r in range(repeat):  # alternate which side goes first, so load drift hits both
        order = ("conveyor", "plain") if r % 2 == 0 else ("plain", "conveyor")
        for side in order:
            if side == "conveyor":
                conv.append(conveyor_once(template, root / f"conveyor{r}", overrides))
                took = conv[-1]["wall"]
            else:
                plain.append(plain_once(template, config))
                took = plain[-1]["wall"]
            print(f"[pipeline] round {r + 1}/{repeat}: {side} {fmt(took)}", file=sys.stderr)

    c_wall = [run["wall"] for run in conv]
    p_wall = [run["wall"] for run in plain]
    overhead = (statistics.median(c_wall) - statistics.median(p_wall)) / statistics.median(p_wall)
    rows = [
        Row("conveyor: Project.load(dir).run(use_cache=False), in-process", spread(c_wall)),
        Row("plain script: same library calls, same data and seeds", spread(p_wall)),
        Row(
            "conveyor overhead = (conveyor - plain) / plain, of medians",
            f"{overhead:+.1%} ({signed(statistics.median(c_wall) - statistics.median(p_wall))})",
            f"<= {OVERHEAD_GOAL:.0%}",
            "ok" if overhead <= OVERHEAD_GOAL else "FAIL",
        ),
        same_results(conv, plain, config.evaluation.primary),
        Row("where the time goes: conveyor step vs plain phase, medians", ""),
        *breakdown(config, conv, plain),
        Row("  shared imports + forkserver start, before any timing", fmt(warm)),
    ]
    if cli:
        print("[pipeline] `conveyor run` subprocess ...", file=sys.stderr, flush=True)
        project = fresh_copy(template, root / "cli")
        cmd = [str(conveyor_exe()), "run", "-p", str(project), "--no-cache"]
        for item in overrides:
            cmd += ["--set", item]
        started = time.perf_counter()
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=CLI_TIMEOUT_S
        )
        took = time.perf_counter() - started
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-2000:]
            print(f"`conveyor run` exited {proc.returncode}:\n{tail}", file=sys.stderr)
            rows.append(
                Row(
                    "`conveyor run -p DIR --no-cache`, subprocess",
                    f"exit {proc.returncode}",
                    "exit 0",
                    "FAIL",
                )
            )
        else:
            rows.append(
                Row("`conveyor run -p DIR --no-cache`, subprocess (cold imports)", fmt(took))
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument(
        "--trials",
        type=int,
        default=4,
        help="training.tuning.trials on both sides (default 4; 0 = as shipped)",
    )
    parser.add_argument("--no-cli", action="store_true", help="skip the `conveyor run` subprocess")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.trials < 0:
        parser.error("--repeat must be at least 1 and --trials at least 0")
    for var in _ENV_OVERRIDES:
        os.environ.pop(var, None)
    overrides = [f"training.tuning.trials={args.trials}"] if args.trials else []

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        rows = section(
            "visa line vs plain script",
            f"<= {OVERHEAD_GOAL:.0%}",
            lambda: bench(Path(tmp), args.repeat, overrides, not args.no_cli),
        )
    print(
        f"\nvisa train line vs plain script (python {sys.version.split()[0]}, {sys.platform}, "
        f"{os.cpu_count()} cpus)"
    )
    if overrides:
        print(f"overrides applied to BOTH sides: {' '.join(overrides)} (the shipped config says 8)")
    else:
        print("config as shipped (no overrides)")
    print()
    print_table(rows)
    print(
        "\nThe sides alternate and each figure is a median, but these runs take a minute each on a "
        "machine with few cores: other work on the machine (builds, tests) shows up as noise of "
        "several percent, more than a small overhead. Compare runs made on an idle machine."
    )
    print(f"benchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
