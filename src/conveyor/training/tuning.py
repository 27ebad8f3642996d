"""Hyper-parameter search: seeded Optuna TPE, cross-validated trials, median pruning, in batches.

Trials are asked in batches of ``workers``, evaluated together (inline, in a process pool, or as
Dask tasks when already running on a Dask worker) and told back in trial-number order, so a given
seed and worker count always give the same trials. Pruning needs no shared state: the pruning
thresholds are computed when a batch is asked and travel with each trial to its evaluator.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conveyor._config_values import SearchChoices, ValueProblem, parse_search_param
from conveyor._lifeline import exit_with_parent
from conveyor.config import CandidateConfig, FeaturesConfig
from conveyor.errors import ConfigError, ConveyorError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import numpy as np
    import pandas as pd
    from optuna.distributions import BaseDistribution

    from conveyor._config_values import SearchSpec

    _Batch = Callable[[Sequence[tuple[dict[str, Any], list[float | None]]]], list["_Outcome"]]

__all__ = ["Trial", "TuningResult", "parse_space", "tune"]

_MIN_TRIALS_TO_PRUNE = 3


@dataclass(frozen=True)
class Trial:
    """One evaluated set of parameters.

    ``value`` is the mean cross-validated score: over every fold when ``state`` is
    ``"complete"``, over the folds run before stopping when ``"pruned"``, None when ``"failed"``.
    """

    number: int
    params: dict[str, Any]
    state: str  # "complete" | "pruned" | "failed"
    value: float | None
    fold_scores: list[float]
    seconds: float
    error: str | None = None


@dataclass(frozen=True)
class TuningResult:
    """The best searched parameters (only those in ``search``) and every trial, in order."""

    best_params: dict[str, Any]
    best_value: float
    metric: str
    trials: list[Trial]
    kept_configured: bool = False  # the best trial was within noise of the configured one


def parse_space(search: Mapping[str, Any], *, where: str) -> dict[str, BaseDistribution]:
    """Turn a candidate's ``search`` mapping into Optuna distributions.

    A list is a categorical choice; ``{low, high}`` is a range, of integers when both bounds
    (and ``step``, if given) are integers, of floats otherwise; ``log: true`` samples it on a log
    scale, ``step`` on a grid. Values already parsed at config load (``CandidateConfig.search``)
    are used as they are; raw ones go through the same parser.

    Args:
        search: parameter name -> parsed spec, list of choices or range mapping.
        where: key path of ``search`` in the config, prefixed to error messages.

    Raises:
        ConfigError: a spec is neither form, or its bounds, log or step are invalid; the message
            names ``where`` and the parameter.
    """
    space: dict[str, BaseDistribution] = {}
    for key, raw in search.items():
        try:
            spec = parse_search_param(raw)
        except ValueProblem as exc:
            raise ConfigError(exc.located(f"{where}.{key}")) from None
        space[key] = distribution(spec)
    return space


def distribution(spec: SearchSpec) -> BaseDistribution:
    """The Optuna distribution of one parsed search spec."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(spec, SearchChoices):
        return CategoricalDistribution(list(spec.choices))
    if spec.integer:
        step = 1 if spec.step is None else int(spec.step)
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=step)
    return FloatDistribution(float(spec.low), float(spec.high), log=spec.log, step=spec.step)


