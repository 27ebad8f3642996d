"""classification_metrics / regression_metrics: every task, awkward labels, no warnings.

pytest turns every warning into an error here, so each test also proves that scikit-learn raised
no ``UndefinedMetricWarning`` (or similar) on the rows it was given.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as m
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.evaluation.metrics import (
    LOWER_IS_BETTER,
    METRICS,
    balanced_accuracy,
    classification_metrics,
    evaluate,
    higher_is_better,
    regression_metrics,
)

TARGET = "target"
MULTICLASS = {
    "accuracy",
    "balanced_accuracy",
    "f1",
    "f1_macro",
    "f1_weighted",
    "roc_auc",
    "log_loss",
}
BINARY = MULTICLASS | {"precision", "recall", "pr_auc"}
REGRESSION = {"mse", "rmse", "mae", "r2"}


def _fit(train, estimator=None):
    model = make_pipeline(StandardScaler(), estimator or LogisticRegression(max_iter=2000))
    return model.fit(train.drop(columns=[TARGET]), train[TARGET])


def _score(model, test, **kwargs):
    X = test.drop(columns=[TARGET])
    return classification_metrics(
        test[TARGET],
        model.predict(X),
        model.predict_proba(X),
        classes=list(model.classes_),
        **kwargs,
    )


@pytest.fixture(scope="module")
def iris_model(iris):
    return _fit(iris[0])


@pytest.fixture(scope="module")
def digits_model(digits):
    return _fit(digits[0])


# --- multiclass --------------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["iris", "digits"])
def test_multiclass_metrics_match_scikit_learn(request, table):
    test = request.getfixturevalue(table)[1]
    model = request.getfixturevalue(f"{table}_model")
    X, y = test.drop(columns=[TARGET]), test[TARGET]
    pred, proba = model.predict(X), model.predict_proba(X)
    scores = evaluate(model, test, target=TARGET, task="classification")
    assert set(scores) == MULTICLASS
    assert all(type(v) is float for v in scores.values())
    assert scores["accuracy"] == pytest.approx(m.accuracy_score(y, pred))
    assert scores["balanced_accuracy"] == pytest.approx(m.balanced_accuracy_score(y, pred))
    assert scores["f1_macro"] == pytest.approx(m.f1_score(y, pred, average="macro"))
    assert scores["f1_weighted"] == pytest.approx(m.f1_score(y, pred, average="weighted"))
    assert scores["f1"] == scores["f1_macro"]  # configs with primary f1 keep working
    assert scores["roc_auc"] == pytest.approx(
        m.roc_auc_score(y, proba, multi_class="ovr", labels=model.classes_)
    )
    assert scores["log_loss"] == pytest.approx(m.log_loss(y, proba, labels=model.classes_))
    assert scores["roc_auc"] > 0.95 and scores["accuracy"] > 0.85  # a real model, not noise


def test_a_class_absent_from_the_test_rows_drops_only_roc_auc(iris, iris_model):
    test = iris[1][iris[1][TARGET] != "virginica"]
    X = test.drop(columns=[TARGET])
    proba = iris_model.predict_proba(X)
    # predictions of the absent class too: balanced accuracy must not warn about it
    pred = np.array(["virginica", *iris_model.predict(X)[1:]], dtype=object)
    classes = list(iris_model.classes_)
    scores = classification_metrics(test[TARGET], pred, proba, classes=classes)
    assert set(scores) == MULTICLASS - {"roc_auc"}
    assert scores["log_loss"] == pytest.approx(m.log_loss(test[TARGET], proba, labels=classes))
    recalls = m.recall_score(test[TARGET], pred, labels=["setosa", "versicolor"], average=None)
    assert scores["balanced_accuracy"] == pytest.approx(recalls.mean())
    assert scores["accuracy"] == pytest.approx(m.accuracy_score(test[TARGET], pred))


def test_a_true_class_the_model_never_saw_drops_the_probability_metrics():
    y = np.array(["a", "b", "c", "z"], dtype=object)
    proba = np.full((4, 3), 1 / 3)
    scores = classification_metrics(y, y, proba, classes=["a", "b", "c"])
    assert set(scores) == MULTICLASS - {"roc_auc", "log_loss"}
    assert scores["accuracy"] == 1.0


def test_categorical_string_labels_score_like_plain_strings(iris, iris_model):
    test = iris[1]
    as_category = test.assign(**{TARGET: test[TARGET].astype("category")})
    assert isinstance(as_category[TARGET].dtype, pd.CategoricalDtype)
    assert _score(iris_model, as_category) == _score(iris_model, test)


def test_probability_columns_in_any_class_order_give_the_same_scores(iris, iris_model):
    X, y = iris[1].drop(columns=[TARGET]), iris[1][TARGET]
    classes, proba = list(iris_model.classes_), iris_model.predict_proba(X)
    order = [2, 0, 1]
    shuffled = classification_metrics(
        y, iris_model.predict(X), proba[:, order], classes=[classes[i] for i in order]
    )
    assert shuffled == pytest.approx(
        classification_metrics(y, iris_model.predict(X), proba, classes=classes)
    )


def test_rounded_probabilities_still_give_roc_auc(digits, digits_model):
    X, y = digits[1].drop(columns=[TARGET]), digits[1][TARGET]
    proba = digits_model.predict_proba(X)
    rounded = proba.round(3)
    assert not np.allclose(rounded.sum(axis=1), 1.0)  # scikit-learn alone would refuse these
    scores = classification_metrics(
        y, digits_model.predict(X), rounded, classes=list(digits_model.classes_)
    )
    assert scores["roc_auc"] == pytest.approx(
        m.roc_auc_score(y, proba, multi_class="ovr"), abs=1e-3
    )


def test_proba_with_the_wrong_number_of_columns_is_a_value_error():
    with pytest.raises(ValueError, match=r"one column per class \(3\)"):
        classification_metrics(["a"], ["a"], np.ones((1, 2)), classes=["a", "b", "c"])


# --- binary ------------------------------------------------------------------------------------


def test_binary_string_labels_score_the_positive_class(breast_cancer):
    train, test = breast_cancer
    model = _fit(train)
    X, y = test.drop(columns=[TARGET]), test[TARGET]
    pred, proba = model.predict(X), model.predict_proba(X)
    col = list(model.classes_).index("malignant")
    scores = _score(model, test, positive="malignant")
    assert set(scores) == BINARY
    assert scores["f1"] == pytest.approx(m.f1_score(y, pred, pos_label="malignant"))
    assert scores["f1"] != pytest.approx(m.f1_score(y, pred, pos_label="benign"))
    assert scores["recall"] == pytest.approx(m.recall_score(y, pred, pos_label="malignant"))
    assert scores["precision"] == pytest.approx(m.precision_score(y, pred, pos_label="malignant"))
    assert scores["f1_macro"] == pytest.approx(m.f1_score(y, pred, average="macro"))
    assert scores["f1_weighted"] == pytest.approx(m.f1_score(y, pred, average="weighted"))
    assert scores["roc_auc"] == pytest.approx(m.roc_auc_score(y == "malignant", proba[:, col]))
    assert scores["pr_auc"] == pytest.approx(
        m.average_precision_score(y == "malignant", proba[:, col])
    )


def test_bool_labels(breast_cancer):
    train, test = breast_cancer
    as_bool = [frame.assign(**{TARGET: frame[TARGET] == "malignant"}) for frame in (train, test)]
    model = _fit(as_bool[0])
    assert list(model.classes_) == [False, True]
    y = as_bool[1][TARGET]
    pred = model.predict(as_bool[1].drop(columns=[TARGET]))
    scores = _score(model, as_bool[1])  # default positive: the last class, True
    assert set(scores) == BINARY
    assert scores["f1"] == pytest.approx(m.f1_score(y, pred, pos_label=True))
    assert scores == _score(model, as_bool[1], positive="True")  # text, as monitoring passes it
    assert scores == pytest.approx(_score(_fit(train), test, positive="malignant"))


def test_positive_as_text_matches_an_integer_class():
    y, pred = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1]])
    as_text = classification_metrics(y, pred, proba, classes=[0, 1], positive="0")
    assert as_text == classification_metrics(y, pred, proba, classes=[0, 1], positive=0)
    assert as_text["recall"] == 1.0  # class 0: both true 0s found
    assert classification_metrics(y, pred, proba, classes=[0, 1])["recall"] == 0.5


def test_a_positive_class_that_is_not_a_class_names_the_classes():
    with pytest.raises(ValueError, match=r"True is not one of the classes 'no', 'yes'"):
        classification_metrics(["no"], ["no"], None, classes=["no", "yes"], positive=True)
    with pytest.raises(ValueError, match="'x' is not one of the classes 0, 1$"):
        classification_metrics([0], [0], None, classes=[0, 1], positive="x")


def test_binary_test_rows_of_one_class_drop_the_curve_metrics():
    y = np.array(["no", "no", "no"], dtype=object)
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    pred = np.array(["no", "no", "yes"], dtype=object)
    scores = classification_metrics(y, pred, proba, classes=["no", "yes"], positive="yes")
    assert set(scores) == BINARY - {"roc_auc", "pr_auc"}
    assert scores["precision"] == 0.0 and scores["recall"] == 0.0
    assert scores["log_loss"] == pytest.approx(m.log_loss(y, proba, labels=["no", "yes"]))


def test_without_probabilities_only_label_metrics_are_given(iris):
    y = iris[1][TARGET]
    scores = classification_metrics(y, y, None, classes=["setosa", "versicolor", "virginica"])
    assert set(scores) == MULTICLASS - {"roc_auc", "log_loss"}
    assert all(value == 1.0 for value in scores.values())


def test_balanced_accuracy_matches_scikit_learn_when_every_predicted_class_is_true():
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    assert balanced_accuracy(y, pred) == pytest.approx(m.balanced_accuracy_score(y, pred))


# --- regression --------------------------------------------------------------------------------


def test_regression_metrics_on_diabetes(diabetes):
    train, test = diabetes
    model = _fit(train, Ridge())
    scores = evaluate(model, test, target=TARGET, task="regression")
    pred = model.predict(test.drop(columns=[TARGET]))
    assert set(scores) == REGRESSION
    assert scores["mse"] == pytest.approx(m.mean_squared_error(test[TARGET], pred))
    assert scores["rmse"] == pytest.approx(math.sqrt(scores["mse"]))
    assert scores["mae"] == pytest.approx(m.mean_absolute_error(test[TARGET], pred))
    assert scores["r2"] == pytest.approx(m.r2_score(test[TARGET], pred))
    assert 0.3 < scores["r2"] < 0.7  # diabetes is hard: a linear model explains about half


def test_one_regression_row_has_no_r2():
    assert regression_metrics([3.0], [1.0]) == {"mse": 4.0, "rmse": 2.0, "mae": 2.0}


# --- direction ---------------------------------------------------------------------------------


def _model_and_baseline(request, table, estimator, dummy):
    train, test = request.getfixturevalue(table)
    task = "regression" if table == "diabetes" else "classification"
    X, y = train.drop(columns=[TARGET]), train[TARGET]
    pair = [_fit(train, estimator), dummy.fit(X, y)]
    return task, [evaluate(model, test, target=TARGET, task=task) for model in pair]


@pytest.mark.parametrize(
    ("table", "estimator", "dummy"),
    [
        ("breast_cancer", None, DummyClassifier(strategy="prior")),
        ("iris", None, DummyClassifier(strategy="prior")),
        ("digits", None, DummyClassifier(strategy="most_frequent")),
        ("diabetes", Ridge(), DummyRegressor(strategy="mean")),
    ],
)
def test_higher_is_better_agrees_with_a_real_model_beating_a_dummy(
    request, table, estimator, dummy
):
    """Every emitted name: the fitted model beats the dummy in the direction claimed."""
    task, (model, baseline) = _model_and_baseline(request, table, estimator, dummy)
    assert set(model) == set(baseline)
    assert set(model) <= set(METRICS[task])
    for name in model:
        better = model[name] > baseline[name]
        worse = model[name] < baseline[name]
        assert better if higher_is_better(name) else worse, (name, model[name], baseline[name])


def test_lower_is_better_names_are_emitted_names():
    emitted = {name for names in METRICS.values() for name in names}
    assert LOWER_IS_BETTER <= emitted
    assert {name for name in emitted if not higher_is_better(name)} == LOWER_IS_BETTER
    assert higher_is_better("f1_weighted") and not higher_is_better("log_loss")
