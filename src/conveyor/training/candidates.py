"""Candidate estimators by dotted import path, with clear errors for bad paths and params."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.config import CandidateConfig, FeaturesConfig


def build_estimator(candidate: CandidateConfig, *, where: str = "training.candidates") -> Any:
    """Instantiate ``candidate.estimator`` with ``candidate.params``.

    Raises:
        ConfigError: the path does not import, is not a class, or rejects the params.
    """
    module_name, _, attr = candidate.estimator.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{where}[{candidate.name}].estimator: cannot import {candidate.estimator!r}: {exc}"
        ) from None
    try:
        estimator = cls(**candidate.params)
    except TypeError as exc:
        raise ConfigError(f"{where}[{candidate.name}].params: {exc}") from None
    if not hasattr(estimator, "fit"):
        raise ConfigError(
            f"{where}[{candidate.name}].estimator: {candidate.estimator} has no fit() method"
        )
    return estimator


def fit_candidate(
    train: pd.DataFrame,
    *,
    target: str,
    features: FeaturesConfig,
    candidate: CandidateConfig,
    seed: int,
) -> Any:
    """Fit preprocessing + estimator as ONE sklearn Pipeline, so inference repeats training."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from conveyor.features.preprocess import build_preprocessor

    X = train.drop(columns=[target])
    estimator = build_estimator(candidate)
    if "random_state" in estimator.get_params() and "random_state" not in candidate.params:
        estimator.set_params(random_state=seed)
    model = Pipeline(
        [("preprocess", build_preprocessor(features, X)), ("estimator", clone(estimator))]
    )
    model.fit(X, train[target])
    return model
