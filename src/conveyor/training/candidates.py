"""Candidate estimators by dotted import path, with clear errors for bad paths and params."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

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
    # Checked BEFORE the call: a dotted path can name any callable (subprocess.getoutput).
    if not isinstance(cls, type) or not callable(getattr(cls, "fit", None)):
        raise ConfigError(
            f"{where}[{candidate.name}].estimator: {candidate.estimator} is not an estimator "
            "class (a class with a fit() method, e.g. sklearn.linear_model.LogisticRegression)"
        )
    try:
        return cls(**candidate.params)
    except TypeError as exc:
        raise ConfigError(f"{where}[{candidate.name}].params: {exc}") from None


def build_model(
    candidate: CandidateConfig,
    X: pd.DataFrame,
    *,
    features: FeaturesConfig,
    seed: int,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """An unfitted sklearn Pipeline: derive -> preprocess -> estimator.

    ``params`` (tuned values) override ``candidate.params``. Estimators that take a
    ``random_state`` get ``seed`` unless the params set one, so fits are reproducible.
    """
    from sklearn.pipeline import Pipeline

    from conveyor.features.derive import apply_derivations, derivation_step
    from conveyor.features.preprocess import build_preprocessor

    merged = candidate.model_copy(update={"params": {**candidate.params, **(params or {})}})
    estimator = build_estimator(merged)
    if "random_state" in estimator.get_params() and "random_state" not in merged.params:
        estimator.set_params(random_state=seed)
    steps: list[tuple[str, Any]] = []
    if features.derive:
        steps.append(("derive", derivation_step(features.derive)))
        X = apply_derivations(X, features.derive)
    steps += [("preprocess", build_preprocessor(features, X)), ("estimator", estimator)]
    return Pipeline(steps)


def fit_candidate(
    train: pd.DataFrame,
    *,
    target: str,
    features: FeaturesConfig,
    candidate: CandidateConfig,
    seed: int,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """Fit preprocessing + estimator as ONE sklearn Pipeline, so inference repeats training."""
    X = train.drop(columns=[target])
    model = build_model(candidate, X, features=features, seed=seed, params=params)
    model.fit(X, train[target])
    return model
