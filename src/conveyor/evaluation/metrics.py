"""Metrics by task: classification (imbalance-aware) and regression."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def infer_task(y: pd.Series) -> str:
    """``classification`` for non-numeric or few-valued targets, else ``regression``."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    return "classification" if y.nunique() <= 20 and (y % 1 == 0).all() else "regression"


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
    """Accuracy, balanced accuracy, precision, recall, F1, ROC AUC and log loss."""
    from sklearn import metrics as m

    binary = len(classes) == 2
    pos = positive if positive is not None else classes[-1]
    out: dict[str, float] = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "balanced_accuracy": m.balanced_accuracy_score(y_true, y_pred),
    }
    if binary:
        out["precision"] = m.precision_score(y_true, y_pred, pos_label=pos, zero_division=0)
        out["recall"] = m.recall_score(y_true, y_pred, pos_label=pos, zero_division=0)
        out["f1"] = m.f1_score(y_true, y_pred, pos_label=pos, zero_division=0)
    else:
        out["f1"] = m.f1_score(y_true, y_pred, average="macro", zero_division=0)
    if proba is not None:
        if binary:
            scores = proba[:, classes.index(pos)]
            out["roc_auc"] = m.roc_auc_score(y_true == pos, scores)
            out["pr_auc"] = m.average_precision_score(y_true == pos, scores)
        out["log_loss"] = m.log_loss(y_true, proba, labels=classes)
    return {k: float(v) for k, v in out.items()}


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """MSE, RMSE, MAE and R2."""
    from sklearn import metrics as m

    mse = float(m.mean_squared_error(y_true, y_pred))
    return {
        "mse": mse,
        "rmse": mse**0.5,
        "mae": float(m.mean_absolute_error(y_true, y_pred)),
        "r2": float(m.r2_score(y_true, y_pred)),
    }


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is better."""
    return metric not in {"mse", "rmse", "mae", "log_loss"}
