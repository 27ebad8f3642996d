"""Performance from labels: the training metrics recomputed on current rows whose outcome
is known, next to the metrics the model version had on its test split."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from conveyor.errors import DataValidationError
from conveyor.monitoring.current import PREDICTION, PROBA_PREFIX
from conveyor.monitoring.profile import label_text, positive_class

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.store.metadata import ModelVersionRecord


@dataclass(frozen=True)
class MetricChange:
    """One metric on the labelled current rows next to its value on the test split."""

    name: str
    training: float | None
    current: float
    change: float | None


@dataclass(frozen=True)
class Performance:
    """The training metrics recomputed on labelled current rows."""

    rows: int
    unlabelled: int
    key: str
    task: str
    metrics: list[MetricChange]

    def by_name(self) -> dict[str, MetricChange]:
        """The metrics by name."""
        return {m.name: m for m in self.metrics}

    def to_json(self) -> dict[str, Any]:
        """Plain data (the drift report's ``performance``)."""
        return asdict(self)


def performance(
    record: ModelVersionRecord,
    current: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    key: str,
    target: str,
    positive: Any,
    task: str,
) -> Performance:
    """The training metrics recomputed on labelled current rows, next to the test metrics.

    ``labels`` holds ``key`` (an id column of the inputs, or ``request_id``) and ``target``.
    Classification: the classes are compared as text (:func:`label_text`: ``1``, ``1.0`` and
    ``"1"`` are one class; ``True`` is ``"True"``); multiclass scores are macro averages, as
    at training. Regression: the errors of the predicted values. Rows whose label is missing
    are left out (counted in ``unlabelled``).

    Raises:
        DataValidationError: a column is missing or no labelled row matches.
    """
    import pandas as pd

    for frame, name, cols in ((labels, "labels", (key, target)), (current, "current", (key,))):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise DataValidationError(f"{name}: missing column(s) {', '.join(missing)}")
    joined = _join_labels(current, labels, key=key, target=target)
    truth = f"{target}_label" if f"{target}_label" in joined.columns else target
    if task == "regression":
        joined[truth] = pd.to_numeric(joined[truth], errors="coerce")
    labelled = joined[joined[truth].notna()]
    if labelled.empty:
        raise DataValidationError(
            f"labels: no labelled row matches a current row on {key!r} "
            f"({len(joined)} matched, all without a {target!r} value)"
        )
    if task == "regression":
        scores = _regression_scores(labelled, truth)
    else:
        scores = _classification_scores(labelled, truth, positive)
    rows = [
        MetricChange(
            name=name,
            training=record.metrics.get(name),
            current=value,
            change=None if record.metrics.get(name) is None else value - record.metrics[name],
        )
        for name, value in scores.items()
    ]
    return Performance(
        rows=len(labelled),
        unlabelled=len(joined) - len(labelled),
        key=key,
        task=task,
        metrics=rows,
    )


def _join_labels(
    current: pd.DataFrame, labels: pd.DataFrame, *, key: str, target: str
) -> pd.DataFrame:
    """Current rows with their label (the last one given per key), matched on ``key`` (as
    text when the two sides typed the key differently, e.g. ids read from CSV and Parquet)."""
    labels = labels[[key, target]].drop_duplicates(subset=key, keep="last")
    if current[key].dtype != labels[key].dtype:
        current = current.assign(**{key: label_text(current[key])})
        labels = labels.assign(**{key: label_text(labels[key])})
    return current.merge(labels, on=key, how="inner", suffixes=("", "_label"))


def _regression_scores(joined: pd.DataFrame, truth: str) -> dict[str, float]:
    import pandas as pd

    from conveyor.evaluation.metrics import regression_metrics

    predicted = pd.to_numeric(joined[PREDICTION], errors="coerce")
    kept = predicted.notna()
    return regression_metrics(joined.loc[kept, truth], predicted[kept])


def _classification_scores(joined: pd.DataFrame, truth: str, positive: Any) -> dict[str, float]:
    import warnings

    from conveyor.evaluation.metrics import classification_metrics

    proba_cols = [str(c) for c in joined.columns if str(c).startswith(PROBA_PREFIX)]
    classes = list(label_text([c.removeprefix(PROBA_PREFIX) for c in proba_cols]))
    y_true, y_pred = label_text(joined[truth]), label_text(joined[PREDICTION])
    # Probability scores (ROC AUC, log loss) need every true class among the model's, and
    # ROC AUC two of them among the labelled rows.
    known = len(classes) >= 2 and set(y_true) <= set(classes) and y_true.nunique() >= 2
    proba = joined[proba_cols].to_numpy(dtype="float64") if known else None
    classes = classes if known else sorted(set(y_true) | set(y_pred))
    with warnings.catch_warnings():  # a small batch may lack some classes: that is no news
        warnings.simplefilter("ignore", UserWarning)
        return classification_metrics(
            y_true,
            y_pred,
            proba,
            classes=classes,
            positive=positive_class(classes, positive) if len(classes) == 2 else None,
        )
