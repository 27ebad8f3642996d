"""Metrics by task: classification (binary and multiclass, imbalance-aware) and regression."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

__all__ = [
    "LOWER_IS_BETTER",
    "METRICS",
    "balanced_accuracy",
    "classification_metrics",
    "evaluate",
    "higher_is_better",
    "regression_metrics",
]

METRICS: dict[str, tuple[str, ...]] = {
    "classification": (
        "accuracy",
        "balanced_accuracy",
        "precision",
        "recall",
        "f1",
        "f1_macro",
        "f1_weighted",
        "roc_auc",
        "pr_auc",
        "log_loss",
    ),
    "regression": ("mse", "rmse", "mae", "r2"),
}
"""Every metric name each task can emit, in the order it emits them (some only when they apply:
``precision``, ``recall`` and ``pr_auc`` for binary models; the probability metrics only with
probabilities; ``r2`` only with two rows or more)."""

LOWER_IS_BETTER = frozenset({"mse", "rmse", "mae", "log_loss"})
"""Metrics where a smaller value is better; every other metric is better larger."""


def evaluate(
    model: Any, test: pd.DataFrame, *, target: str, task: str, positive: Any = None
) -> dict[str, float]:
    """Score a fitted model on ``test``; classification metrics use ``positive`` as the class."""
    X, y = test.drop(columns=[target]), test[target]
    if task == "regression":
        return regression_metrics(y, model.predict(X))
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    return classification_metrics(
        y, model.predict(X), proba, classes=list(model.classes_), positive=positive
    )


def classification_metrics(
    y_true: Any, y_pred: Any, proba: Any, *, classes: list[Any], positive: Any = None
) -> dict[str, float]:
    """Score predicted classes (and probabilities) against the true classes.

    Every model gets ``accuracy``, ``balanced_accuracy`` (mean recall over the classes present
    in ``y_true``), ``f1_macro``, ``f1_weighted`` and ``f1``: the positive class's F1 for a
    binary model, else the macro F1. A binary model adds ``precision`` and ``recall`` of the
    positive class. With ``proba``, a binary model adds ``roc_auc`` and ``pr_auc`` (average
    precision) when ``y_true`` holds both classes; a multiclass model adds ``roc_auc``
    (one-vs-rest, macro) when ``y_true`` holds every class; both add ``log_loss``. A metric that
    is not defined on these rows is left out rather than reported as NaN, so no scikit-learn
    warning is raised. Probability metrics are left out if ``y_true`` holds a class the model
    does not know.

    Args:
        y_true: the true classes (array-like; a categorical Series is read by value).
        y_pred: the predicted classes.
        proba: class probabilities, one column per entry of ``classes`` in that order, or
            ``None``. Rows that do not sum to 1 (rounded values) are rescaled.
        classes: the model's classes (``model.classes_``), any order.
        positive: the positive class of a binary model, matched exactly or else as text
            (``"1"`` finds ``1``); default: the last of ``classes``.

    Returns:
        ``{name: value}``, names from :data:`METRICS` ``["classification"]``.

    Raises:
        ValueError: ``positive`` matches no class, or ``proba`` does not have one column per
            class.
    """
    import numpy as np
    from sklearn import metrics as m

    y, pred = np.asarray(y_true), np.asarray(y_pred)
    binary = len(classes) == 2
    out: dict[str, float] = {
        "accuracy": m.accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred),
    }
    f1_macro = m.f1_score(y, pred, average="macro", zero_division=0)
    if binary:
        pos = _match_class(positive, classes)
        truth, hit = y == pos, pred == pos
        out["precision"] = m.precision_score(truth, hit, zero_division=0)
        out["recall"] = m.recall_score(truth, hit, zero_division=0)
        out["f1"] = m.f1_score(truth, hit, zero_division=0)
    else:
        out["f1"] = f1_macro
    out["f1_macro"] = f1_macro
    out["f1_weighted"] = m.f1_score(y, pred, average="weighted", zero_division=0)
    if proba is not None and len(classes) >= 2:
        out.update(_probability_metrics(y, _probabilities(proba, classes), classes, positive))
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """MSE, RMSE, MAE and R2 (R2 only with two rows or more: it is undefined on one)."""
    import numpy as np
    from sklearn import metrics as m

    y, pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    mse = float(m.mean_squared_error(y, pred))
    out = {"mse": mse, "rmse": mse**0.5, "mae": float(m.mean_absolute_error(y, pred))}
    if len(y) >= 2:
        out["r2"] = float(m.r2_score(y, pred))
    return out


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better: all but :data:`LOWER_IS_BETTER`."""
    return metric not in LOWER_IS_BETTER


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean recall over the classes present in ``y_true``.

    scikit-learn's ``balanced_accuracy_score``, without its warning when a class is predicted
    that no true row has (a small test split, or a permutation-importance shuffle).
    """
    import numpy as np
    from sklearn import metrics as m
    from sklearn.utils.multiclass import unique_labels

    y = np.asarray(y_true)
    recall = m.recall_score(
        y, np.asarray(y_pred), labels=unique_labels(y), average="macro", zero_division=0
    )
    return float(recall)


def _probability_metrics(
    y: npt.NDArray[Any], proba: npt.NDArray[np.float64], classes: list[Any], positive: Any
) -> dict[str, float]:
    """ROC AUC, PR AUC (binary) and log loss, each only where it is defined on ``y``."""
    from sklearn import metrics as m

    seen = set(y.tolist())
    if not seen <= set(classes):
        return {}  # a class the model never saw has no probability column
    out: dict[str, float] = {}
    if len(classes) == 2:
        pos = _match_class(positive, classes)
        truth, score = y == pos, proba[:, classes.index(pos)]
        if truth.any() and not truth.all():
            out["roc_auc"] = m.roc_auc_score(truth, score)
            out["pr_auc"] = m.average_precision_score(truth, score)
    # scikit-learn reads the probability columns in sorted label order: put them in it
    try:
        order = sorted(range(len(classes)), key=lambda i: classes[i])
    except TypeError:  # classes of mixed types cannot be ordered; no model produces them
        return out
    labels, ordered = [classes[i] for i in order], proba[:, order]
    if len(classes) > 2 and seen == set(classes):
        try:
            out["roc_auc"] = m.roc_auc_score(y, ordered, multi_class="ovr", labels=labels)
        except ValueError:  # e.g. a class with every or no row once binarised
            pass
    out["log_loss"] = m.log_loss(y, ordered, labels=labels)
    return out


def _probabilities(proba: Any, classes: list[Any]) -> npt.NDArray[np.float64]:
    """``proba`` as floats, one column per class, every row summing to 1."""
    import numpy as np

    scores = np.asarray(proba, dtype=float)
    if scores.ndim != 2 or scores.shape[1] != len(classes):
        raise ValueError(
            f"proba has shape {scores.shape}; expected one column per class ({len(classes)})"
        )
    sums = scores.sum(axis=1, keepdims=True)
    if (sums > 0).all() and not np.allclose(sums, 1.0):
        scores = scores / sums
    return scores


def _match_class(positive: Any, classes: list[Any]) -> Any:
    """The class ``positive`` names: itself if it is one, else the class with the same text."""
    if positive is None:
        return classes[-1]
    if positive in classes:
        return classes[classes.index(positive)]
    matches = [c for c in classes if str(c) == str(positive)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(repr(c) for c in classes)  # two: only a binary model has a positive class
    raise ValueError(f"positive class {positive!r} is not one of the classes {shown}")
