"""diagnose(): JSON-able diagnostics of a fitted pipeline, for every task, deterministic by seed."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conveyor.config import CandidateConfig, FeaturesConfig
from conveyor.evaluation.diagnostics import MAX_CURVE_POINTS, diagnose, to_jsonable
from conveyor.examples.visa.generate import generate
from conveyor.training.candidates import fit_candidate

TARGET = "case_status"
REG_COLUMNS = ["continent", "education_of_employee", "unit_of_wage", "no_of_employees"]


def _fit(frame, target, estimator, features):
    cut = int(len(frame) * 0.8)
    model = fit_candidate(
        frame.iloc[:cut],
        target=target,
        features=features,
        candidate=CandidateConfig(name="hgb", estimator=estimator, params={"max_iter": 50}),
        seed=0,
    )
    return model, frame.iloc[cut:]


@pytest.fixture(scope="module")
def visa():
    return generate(n_rows=3000, seed=3)


@pytest.fixture(scope="module")
def binary(visa):
    return _fit(
        visa,
        TARGET,
        "sklearn.ensemble.HistGradientBoostingClassifier",
        FeaturesConfig(drop=["case_id"]),
    )


@pytest.fixture(scope="module")
def binary_diag(binary):
    model, test = binary
    return diagnose(model, test, target=TARGET, task="classification", seed=0)


@pytest.fixture(scope="module")
def regression(visa):
    return _fit(
        visa[[*REG_COLUMNS, "prevailing_wage"]],
        "prevailing_wage",
        "sklearn.ensemble.HistGradientBoostingRegressor",
        FeaturesConfig(),
    )


def _assert_plain_json(obj, where="$"):
    """Only dict/list/str/int/float/bool/None, exactly: no numpy scalar, no subclass."""
    assert type(obj) in (dict, list, str, int, float, bool, type(None)), (where, type(obj))
    if isinstance(obj, float):
        assert math.isfinite(obj), where
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert type(key) is str, (where, key)
            _assert_plain_json(value, f"{where}.{key}")
    if isinstance(obj, list):
        for i, value in enumerate(obj):
            _assert_plain_json(value, f"{where}[{i}]")


def test_binary_classification_has_every_section(binary_diag, binary):
    _, test = binary
    d = binary_diag
    assert {
        "task",
        "rows",
        "labels",
        "confusion_matrix",
        "per_class",
        "positive",
        "roc",
        "pr",
        "calibration",
        "importance_scoring",
        "permutation_importance",
    } <= set(d)
    assert d["task"] == "classification" and d["rows"] == len(test)
    assert d["labels"] == ["Certified", "Denied"] and d["positive"] == "Denied"
    json.dumps(d, allow_nan=False)
    _assert_plain_json(d)


def test_binary_values_are_in_range(binary_diag, binary):
    _, test = binary
    d = binary_diag
    cm = d["confusion_matrix"]
    assert cm["labels"] == d["labels"]
    assert sum(map(sum, cm["matrix"])) == len(test)
    assert [sum(row) for row in cm["matrix"]] == [
        int((test[TARGET] == label).sum()) for label in cm["labels"]
    ]
    assert {"Certified", "Denied", "macro avg", "weighted avg"} <= set(d["per_class"])
    roc, pr, cal = d["roc"], d["pr"], d["calibration"]
    assert 0.5 < roc["auc"] <= 1 and 0 < pr["auc"] <= 1
    assert 2 <= len(roc["fpr"]) == len(roc["tpr"]) <= MAX_CURVE_POINTS
    assert 2 <= len(pr["precision"]) == len(pr["recall"]) <= MAX_CURVE_POINTS
    assert roc["fpr"][0] == 0 and roc["fpr"][-1] == 1 and roc["tpr"][-1] == 1
    assert all(0 <= v <= 1 for v in roc["fpr"] + roc["tpr"] + pr["precision"] + pr["recall"])
    assert 2 <= len(cal["prob_pred"]) == len(cal["prob_true"]) <= 10
    assert all(0 <= v <= 1 for v in cal["prob_pred"] + cal["prob_true"])


def test_curves_are_thinned_to_the_point_limit(visa, binary):
    model, _ = binary
    d = diagnose(model, visa, target=TARGET, task="classification", importance_repeats=1)
    assert len(d["roc"]["fpr"]) <= MAX_CURVE_POINTS
    assert len(d["pr"]["recall"]) <= MAX_CURVE_POINTS


def test_importance_covers_every_raw_column_largest_first(binary_diag, binary):
    _, test = binary
    rows = binary_diag["permutation_importance"]
    assert binary_diag["importance_scoring"] == "roc_auc"
    assert [r["feature"] for r in rows] != []
    assert sorted(r["feature"] for r in rows) == sorted(test.columns.drop(TARGET))
    means = [r["mean"] for r in rows]
    assert means == sorted(means, reverse=True)
    assert all(r["std"] >= 0 for r in rows)
    by_name = {r["feature"]: r for r in rows}
    assert by_name["case_id"]["mean"] == 0  # dropped by the pipeline: shuffling it changes nothing
    assert rows[0]["mean"] > 0.05  # the label depends on the features


def test_same_seed_gives_the_same_diagnostics(binary, binary_diag):
    model, test = binary
    again = diagnose(model, test, target=TARGET, task="classification", seed=0)
    assert json.dumps(again, sort_keys=True) == json.dumps(binary_diag, sort_keys=True)


def test_seed_drives_the_importance_shuffles(binary, binary_diag):
    model, test = binary
    other = diagnose(model, test, target=TARGET, task="classification", seed=1)
    assert other["permutation_importance"] != binary_diag["permutation_importance"]
    assert other["roc"] == binary_diag["roc"]  # curves do not depend on the seed


def test_importance_subsample_is_seeded(binary):
    model, test = binary
    kwargs = {"target": TARGET, "task": "classification", "importance_max_rows": 200}
    first = diagnose(model, test, seed=5, **kwargs)
    assert first == diagnose(model, test, seed=5, **kwargs)
    assert first["rows"] == len(test)  # only the importance uses the subsample


def test_positive_class_picks_the_curve_side(binary, binary_diag):
    model, test = binary
    flipped = diagnose(model, test, target=TARGET, task="classification", positive="Certified")
    assert flipped["positive"] == "Certified"
    assert flipped["roc"]["auc"] == pytest.approx(binary_diag["roc"]["auc"])  # AUC is symmetric
    assert flipped["pr"]["auc"] != pytest.approx(binary_diag["pr"]["auc"])
    with pytest.raises(ValueError, match="'Approved'"):
        diagnose(model, test, target=TARGET, task="classification", positive="Approved")


def test_explicit_scoring_is_used(binary):
    model, test = binary
    d = diagnose(
        model, test, target=TARGET, task="classification", scoring="accuracy", importance_repeats=2
    )
    assert d["importance_scoring"] == "accuracy"


def test_multiclass_has_no_binary_curves(visa):
    model, test = _fit(
        visa.drop(columns=["case_id"]),
        "continent",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        FeaturesConfig(),
    )
    d = diagnose(model, test, target="continent", task="classification", importance_repeats=2)
    assert d["roc"] is d["pr"] is d["calibration"] is d["positive"] is None
    assert len(d["confusion_matrix"]["matrix"]) == len(d["labels"]) > 2
    assert d["importance_scoring"] == "balanced_accuracy"
    json.dumps(d, allow_nan=False)
    _assert_plain_json(d)


def test_multiclass_with_a_class_absent_from_the_test_rows(iris):
    """Balanced-accuracy importance must not warn when a shuffle predicts the absent class."""
    train, test = iris
    model = fit_candidate(
        train,
        target="target",
        features=FeaturesConfig(),
        candidate=CandidateConfig(name="lr", estimator="sklearn.linear_model.LogisticRegression"),
        seed=0,
    )
    test = test[test["target"] != "virginica"]
    d = diagnose(model, test, target="target", task="classification", importance_repeats=3)
    assert d["importance_scoring"] == "balanced_accuracy"
    assert d["confusion_matrix"]["labels"] == ["setosa", "versicolor", "virginica"]
    assert d["confusion_matrix"]["matrix"][2] == [0, 0, 0]  # no true virginica
    assert {"setosa", "versicolor", "virginica"} <= set(d["per_class"])
    assert d["per_class"]["virginica"]["support"] == 0
    importance = {row["feature"]: row["mean"] for row in d["permutation_importance"]}
    assert max(importance.values()) > 0.05  # the petal columns separate the two classes


def test_regression_diagnostics(regression):
    model, test = regression
    d = diagnose(model, test, target="prevailing_wage", task="regression", seed=0)
    assert {"residuals", "prediction_sample", "permutation_importance"} <= set(d)
    assert "confusion_matrix" not in d and "roc" not in d
    quantiles = list(d["residuals"]["quantiles"].values())
    assert list(d["residuals"]["quantiles"]) == ["min", "p05", "p25", "p50", "p75", "p95", "max"]
    assert quantiles == sorted(quantiles)
    assert d["residuals"]["std"] > 0
    sample = d["prediction_sample"]
    assert len(sample["y_true"]) == len(sample["y_pred"]) == min(len(test), 500)
    assert set(sample["y_true"]) <= set(test["prevailing_wage"].astype(float))
    assert d["importance_scoring"] == "r2"
    assert sorted(r["feature"] for r in d["permutation_importance"]) == sorted(REG_COLUMNS)
    json.dumps(d, allow_nan=False)
    _assert_plain_json(d)
    assert diagnose(model, test, target="prevailing_wage", task="regression", seed=0) == d


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "task must be"),
        ({"task": "classification", "target": "nope"}, "'nope'"),
    ],
)
def test_bad_arguments_raise_value_error(binary, kwargs, message):
    model, test = binary
    with pytest.raises(ValueError, match=message):
        diagnose(model, test, **{"target": TARGET, **kwargs})


def test_empty_test_frame_raises(binary):
    model, test = binary
    with pytest.raises(ValueError, match="empty"):
        diagnose(model, test.iloc[:0], target=TARGET, task="classification")


def test_to_jsonable_makes_plain_python():
    out = to_jsonable(
        {
            "a": np.float64(0.5),
            "b": np.arange(3),
            "c": (np.str_("x"), np.bool_(True)),
            "d": float("nan"),
            "e": [np.inf, 1],
            1: "int key",
        }
    )
    assert out == {
        "a": 0.5,
        "b": [0, 1, 2],
        "c": ["x", True],
        "d": None,
        "e": [None, 1],
        "1": "int key",
    }
    _assert_plain_json(out)


def test_to_jsonable_names_the_bad_value():
    with pytest.raises(TypeError, match=r"\$\.gates\[1\]: object"):
        to_jsonable({"gates": [1, object()]})
