"""Derived columns from user functions (``module:function``, frame -> frame), run inside the model.

The functions are referenced by import path, so the saved model pipeline re-imports and re-runs
them at inference: serving computes exactly the features training saw.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd


def resolve(path: str, *, where: str = "features.derive") -> Callable[[pd.DataFrame], Any]:
    """Import ``module:function``.

    Raises:
        ConfigError: the path is malformed, does not import, or is not callable.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"{where}: expected 'module:function', got {path!r}")
    try:
        func = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{where}: cannot import {path!r}: {exc}") from None
    if not callable(func):
        raise ConfigError(f"{where}: {path!r} is not a function")
    return func  # type: ignore[no-any-return]


def apply_derivations(X: pd.DataFrame, functions: Sequence[str] = ()) -> pd.DataFrame:
    """Run each derive function on a copy of ``X``; each returns the frame with new columns."""
    import pandas as pd

    out = X.copy()
    for path in functions:
        result = resolve(path)(out)
        if not isinstance(result, pd.DataFrame):
            raise TypeError(
                f"features.derive: {path} returned {type(result).__name__}, not a DataFrame"
            )
        out = result
    return out


def derivation_step(functions: Sequence[str]) -> Any:
    """A FunctionTransformer running the functions (picklable: it stores the import paths)."""
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(
        apply_derivations,
        kw_args={"functions": list(functions)},
        validate=False,
        feature_names_out="one-to-one" if not functions else None,
    )
