"""Choosing among candidates without looking at the test split: cross-validated scores on the
training rows (the tuned score when a candidate was tuned on the same metric), and the baseline
every model must beat."""

from __future__ import annotations

import statistics
import warnings
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.config import CandidateConfig, FeaturesConfig

__all__ = ["cv_score", "fit_baseline"]


def cv_score(
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
    params: dict[str, Any] | None = None,
) -> float:
    """Mean ``metric`` of ``candidate`` over ``cv`` seeded folds of ``train`` (the same folds
    tuning uses).

    Raises:
        ConfigError: the folds cannot be made, or the candidate fails on every fold.
    """
    from conveyor.training.tuning import _evaluate, make_job

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
    outcome = _evaluate(job, dict(params or {}), [None] * cv)
    if outcome.error is not None or not outcome.fold_scores:
        raise ConfigError(
            f"training.candidates[{candidate.name}]: cross-validation failed: {outcome.error}"
        )
    return statistics.fmean(outcome.fold_scores)


def fit_baseline(train: pd.DataFrame, *, target: str, task: str, metric: str) -> tuple[Any, str]:
    """A model that ignores the features: the most frequent class (with the class shares as its
    probabilities), or the training mean (the median when the metric is ``mae``).

    Returns:
        ``(fitted model, strategy)``.
    """
    from sklearn.dummy import DummyClassifier, DummyRegressor

    model: Any
    if task == "classification":  # "prior": predicts the most frequent class, with its shares
        model, strategy = DummyClassifier(strategy="prior"), "most_frequent"
    else:
        strategy = "median" if metric == "mae" else "mean"
        model = DummyRegressor(strategy=strategy)
    X = train.drop(columns=[target])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dummies may note they ignore X
        model.fit(X, train[target])
    return model, strategy