def tune(
    candidate: CandidateConfig,
    train: pd.DataFrame,
    *,
    target: str,
    features: FeaturesConfig,
    trials: int,
    cv: int,
    metric: str,
    task: str,
    positive: Any,
    seed: int,
    workers: int = 1,
    timeout: float | None = None,
    progress: Callable[[Trial], None] | None = None,
) -> TuningResult:
    """Search ``candidate.search`` by cross-validating the candidate's full pipeline.

    Args:
        candidate: the estimator; its ``params`` are fixed, its ``search`` is explored.
        train: training rows, ``target`` included.
        target: the label column.
        features: preprocessing config, as for ``fit_candidate``.
        trials: how many parameter sets to try (fewer if ``timeout`` runs out).
        cv: folds (stratified and shuffled for classification, shuffled for regression).
        metric: a metric of ``conveyor.evaluation.metrics`` for ``task``.
        task: ``"classification"`` or ``"regression"``.
        positive: the positive class for classification metrics.
        seed: seeds the sampler, the folds, and estimators that take ``random_state``.
        workers: trials evaluated at once; >1 uses Dask tasks on a Dask worker, else processes.
        timeout: seconds after which no new batch of trials starts.
        progress: called with each trial once it is recorded.

    Returns:
        The best searched parameters (without ``candidate.params``) and every trial.

    Raises:
        ValueError: ``candidate.search`` is empty, or bad ``trials``/``cv``/``workers``/``task``.
        ConfigError: bad search space or metric, or every trial failed.
        ConveyorError: a worker process died.
    """
    import optuna
    from optuna.trial import TrialState

    from conveyor.evaluation.metrics import METRICS
    from conveyor.training.candidates import build_estimator

    where = f"training.candidates[{candidate.name}]"
    if not candidate.search:
        raise ValueError(f"{where}: nothing to tune (search is empty)")
    if task not in METRICS:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    if trials < 1 or cv < 2 or workers < 1:
        raise ValueError(f"need trials >= 1, cv >= 2, workers >= 1 (got {trials}, {cv}, {workers})")
    if metric not in METRICS[task]:
        raise ConfigError(
            f"tuning metric {metric!r} is not a {task} metric "
            f"(choose one of {', '.join(sorted(METRICS[task]))})"
        )
    space = parse_space(candidate.search, where=f"{where}.search")
    accepted = build_estimator(candidate).get_params(deep=False)
    for key in space:
        if key not in accepted:
            raise ConfigError(f"{where}.search.{key}: not a parameter of {candidate.estimator}")

    job = make_job(
        candidate,
        train,
        target=target,
        features=features,
        task=task,
        positive=positive,
        metric=metric,
        cv=cv,
        seed=seed,
    )
    higher = job.higher
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created" line per tune
    try:
        study = optuna.create_study(
            direction="maximize" if higher else "minimize",
            sampler=optuna.samplers.TPESampler(seed=seed),
            pruner=optuna.pruners.NopPruner(),  # pruning decisions travel with each trial
        )
    finally:
        optuna.logging.set_verbosity(verbosity)
    start = defaults_in_space(accepted, space)
    if start:
        study.enqueue_trial(start)  # trial 0: the candidate as configured, a floor to beat

    started = time.monotonic()
    done: list[Trial] = []
    with _evaluator(job, workers) as evaluate_batch:
        while len(done) < trials:
            if timeout is not None and done and time.monotonic() - started >= timeout:
                break
            thresholds = _thresholds(done, cv)
            asked = [study.ask(space) for _ in range(min(workers, trials - len(done)))]
            outcomes = evaluate_batch([(dict(t.params), thresholds) for t in asked])
            for optuna_trial, outcome in zip(asked, outcomes, strict=True):
                if outcome.fatal:
                    raise ConfigError(f"{where}: {outcome.error}")
                for k, mean in enumerate(_running_means(outcome.fold_scores)):
                    optuna_trial.report(mean, k)
                trial = _record(optuna_trial.number, dict(optuna_trial.params), outcome, cv)
                if trial.state == "complete":
                    study.tell(optuna_trial, trial.value)
                else:
                    state = TrialState.PRUNED if trial.state == "pruned" else TrialState.FAIL
                    study.tell(optuna_trial, state=state)
                done.append(trial)
                if progress is not None:
                    progress(trial)

    complete = [t for t in done if t.state == "complete"]
    if not complete:
        first = next((t.error for t in done if t.error), "no trial completed")
        raise ConfigError(f"{where}.search: all {len(done)} trial(s) failed; first error: {first}")
    values = [t.value for t in complete if t.value is not None]
    best_value = max(values) if higher else min(values)
    best = next(t for t in complete if t.value == best_value)  # the first of any ties
    configured = done[0] if start.keys() == space.keys() else None
    kept = configured is not None and within_noise(best, configured, higher=higher)
    chosen = configured if kept and configured is not None else best
    assert chosen.value is not None
    return TuningResult(
        best_params=chosen.params,
        best_value=chosen.value,
        metric=metric,
        trials=done,
        kept_configured=kept,
    )


