"""Hyper-parameter search: search spaces, seeded batches, pruning, failures, processes and Dask."""

from __future__ import annotations

import functools

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from conveyor.config import CandidateConfig, FeaturesConfig
from conveyor.errors import ConfigError
from conveyor.examples.visa.generate import generate
from conveyor.training.tuning import Trial, TuningResult, parse_space, tune, within_noise
from tests.conftest import require_module

WHERE = "training.candidates[hgb].search"
FEATURES = FeaturesConfig(drop=["case_id"])
LOGREG = "sklearn.linear_model.LogisticRegression"
HGB = "sklearn.ensemble.HistGradientBoostingClassifier"


def logreg(**search):
    return CandidateConfig(
        name="logreg", estimator=LOGREG, params={"max_iter": 1000}, search=search
    )


def hgb(**search):
    return CandidateConfig(name="hgb", estimator=HGB, params={"max_iter": 20}, search=search)


@pytest.fixture(scope="module")
def visa():
    return generate(n_rows=1200, seed=1)


def run(visa, candidate, **overrides):
    kwargs = {
        "target": "case_status",
        "features": FEATURES,
        "trials": 6,
        "cv": 2,
        "metric": "f1",
        "task": "classification",
        "positive": "Certified",
        "seed": 7,
        **overrides,
    }
    return tune(candidate, visa, **kwargs)


def signature(result: TuningResult):
    """Everything about the trials except how long they took."""
    return [(t.number, t.state, t.params, t.value, t.fold_scores, t.error) for t in result.trials]


def check_best(result: TuningResult, *, higher=True):
    """The best complete trial, or trial 0 (the configured candidate) when the best is within
    one standard error of it."""
    complete = [t for t in result.trials if t.state == "complete"]
    values = [t.value for t in complete]
    top = max(values) if higher else min(values)
    best = next(t for t in complete if t.value == top)
    if result.kept_configured:
        first = result.trials[0]
        assert within_noise(best, first, higher=higher)
        assert (result.best_value, result.best_params) == (first.value, first.params)
    else:
        assert (result.best_value, result.best_params) == (top, best.params)


# --- parse_space -----------------------------------------------------------------------------


def test_a_list_is_a_categorical_choice():
    space = parse_space({"max_depth": [3, 5, None], "loss": ["log_loss"]}, where=WHERE)
    assert space["max_depth"] == CategoricalDistribution([3, 5, None])
    assert space["loss"] == CategoricalDistribution(["log_loss"])


def test_integer_bounds_give_an_integer_range():
    space = parse_space(
        {"max_iter": {"low": 50, "high": 300, "step": 50}, "leaves": {"low": 8, "high": 64}},
        where=WHERE,
    )
    assert space["max_iter"] == IntDistribution(50, 300, step=50)
    assert space["leaves"] == IntDistribution(8, 64)


