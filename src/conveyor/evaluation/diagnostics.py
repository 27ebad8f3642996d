"""Model diagnostics as plain JSON data: confusion matrix, curves, calibration, importances."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

__all__ = [
    "MAX_CURVE_POINTS",
    "MAX_PREDICTION_SAMPLE",
    "default_scoring",
    "diagnose",
    "to_jsonable",
]

MAX_CURVE_POINTS = 200
"""ROC and PR curves are thinned to at most this many points (the AUCs use every point)."""

MAX_PREDICTION_SAMPLE = 500
"""Regression keeps at most this many ``(y_true, y_pred)`` pairs for plotting."""

_RESIDUAL_QUANTILES = {
    "min": 0.0,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.5,
    "p75": 0.75,
    "p95": 0.95,
    "max": 1.0,
}


def diagnose(
    model: Any,
    test: pd.DataFrame,
    *,
    target: str,
    task: str,
    positive: Any = None,
    importance_repeats: int = 5,
    importance_max_rows: int = 2000,
    seed: int = 0,
    scoring: str | None = None,
) -> dict[str, Any]:
    """Diagnose a fitted model on a held-out frame, as JSON-able data (no numpy, no NaN).

    Every task gets ``task``, ``rows``, ``importance_scoring`` and ``permutation_importance``
    (one ``{feature, mean, std}`` per raw input column, largest mean first; computed on the whole
    pipeline, so the features are the columns the model receives, not the encoded ones).
    Classification adds ``labels``, ``confusion_matrix`` ``{labels, matrix}`` (rows: true,
    columns: predicted), ``per_class`` (scikit-learn's ``classification_report`` dict) and, for a
    binary model with ``predict_proba``, ``positive``, ``roc`` ``{fpr, tpr, auc}``, ``pr``
    ``{precision, recall, auc}`` (``auc`` is the average precision) and ``calibration``
    ``{prob_pred, prob_true}``; these three are ``None`` when they do not apply. Regression adds
    ``residuals`` (``y_true - y_pred``: ``mean``, ``std``, ``quantiles``) and
    ``prediction_sample`` ``{y_true, y_pred}`` of at most 500 rows.

    Args:
        model: a fitted estimator taking the raw feature frame (conveyor's model pipeline).
        test: held-out rows, features and ``target``.
        target: the label column.
        task: ``classification`` or ``regression``.
        positive: the positive class of a binary model; default: the last of ``model.classes_``.
        importance_repeats: shuffles per column for permutation importance.
        importance_max_rows: rows (a seeded sample of ``test``) used for permutation importance.
        seed: seeds every sample and shuffle, so a fixed seed gives the same result.
        scoring: scikit-learn scorer for permutation importance; default
            :func:`default_scoring`.

    Returns:
        The diagnostics, ready for ``json.dumps(..., allow_nan=False)``.

    Raises:
        ValueError: unknown ``task``, ``target`` not in ``test``, an empty ``test``, or a
            ``positive`` class the model does not know.
    """
    if task not in {"classification", "regression"}:
        raise ValueError(f"task must be 'classification' or 'regression', not {task!r}")
    if target not in test.columns:
        raise ValueError(f"target column {target!r} is not in the test frame")
    if len(test) == 0:
        raise ValueError("cannot diagnose a model on an empty test frame")
    X, y = test.drop(columns=[target]), test[target]
    out: dict[str, Any] = {"task": task, "rows": len(test)}
    if task == "classification":
        out.update(_classification(model, X, y, positive=positive))
    else:
        out.update(_regression(model, X, y, seed=seed))
    chosen = scoring or default_scoring(model, y, task=task)
    out["importance_scoring"] = chosen
    out["permutation_importance"] = _importance(
        model,
        X,
        y,
        scoring=chosen,
        repeats=importance_repeats,
        max_rows=importance_max_rows,
        seed=seed,
    )
    result: dict[str, Any] = to_jsonable(out)
    return result


def default_scoring(model: Any, y: pd.Series, *, task: str) -> str:
    """The permutation-importance scorer: threshold-free, and robust to class imbalance.

    ``roc_auc`` for a binary model with ``predict_proba`` (it is the same whichever class is
    positive), ``balanced_accuracy`` for other classifiers, ``r2`` for regression.
    """
    if task == "regression":
        return "r2"
    if y.nunique() == 2 and len(model.classes_) == 2 and hasattr(model, "predict_proba"):
        return "roc_auc"
    return "balanced_accuracy"


def to_jsonable(obj: Any, *, where: str = "$") -> Any:
    """``obj`` with numpy scalars and arrays made Python, tuples made lists and NaN/inf ``None``.

    Raises:
        TypeError: a value JSON cannot hold (the message gives its path, e.g. ``$.gates[0]``).
    """
    import numpy as np

    if isinstance(obj, np.generic):  # before the builtins: np.float64 and np.str_ subclass them
        return to_jsonable(obj.item(), where=where)
    if obj is None or type(obj) in (str, bool, int):
        return obj
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, bool | int | str):  # subclasses (IntEnum, StrEnum): their plain value
        return (bool if isinstance(obj, bool) else int if isinstance(obj, int) else str)(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), where=where)
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v, where=f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, Sequence):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where}: {type(obj).__qualname__} is not JSON data")


def _classification(model: Any, X: pd.DataFrame, y: pd.Series, *, positive: Any) -> dict[str, Any]:
    import numpy as np
    from sklearn import metrics as m
    from sklearn.calibration import calibration_curve

    classes = list(model.classes_)
    if positive is not None and positive not in classes:
        raise ValueError(f"positive class {positive!r} is not one of the model's {classes}")
    y_pred = model.predict(X)
    names = [str(c) for c in classes]
    out: dict[str, Any] = {
        "labels": classes,
        "confusion_matrix": {
            "labels": classes,
            "matrix": m.confusion_matrix(y, y_pred, labels=classes),
        },
        "per_class": m.classification_report(
            y, y_pred, labels=classes, target_names=names, output_dict=True, zero_division=0
        ),
        "positive": None,
        "roc": None,
        "pr": None,
        "calibration": None,
    }
    if len(classes) != 2 or not hasattr(model, "predict_proba"):
        return out
    pos = positive if positive is not None else classes[-1]
    out["positive"] = pos
    truth = np.asarray(y == pos)
    if truth.all() or not truth.any():
        return out  # curves need both classes in the test rows
    score = model.predict_proba(X)[:, classes.index(pos)]
    fpr, tpr, _ = m.roc_curve(truth, score)
    precision, recall, _ = m.precision_recall_curve(truth, score)
    keep_roc, keep_pr = _thin(len(fpr)), _thin(len(precision))
    prob_true, prob_pred = calibration_curve(truth, score, n_bins=10, strategy="quantile")
    out["roc"] = {"fpr": fpr[keep_roc], "tpr": tpr[keep_roc], "auc": m.roc_auc_score(truth, score)}
    out["pr"] = {
        "precision": precision[keep_pr],
        "recall": recall[keep_pr],
        "auc": m.average_precision_score(truth, score),
    }
    out["calibration"] = {"prob_pred": prob_pred, "prob_true": prob_true}
    return out


def _regression(model: Any, X: pd.DataFrame, y: pd.Series, *, seed: int) -> dict[str, Any]:
    import numpy as np

    y_true = np.asarray(y, dtype=float)
    y_pred = np.asarray(model.predict(X), dtype=float)
    residual = y_true - y_pred
    quantiles = np.quantile(residual, list(_RESIDUAL_QUANTILES.values()))
    rows = np.arange(len(y_true))
    if len(rows) > MAX_PREDICTION_SAMPLE:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(rows, size=MAX_PREDICTION_SAMPLE, replace=False))
    return {
        "residuals": {
            "mean": residual.mean(),
            "std": residual.std(),
            "quantiles": dict(zip(_RESIDUAL_QUANTILES, quantiles, strict=True)),
        },
        "prediction_sample": {"y_true": y_true[rows], "y_pred": y_pred[rows]},
    }


def _importance(
    model: Any,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    scoring: str,
    repeats: int,
    max_rows: int,
    seed: int,
) -> list[dict[str, Any]]:
    import numpy as np
    from sklearn.inspection import permutation_importance

    if len(X) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(X), size=max_rows, replace=False))
        X, y = X.iloc[keep], y.iloc[keep]
    scorer: Any = scoring
    if scoring == "balanced_accuracy":  # same score, without a warning per absent class
        from sklearn.metrics import make_scorer

        from conveyor.evaluation.metrics import balanced_accuracy

        scorer = make_scorer(balanced_accuracy)
    # n_jobs=None: in-process, so no worker start-up cost and no dependence on scheduling
    result = permutation_importance(
        model, X, y, scoring=scorer, n_repeats=repeats, random_state=seed
    )
    rows = [
        {"feature": str(col), "mean": float(mean), "std": float(std)}
        for col, mean, std in zip(
            X.columns, result.importances_mean, result.importances_std, strict=True
        )
    ]
    # ties (e.g. dropped columns, all 0.0) keep the frame's column order: sorted() is stable
    return sorted(rows, key=lambda r: -r["mean"])


def _thin(n: int) -> npt.NDArray[np.intp]:
    """Indices of at most ``MAX_CURVE_POINTS`` of ``n`` points, first and last included."""
    import numpy as np

    if n <= MAX_CURVE_POINTS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, MAX_CURVE_POINTS).round().astype(np.intp))
