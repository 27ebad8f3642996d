"""The target column: which task it is, its classes, and the positive class matched as text."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from conveyor._text import short_list, short_mapping
from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

Task = Literal["classification", "regression"]
MAX_CLASSES = 20
"""A whole-number target with at most this many distinct values is taken for classes."""


def infer_task(y: pd.Series) -> Task:
    """``classification`` for text, boolean, or whole-number targets with few distinct values;
    ``regression`` for other numbers."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.dropna()
    whole = bool((values % 1 == 0).all())
    return "classification" if whole and values.nunique() <= MAX_CLASSES else "regression"


def _text(value: Any) -> str:
    """A class as text for matching: ``True`` / ``"true"`` / ``"TRUE"`` alike, ``1.0`` as ``1``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if hasattr(value, "item"):
        return _text(value.item())
    return str(value).strip().lower()


def resolve_positive(classes: Iterable[Any], positive: Any, *, where: str) -> Any:
    """The class ``positive`` names, matched as text (``yes``, ``"yes"``, ``Yes`` and, for a
    column of booleans, ``true`` and ``True`` all name the same class). None gives None.

    Raises:
        DataValidationError: ``positive`` matches none of ``classes`` (naming them), or more
            than one.
    """
    if positive is None:
        return None
    known = list(classes)
    exact = [c for c in known if c == positive and type(c) is type(positive)]
    if exact:
        return exact[0]
    matches = [c for c in known if _text(c) == _text(positive)]
    if len(matches) == 1:
        return matches[0]
    problem = "matches none" if not matches else "matches more than one"
    raise DataValidationError(
        f"{where}: positive_class {positive!r} {problem} of the target's classes "
        f"{short_list(known, limit=10)}"
    )


def check_classes(y: pd.Series, *, target: str, min_rows: int, why: str, where: str) -> None:
    """Every class has at least ``min_rows`` rows.

    Raises:
        DataValidationError: naming the classes below ``min_rows`` and what needs them.
    """
    counts = y.value_counts()
    small = counts[counts < min_rows]
    if len(small):
        raise DataValidationError(
            f"{where}: target {target!r}: {len(small)} class(es) with fewer than {min_rows} "
            f"rows ({short_mapping(small.to_dict())}); {why}"
        )
