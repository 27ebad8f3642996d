"""Data-parallel training: a Dask estimator (``lightgbm.dask``) fitted on every training row,
spread over the workers, from a :class:`~conveyor.contracts.PartitionedTable`.

The preprocessing (derived features, imputation, scaling, encoding) is fitted on the training
sample the split step drew (medians, scales and the category list need no more than that), then
applied to each partition on the worker that loads it; the estimator trains on all rows. The
result is an ordinary sklearn Pipeline whose estimator is the local equivalent
(``DaskLGBMClassifier.to_local()`` -> ``LGBMClassifier``): it serves, exports and compiles like any
other model.

Where it runs: when the step is itself a task on a Dask worker (the ``dask`` executor), on that
cluster; otherwise on a local cluster of worker processes started for the fit (one per core,
``executor.workers`` to change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sklearn.base import BaseEstimator, ClassifierMixin, is_classifier

from conveyor._dask import dask_client
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from conveyor.config import CandidateConfig, FeaturesConfig
    from conveyor.contracts import PartitionedTable

DASK_ESTIMATORS = ("lightgbm.dask.",)
"""Estimator paths that train on partitions (every other candidate trains on the sample)."""


def is_distributed(candidate: CandidateConfig) -> bool:
    """The candidate's estimator trains on a Dask cluster's partitions."""
    return candidate.estimator.startswith(DASK_ESTIMATORS)


def local_equivalent(candidate: CandidateConfig) -> CandidateConfig:
    """The in-memory estimator a Dask estimator becomes (``DaskLGBMClassifier`` ->
    ``LGBMClassifier``, same params): what cross-validation on the training sample fits."""
    if not is_distributed(candidate):
        return candidate
    module, _, name = candidate.estimator.rpartition(".")
    local = f"{module.removesuffix('.dask')}.{name.replace('Dask', '', 1)}"
    return candidate.model_copy(update={"estimator": local})


def fit_distributed(
    store: Any,
    train_parts: PartitionedTable,
    sample: pd.DataFrame,
    *,
    target: str,
    features: FeaturesConfig,
    candidate: CandidateConfig,
    seed: int,
    workers: int | None = None,
) -> Any:
    """Fit ``candidate`` on every row of ``train_parts``; returns a local sklearn Pipeline.

    Raises:
        ConfigError: the artifact store lives in this process's memory (workers cannot read it).
    """
    from sklearn.pipeline import Pipeline

    from conveyor.training.candidates import build_model

    if str(getattr(store, "uri", "")).startswith("memory://"):
        raise ConfigError(
            f"training.candidates[{candidate.name}]: a Dask estimator reads the partitions from "
            "the artifact store on its workers; use a folder or an object store, not memory://"
        )
    X_sample = sample.drop(columns=[target])
    model = build_model(candidate, X_sample, features=native_categories(features), seed=seed)
    prep = Pipeline(model.steps[:-1]).fit(X_sample, sample[target])
    width = prep.transform(X_sample.iloc[:1]).shape[1]
    estimator = model.steps[-1][1]
    _quiet_lightgbm()
    with dask_client(workers=workers) as client:
        classes = None
        if is_classifier(estimator):
            classes = _classes(store, train_parts, target)
            estimator = _booster_trainer(estimator, len(classes), candidate.name)
        X, y = _arrays(store, train_parts, prep, target, width, classes)
        estimator.set_params(client=client)
        estimator.fit(X, y, categorical_feature=_category_columns(prep))
        local = estimator.to_local()
    final = local if classes is None else BoosterClassifier(local, classes)
    return Pipeline([*prep.steps, ("estimator", final)])


class BoosterClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A classifier trained on a Dask cluster, predicting like the sklearn one would.

    ``DaskLGBMClassifier`` lets each worker encode the labels it holds, so a worker whose
    partitions lack a class (data sorted by date or by label) trains on a different class
    numbering and LightGBM fails or, worse, mislabels. conveyor encodes the labels with the
    classes of the whole table instead and trains a booster with the matching objective;
    this class gives that booster the classifier's face: ``classes_``, ``predict``,
    ``predict_proba``.
    """

    def __init__(self, booster: Any = None, classes: Any = None) -> None:
        self.booster = booster
        self.classes = classes

    @property
    def classes_(self) -> np.ndarray[Any, Any]:
        """The class labels, in the order of ``predict_proba``'s columns."""
        import numpy as np

        return np.asarray(self.classes)

    @property
    def n_features_in_(self) -> int:
        """Columns the booster takes."""
        return int(self.booster.n_features_in_)

    def __sklearn_is_fitted__(self) -> bool:
        """Made fitted, from a trained booster."""
        return self.booster is not None

    def fit(self, X: Any, y: Any) -> BoosterClassifier:
        """Not refittable here: conveyor trains it on the cluster (``fit_distributed``)."""
        raise TypeError("a BoosterClassifier is trained on partitions by fit_distributed")

    def predict_proba(self, X: Any) -> np.ndarray[Any, Any]:
        """One column per class."""
        import numpy as np

        p = np.asarray(self.booster.predict(X), dtype="float64")
        return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p

    def predict(self, X: Any) -> np.ndarray[Any, Any]:
        """The most probable class."""
        labels: np.ndarray[Any, Any] = self.classes_[self.predict_proba(X).argmax(axis=1)]
        return labels


