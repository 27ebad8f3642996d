"""Build the preprocessing half of the model pipeline from the ``features`` config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import pandas as pd

    from conveyor.config import FeaturesConfig

_SCALERS = {
    "standard": "sklearn.preprocessing.StandardScaler",
    "minmax": "sklearn.preprocessing.MinMaxScaler",
    "robust": "sklearn.preprocessing.RobustScaler",
}


def split_columns(X: pd.DataFrame, drop: list[str]) -> tuple[list[str], list[str], list[str]]:
    """Numeric, categorical and datetime feature columns of ``X``, after dropping ``drop``."""
    import pandas as pd

    kept = [c for c in X.columns if c not in set(drop)]
    dates = [c for c in kept if pd.api.types.is_datetime64_any_dtype(X[c])]
    numeric = [
        c
        for c in kept
        if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])
    ]
    categorical = [c for c in kept if c not in numeric and c not in dates]
    return numeric, categorical, dates


def date_parts(X: Any, parts: Sequence[str] = ("year", "month", "day", "dayofweek")) -> Any:
    """Each datetime column as numbers: one column per part (a missing date gives NaN)."""
    import numpy as np
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    out: list[np.ndarray[Any, Any]] = []
    for name in frame.columns:
        values = pd.to_datetime(frame[name], errors="coerce", utc=True)
        out += [
            getattr(values.dt, _PANDAS_PART.get(p, p)).to_numpy(dtype="float64", na_value=np.nan)
            for p in parts
        ]
    return np.column_stack(out) if out else np.empty((len(frame), 0))


_PANDAS_PART = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}


def date_part_names(transformer: Any, input_features: Sequence[str]) -> list[str]:
    """Output names of :func:`date_parts`: ``<column>_<part>``."""
    parts = (transformer.kw_args or {}).get("parts", ())
    return [f"{name}_{part}" for name in input_features for part in parts]


def _as_text(X: Any) -> np.ndarray[Any, Any]:
    """Categories as text objects, missing ones as NaN (nullable booleans and mixed types
    become plain strings the imputer and encoder accept)."""
    import numpy as np
    import pandas as pd

    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    text = frame.astype("string").astype(object)
    return text.where(frame.notna(), np.nan).to_numpy(dtype=object)


def build_preprocessor(config: FeaturesConfig, X: pd.DataFrame) -> Any:
    """An unfitted ``ColumnTransformer`` for ``X``: impute/scale numbers, impute/encode categories,
    turn datetimes into their parts (year, month, ...).

    Columns in ``config.drop`` are removed; every other column is typed by its dtype.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        OrdinalEncoder,
    )

    numeric, categorical, dates = split_columns(X, config.drop)
    num_steps: list[Any] = []
    if config.numeric.impute != "none":
        num_steps.append(SimpleImputer(strategy=config.numeric.impute))
    if config.numeric.scale != "none":
        num_steps.append(_instantiate(_SCALERS[config.numeric.scale]))
    cat = config.categorical
    cat_steps: list[Any] = [
        FunctionTransformer(_as_text, validate=False, feature_names_out="one-to-one")
    ]
    if cat.impute != "none":
        cat_steps.append(SimpleImputer(strategy=cat.impute, fill_value="missing"))
    if cat.encode == "onehot":
        min_frequency = cat.min_frequency
        if min_frequency is not None and min_frequency >= 1:
            min_frequency = int(min_frequency)
        cat_steps.append(
            OneHotEncoder(
                handle_unknown="infrequent_if_exist"
                if min_frequency or cat.max_categories
                else "ignore",
                sparse_output=False,
                min_frequency=min_frequency,
                max_categories=cat.max_categories,
            )
        )
    else:
        cat_steps.append(OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(
            ("numeric", make_pipeline(*num_steps) if num_steps else "passthrough", numeric)
        )
    if categorical:
        transformers.append(("categorical", make_pipeline(*cat_steps), categorical))
    if dates:
        parts = FunctionTransformer(
            date_parts,
            kw_args={"parts": list(config.datetime.parts)},
            validate=False,
            feature_names_out=date_part_names,
        )
        transformers.append(
            ("datetime", make_pipeline(parts, SimpleImputer(strategy="median")), dates)
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def _instantiate(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)()