def within_noise(best: Trial, configured: Trial, *, higher: bool) -> bool:
    """Whether ``best`` beats ``configured`` by no more than one standard error of their
    per-fold differences (the one-standard-error rule): on small or noisy data a searched
    setting that wins by less than that has more likely fitted the folds than the problem,
    and the configured candidate is kept."""
    if best is configured or configured.state != "complete" or best.state != "complete":
        return best is configured
    diffs = [b - c for b, c in zip(best.fold_scores, configured.fold_scores, strict=True)]
    if not higher:
        diffs = [-d for d in diffs]
    if len(diffs) < 2:
        return False
    return statistics.fmean(diffs) <= statistics.stdev(diffs) / math.sqrt(len(diffs))


def defaults_in_space(
    params: Mapping[str, Any], space: Mapping[str, BaseDistribution]
) -> dict[str, Any]:
    """The candidate's own values (class defaults, overridden by its ``params``) of the searched
    parameters that the search space can hold: tuning tries them first, so a tuned candidate
    does no worse in cross-validation than the untuned one."""
    from optuna.distributions import CategoricalDistribution

    out: dict[str, Any] = {}
    for key, dist in space.items():
        value = params.get(key)
        if isinstance(dist, CategoricalDistribution):
            if any(type(value) is type(c) and value == c for c in dist.choices):
                out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        low, high = dist.low, dist.high  # type: ignore[attr-defined]
        step = getattr(dist, "step", None)
        on_grid = step is None or abs(((value - low) / step) - round((value - low) / step)) < 1e-9
        if low <= value <= high and on_grid:
            out[key] = type(low)(value)
    return out


# --- evaluation: module level and plain data, so it pickles to processes and Dask workers ------


@dataclass(frozen=True)
class _Job:
    """What every trial of one ``tune`` call shares."""

    train: pd.DataFrame
    folds: list[tuple[np.ndarray, np.ndarray]]
    target: str
    task: str
    positive: Any
    metric: str
    higher: bool
    seed: int
    candidate: dict[str, Any]
    features: dict[str, Any]


def make_job(
    candidate: CandidateConfig,
    train: pd.DataFrame,
    *,
    target: str,
    features: FeaturesConfig,
    task: str,
    positive: Any,
    metric: str,
    cv: int,
    seed: int,
) -> _Job:
    """What cross-validating ``candidate`` needs, with its seeded folds (shared by tuning and
    by candidate selection, so both score on the same folds)."""
    from conveyor.evaluation.metrics import higher_is_better

    return _Job(
        train=train,
        folds=_folds(train, target=target, task=task, cv=cv, seed=seed),
        target=target,
        task=task,
        positive=positive,
        metric=metric,
        higher=higher_is_better(metric),
        seed=seed,
        candidate=candidate.model_dump(),
        features=features.model_dump(),
    )


@dataclass(frozen=True)
class _Outcome:
    fold_scores: list[float] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    fatal: bool = False  # a config problem every trial would hit: stop tuning


def _evaluate(job: _Job, params: dict[str, Any], thresholds: list[float | None]) -> _Outcome:
    """Cross-validate one parameter set, stopping early when it falls behind ``thresholds``."""
    started = time.perf_counter()
    candidate = CandidateConfig.model_validate(job.candidate)
    features = FeaturesConfig.model_validate(job.features)
    # Warnings are shown, never raised: a caller's "error" filter (pytest -W error) would fail
    # trials inline that pass in a pool process, where that filter does not exist.
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        return _cross_validate(job, candidate, features, params, thresholds, started)