def _classes(store: Any, table: PartitionedTable, target: str) -> list[Any]:
    """Every class of the target over the whole table (one pass over its column)."""
    from conveyor.data.partitions import run_tasks

    found: set[Any] = set()
    for values in run_tasks(_Labels(store, table, target), range(len(table.parts))):
        found.update(values)
    return sorted(found)


@dataclass(frozen=True)
class _Labels:
    store: Any
    table: PartitionedTable
    target: str

    def __call__(self, index: int) -> list[Any]:
        from conveyor.data.partitions import load_part

        column = load_part(self.store, self.table, index)[self.target]
        return list(column.dropna().unique())


def _booster_trainer(estimator: Any, n_classes: int, name: str) -> Any:
    """The Dask estimator that trains the classifier's booster on integer-coded labels."""
    from lightgbm.dask import DaskLGBMRegressor

    params = {k: v for k, v in estimator.get_params().items() if k != "client"}
    if params.pop("class_weight", None) is not None:
        raise ConfigError(
            f"training.candidates[{name}].params.class_weight: not supported on Dask; "
            "use is_unbalance: true or scale_pos_weight"
        )
    if n_classes < 2:
        raise ConfigError(f"training.candidates[{name}]: the target has a single class")
    if n_classes == 2:
        params["objective"] = params.get("objective") or "binary"
    else:
        params.update(objective=params.get("objective") or "multiclass", num_class=n_classes)
    return DaskLGBMRegressor(**params)


def native_categories(features: FeaturesConfig) -> FeaturesConfig:
    """The features of a Dask LightGBM candidate: categories as integer codes that LightGBM
    splits on natively, instead of one-hot columns.

    Each worker holds its rows as a dense float32 matrix (and a second copy while LightGBM
    builds its dataset): on the visa table one-hot makes 30 columns, codes keep 12, 40% of the
    memory per row. LightGBM's own advice is the same (its categorical splits beat one-hot
    columns for trees).
    """
    categorical = features.categorical.model_copy(update={"encode": "ordinal"})
    return features.model_copy(update={"categorical": categorical})


def _category_columns(prep: Any) -> list[int]:
    """Where the category codes sit in the preprocessed matrix."""
    columns = prep.named_steps["preprocess"]
    where = columns.output_indices_.get("categorical", slice(0, 0))
    return list(range(where.start, where.stop))


def _quiet_lightgbm() -> None:
    """LightGBM's Python-side messages ("Finding random open ports for workers", "Parameter
    n_jobs will be ignored": lightgbm.dask drops the thread count it sets per worker itself) go to
    the ``conveyor.lightgbm`` logger instead of stdout and warnings, for this process."""
    import logging

    import lightgbm

    logger = logging.getLogger("conveyor.lightgbm")
    if not logger.filters:
        logger.addFilter(lambda record: "will be ignored" not in record.getMessage())
    lightgbm.register_logger(logger)


@dataclass(frozen=True)
class _Part:
    """Loads and transforms one partition on a worker."""

    store: Any
    table: PartitionedTable
    prep: Any
    target: str

    def features(self, index: int) -> np.ndarray[Any, Any]:
        from conveyor.data.partitions import load_part

        frame = load_part(self.store, self.table, index)
        out: np.ndarray[Any, Any] = self.prep.transform(frame.drop(columns=[self.target]))
        return out.astype("float32", copy=False)

    classes: list[Any] | None = None

    def labels(self, index: int) -> np.ndarray[Any, Any]:
        import pandas as pd

        from conveyor.data.partitions import load_part

        column = load_part(self.store, self.table, index)[self.target]
        if self.classes is None:
            values: np.ndarray[Any, Any] = column.to_numpy()
            return values
        codes: np.ndarray[Any, Any] = pd.Categorical(column, categories=self.classes).codes
        return codes.astype("float32")


def _arrays(
    store: Any,
    table: PartitionedTable,
    prep: Any,
    target: str,
    width: int,
    classes: list[Any] | None,
) -> tuple[Any, Any]:
    """The features and labels as dask arrays with known chunk sizes (from the manifest, so no
    pass over the data is needed to learn them)."""
    import dask.array as da
    import numpy as np
    from dask.delayed import delayed

    part = _Part(store, table, prep, target, classes)
    declared = table.dtypes[table.columns.index(target)]
    label_dtype = np.dtype("float32") if classes is not None else np.dtype(declared)
    kept = [i for i, p in enumerate(table.parts) if p.rows]
    X = da.concatenate(
        [
            da.from_delayed(
                delayed(part.features)(i), shape=(table.parts[i].rows, width), dtype="float32"
            )
            for i in kept
        ]
    )
    y = da.concatenate(
        [
            da.from_delayed(
                delayed(part.labels)(i), shape=(table.parts[i].rows,), dtype=label_dtype
            )
            for i in kept
        ]
    )
    return X, y
