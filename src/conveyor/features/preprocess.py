"""Build the preprocessing half of the model pipeline from the ``features`` config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.config import FeaturesConfig

_SCALERS = {
    "standard": "sklearn.preprocessing.StandardScaler",
    "minmax": "sklearn.preprocessing.MinMaxScaler",
    "robust": "sklearn.preprocessing.RobustScaler",
}


def split_columns(X: pd.DataFrame, drop: list[str]) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns of ``X``, after dropping ``drop``."""
    import pandas as pd

    kept = [c for c in X.columns if c not in set(drop)]
    numeric = [
        c
        for c in kept
        if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
    ]
    categorical = [c for c in kept if c not in numeric]
    return numeric, categorical


def build_preprocessor(config: FeaturesConfig, X: pd.DataFrame) -> Any:
    """An unfitted ``ColumnTransformer`` for ``X``: impute/scale numbers, impute/encode categories.

    Columns in ``config.drop`` are removed; every other column is typed by its dtype.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    numeric, categorical = split_columns(X, config.drop)
    num_steps: list[Any] = []
    if config.numeric.impute != "none":
        num_steps.append(SimpleImputer(strategy=config.numeric.impute))
    if config.numeric.scale != "none":
        num_steps.append(_instantiate(_SCALERS[config.numeric.scale]))
    cat_steps: list[Any] = []
    if config.categorical.impute != "none":
        cat_steps.append(SimpleImputer(strategy=config.categorical.impute, fill_value="missing"))
    if config.categorical.encode == "onehot":
        cat_steps.append(OneHotEncoder(handle_unknown="ignore", sparse_output=False))
    else:
        cat_steps.append(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(
            ("numeric", make_pipeline(*num_steps) if num_steps else "passthrough", numeric)
        )
    if categorical:
        transformers.append(("categorical", make_pipeline(*cat_steps), categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def _instantiate(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)()