def test_float_bounds_or_log_give_a_float_range():
    space = parse_space(
        {
            "C": {"low": 0.01, "high": 10, "log": True},
            "l1_ratio": {"low": 0, "high": 1.0},
            "alpha": {"low": 0, "high": 1, "step": 0.25},
        },
        where=WHERE,
    )
    assert space["C"] == FloatDistribution(0.01, 10.0, log=True)
    assert space["l1_ratio"] == FloatDistribution(0.0, 1.0)
    assert space["alpha"] == FloatDistribution(0.0, 1.0, step=0.25)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (0.1, "expected a list of choices or a range"),
        ("0.01..1", "expected a list of choices or a range"),
        ({"low": 0.01}, "expected a list of choices or a range"),
        ([], "empty list of choices"),
        ([0.1, [0.2]], "choices must be scalars"),
        ({"low": 0.01, "high": 1, "scale": "log"}, "unknown range key"),
        ({"low": "a", "high": 1}, r"learning_rate\.low: expected a number"),
        ({"low": 0.01, "high": 1, "log": "yes"}, r"learning_rate\.log: expected true or false"),
        ({"low": 1.0, "high": 0.01}, "low .* is greater than high"),
        ({"low": 0, "high": 1, "log": True}, "log range needs low > 0"),
        ({"low": 0.01, "high": 1, "log": True, "step": 0.1}, "log and step"),
        ({"low": 0.0, "high": 1, "step": 0}, r"learning_rate\.step: must be > 0"),
    ],
)
def test_a_bad_spec_names_its_key_path(spec, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_space({"learning_rate": spec}, where=WHERE)
    assert str(info.value).startswith(f"{WHERE}.learning_rate")


# --- tune: inline ----------------------------------------------------------------------------


def test_tunes_a_log_range_and_reports_each_trial(visa):
    seen: list[Trial] = []
    result = run(visa, logreg(C={"low": 0.01, "high": 10, "log": True}), progress=seen.append)

    assert [t.number for t in result.trials] == list(range(6))
    assert seen == result.trials
    assert {t.state for t in result.trials} <= {"complete", "pruned"}
    assert all(0.01 <= t.params["C"] <= 10 for t in result.trials)
    assert set(result.best_params) == {"C"}  # searched params only; the caller adds max_iter
    assert result.metric == "f1"
    check_best(result)


def test_same_seed_same_trials_and_another_seed_differs(visa):
    candidate = hgb(learning_rate={"low": 0.01, "high": 0.5, "log": True})
    # One OpenMP thread, as in the pool and Dask runs: on 1,200 rows more threads only add
    # overhead, and on a busy CI machine OpenMP's spin-waits make each fit several times slower.
    with threadpool_limits(1):
        first, second = run(visa, candidate, trials=4), run(visa, candidate, trials=4)
        other = run(visa, candidate, trials=4, seed=8)
    assert signature(first) == signature(second)
    assert len(first.trials) == 4 and all(t.state == "complete" for t in first.trials)
    check_best(first)
    assert [t.params for t in other.trials] != [t.params for t in first.trials]


def test_a_lower_is_better_metric_minimises(visa):
    ridge = CandidateConfig(
        name="ridge",
        estimator="sklearn.linear_model.Ridge",
        search={"alpha": {"low": 0.001, "high": 1000.0, "log": True}},
    )
    frame = visa.drop(columns=["case_status"])
    result = run(frame, ridge, target="prevailing_wage", task="regression", metric="rmse")
    assert len(result.trials) == 6
    check_best(result, higher=False)


def test_median_pruning_stops_trials_in_a_bad_region(visa):
    # C=1e-6 predicts the majority class only: balanced accuracy 0.5, far below the others.
    result = run(
        visa, logreg(C=[0.1, 1.0, 10.0, 1e-6]), trials=12, cv=3, metric="balanced_accuracy"
    )
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert any(t.params["C"] == 1e-6 for t in pruned)
    assert all(len(t.fold_scores) == 2 and t.value is not None for t in pruned)
    assert all(t.state == "complete" for t in result.trials[:3])  # nothing to compare with yet
    assert result.best_params["C"] != 1e-6
    check_best(result, higher=True)


def test_a_failing_trial_is_recorded_with_its_error(visa):
    result = run(visa, logreg(solver=["lbfgs", "bogus"]), trials=6)
    failed = [t for t in result.trials if t.state == "failed"]
    assert failed and all(t.params["solver"] == "bogus" for t in failed)
    assert all(t.value is None and "solver" in (t.error or "") for t in failed)
    assert result.best_params == {"solver": "lbfgs"}
    check_best(result)


def test_when_every_trial_fails_the_error_names_the_candidate(visa):
    with pytest.raises(ConfigError, match=r"all 2 trial\(s\) failed; first error: .*solver") as e:
        run(visa, logreg(solver=["bogus"]), trials=2)
    assert str(e.value).startswith("training.candidates[logreg].search: ")


def test_a_warning_in_a_trial_is_shown_not_raised(visa):
    # Under pytest's "error" filter an inline trial must still behave as in a pool process.
    from sklearn.exceptions import ConvergenceWarning

    candidate = logreg(C=[1.0]).model_copy(update={"params": {"max_iter": 1}})
    with pytest.warns(ConvergenceWarning):
        result = run(visa, candidate, trials=1)
    assert result.trials[0].state == "complete"


def test_a_metric_the_estimator_cannot_give_stops_tuning(visa):
    svc = CandidateConfig(name="svc", estimator="sklearn.svm.LinearSVC", search={"C": [1.0]})
    with pytest.raises(ConfigError, match=r"candidates\[svc\]: metric 'roc_auc' is not available"):
        run(visa, svc, metric="roc_auc")


def test_timeout_stops_asking_for_trials(visa):
    result = run(visa, logreg(C={"low": 0.01, "high": 10, "log": True}), trials=500, timeout=0.3)
    assert 1 <= len(result.trials) < 50


def test_bad_calls_are_rejected_before_any_trial(visa):
    with pytest.raises(ValueError, match="nothing to tune"):
        run(visa, logreg())
    with pytest.raises(ConfigError, match="'rmse' is not a classification metric"):
        run(visa, logreg(C=[1.0]), metric="rmse")
    with pytest.raises(ConfigError, match=r"candidates\[logreg\]\.search\.depth: not a parameter"):
        run(visa, logreg(depth=[1, 2]))
    with pytest.raises(ValidationError, match=r"search\.C\n +empty list of choices"):
        logreg(C=[])  # a bad space is refused where the candidate is defined (config load)


# --- tune: in parallel -------------------------------------------------------------------------

PARALLEL = {"trials": 4, "workers": 2}


@pytest.fixture(scope="module")
def in_processes(visa):
    return run(visa, hgb(learning_rate={"low": 0.01, "high": 0.5, "log": True}), **PARALLEL)


def test_two_workers_in_processes_complete_and_repeat(visa, in_processes):
    assert len(in_processes.trials) == 4
    assert all(t.state == "complete" for t in in_processes.trials)
    check_best(in_processes)
    again = run(visa, hgb(learning_rate={"low": 0.01, "high": 0.5, "log": True}), **PARALLEL)
    assert signature(again) == signature(in_processes)


@pytest.mark.slow
def test_inside_a_dask_task_trials_run_as_dask_tasks(visa, in_processes):
    distributed = require_module("distributed", "the dask extra (conveyor[dask])")

    candidate = hgb(learning_rate={"low": 0.01, "high": 0.5, "log": True})
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        kwargs = {
            "target": "case_status",
            "features": FEATURES,
            "cv": 2,
            "metric": "f1",
            "task": "classification",
            "positive": "Certified",
            "seed": 7,
            **PARALLEL,
        }
        # partial: submit() would take workers= as the Dask workers allowed to run the task
        with distributed.get_task_stream(client) as stream:
            task = client.submit(functools.partial(tune, **kwargs), candidate, visa, pure=False)
            result = task.result()
    evaluated = [t for t in stream.data if t["key"].startswith("_evaluate-")]
    assert len(evaluated) == 4  # each trial was a Dask task, not a process of the worker
    # Same batches, same thresholds, same evaluator: only where the folds were fitted differs.
    assert signature(result) == signature(in_processes)


# --- the configured candidate is trial 0 --------------------------------------------------------


def test_the_first_trial_is_the_candidate_as_configured(visa):
    """C=1.0 (the class default) and max_leaf_nodes=31 lie in the spaces: trial 0 tries them,
    so tuning never ends below the untuned candidate's cross-validated score."""
    result = run(visa, logreg(C={"low": 0.01, "high": 10, "log": True}))
    assert result.trials[0].params == {"C": 1.0}
    assert result.best_value >= result.trials[0].value
    tuned = run(visa, hgb(max_leaf_nodes=[7, 31], learning_rate={"low": 0.2, "high": 0.3}))
    # learning_rate's default 0.1 is outside [0.2, 0.3]: only max_leaf_nodes is fixed
    assert tuned.trials[0].params["max_leaf_nodes"] == 31
    assert 0.2 <= tuned.trials[0].params["learning_rate"] <= 0.3


@pytest.mark.parametrize(
    ("value", "dist", "kept"),
    [
        (1.0, FloatDistribution(0.01, 10, log=True), True),
        (0.0, FloatDistribution(0.001, 10, log=True), False),
        (31, CategoricalDistribution([7, 15, 31]), True),
        (31, CategoricalDistribution([7, 15]), False),
        (True, CategoricalDistribution([1, 0]), False),  # a bool is not the int 1
        (5, IntDistribution(1, 9, step=2), True),
        (4, IntDistribution(1, 9, step=2), False),  # off the grid
        ("auto", FloatDistribution(0.0, 1.0), False),
    ],
)
def test_defaults_in_space(value, dist, kept):
    from conveyor.training.tuning import defaults_in_space

    assert defaults_in_space({"p": value}, {"p": dist}) == ({"p": value} if kept else {})


def _trial(number, folds):
    return Trial(number, {"p": number}, "complete", sum(folds) / len(folds), folds, 0.1)


@pytest.mark.parametrize(
    ("best", "configured", "higher", "kept"),
    [
        ([0.80, 0.70, 0.90], [0.79, 0.69, 0.89], True, False),  # +0.01 on every fold: real
        ([0.90, 0.60, 0.80], [0.70, 0.75, 0.78], True, True),  # +0.023 mean, folds disagree
        ([0.30, 0.31], [0.40, 0.41], False, False),  # a loss: lower is better, clearly
        ([0.30, 0.45], [0.40, 0.41], False, True),
    ],
)
def test_one_standard_error_rule(best, configured, higher, kept):
    assert within_noise(_trial(3, best), _trial(0, configured), higher=higher) is kept