def _cross_validate(
    job: _Job,
    candidate: CandidateConfig,
    features: FeaturesConfig,
    params: dict[str, Any],
    thresholds: list[float | None],
    started: float,
) -> _Outcome:
    from conveyor.evaluation.metrics import evaluate
    from conveyor.training.candidates import fit_candidate

    scores: list[float] = []
    try:
        for k, (fit_rows, score_rows) in enumerate(job.folds):
            model = fit_candidate(
                job.train.iloc[fit_rows],
                target=job.target,
                features=features,
                candidate=candidate,
                seed=job.seed,
                params=params,
            )
            metrics = evaluate(
                model,
                job.train.iloc[score_rows],
                target=job.target,
                task=job.task,
                positive=job.positive,
            )
            if job.metric not in metrics:
                return _Outcome(
                    scores,
                    time.perf_counter() - started,
                    f"metric {job.metric!r} is not available for {candidate.estimator} "
                    f"(it gives {', '.join(sorted(metrics))})",
                    fatal=True,
                )
            score = metrics[job.metric]
            if not math.isfinite(score):
                raise ValueError(f"{job.metric} is {score} on fold {k}")
            scores.append(score)
            mean = statistics.fmean(scores)
            threshold = thresholds[k]
            if k < len(job.folds) - 1 and threshold is not None:
                if (mean < threshold) if job.higher else (mean > threshold):
                    break
    except Exception as exc:
        return _Outcome(scores, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
    return _Outcome(scores, time.perf_counter() - started)


def _folds(
    train: pd.DataFrame, *, target: str, task: str, cv: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (
        StratifiedKFold(cv, shuffle=True, random_state=seed)
        if task == "classification"
        else KFold(cv, shuffle=True, random_state=seed)
    )
    y = train[target]
    try:
        return list(splitter.split(train.drop(columns=[target]), y))
    except ValueError as exc:
        raise ConfigError(
            f"training.tuning.cv: cannot make {cv} folds of {len(train)} training rows: {exc}"
        ) from exc


def _running_means(scores: list[float]) -> list[float]:
    return [statistics.fmean(scores[: k + 1]) for k in range(len(scores))]


def _thresholds(done: list[Trial], cv: int) -> list[float | None]:
    """Per fold k: median running mean of complete trials at k (None: do not prune at k)."""
    complete = [t for t in done if t.state == "complete"]
    out: list[float | None] = [None] * cv
    if len(complete) < _MIN_TRIALS_TO_PRUNE:
        return out
    for k in range(1, cv - 1):  # never after fold 0 (too noisy) nor the last (nothing to save)
        out[k] = statistics.median(statistics.fmean(t.fold_scores[: k + 1]) for t in complete)
    return out


def _record(number: int, params: dict[str, Any], outcome: _Outcome, cv: int) -> Trial:
    scores, seconds = list(outcome.fold_scores), outcome.seconds
    if outcome.error is not None:
        return Trial(number, params, "failed", None, scores, seconds, outcome.error)
    state = "complete" if len(scores) == cv else "pruned"
    return Trial(number, params, state, statistics.fmean(scores), scores, seconds)


# --- where trials run ----------------------------------------------------------------------------


@contextmanager
def _evaluator(job: _Job, workers: int) -> Iterator[_Batch]:
    if workers == 1:
        yield lambda batch: [_evaluate(job, params, thr) for params, thr in batch]
        return
    try:
        from distributed import get_worker, worker_client

        get_worker()
    except (ImportError, ValueError):
        with _process_pool(job, workers) as run:
            yield run
        return
    with worker_client() as client:
        shared = client.scatter(job)  # the train frame travels once per worker, not per trial

        def run(batch: Sequence[tuple[dict[str, Any], list[float | None]]]) -> list[_Outcome]:
            futures = [client.submit(_evaluate, shared, p, t, pure=False) for p, t in batch]
            try:
                return list(client.gather(futures))
            except Exception as exc:  # the evaluator catches trial errors: a worker died
                raise ConveyorError(f"a Dask task evaluating a trial failed: {exc!r}") from exc

        yield run


@contextmanager
def _process_pool(job: _Job, workers: int) -> Iterator[_Batch]:
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # forkserver/spawn, not fork: the parent may hold threads (Dask, BLAS) a fork would copy.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_process,
        initargs=(job, threads),
    ) as pool:

        def run(batch: Sequence[tuple[dict[str, Any], list[float | None]]]) -> list[_Outcome]:
            futures = [pool.submit(_evaluate_in_process, p, t) for p, t in batch]
            try:
                return [f.result() for f in futures]
            except BrokenProcessPool as exc:
                raise ConveyorError(f"a process evaluating a trial died: {exc}") from exc

        yield run


_PROCESS_JOB: list[_Job] = []  # set once per pool process by _init_process


def _init_process(job: _Job, threads: int) -> None:
    """Receive the shared job once, and keep OpenMP/BLAS from oversubscribing the CPUs."""
    exit_with_parent()  # a SIGKILLed `conveyor run` must not leave its trial workers behind
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)  # libraries loaded from now on
    threadpool_limits(threads)  # libraries the forkserver had already loaded
    _PROCESS_JOB[:] = [job]


def _evaluate_in_process(params: dict[str, Any], thresholds: list[float | None]) -> _Outcome:
    return _evaluate(_PROCESS_JOB[0], params, thresholds)
