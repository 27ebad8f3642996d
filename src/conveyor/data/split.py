"""Train/test (and optional validation) split: seeded, stratified on the target when asked.

Classes are stratified as they are; a regression target on quantile bins of equal size, so the
test split covers the whole range of the target (never on its values, which are nearly all
different).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor._text import short_list
from conveyor.data.target import check_classes, infer_task
from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

MAX_BINS = 10
"""Quantile bins a regression target is stratified on (fewer on small tables)."""


def train_test(
    df: pd.DataFrame,
    *,
    target: str,
    test_size: float,
    stratify: bool,
    seed: int,
    validation_size: float = 0.0,
    task: str | None = None,
) -> tuple[pd.DataFrame, ...]:
    """Split ``df`` into ``(train, test)``, or ``(train, validation, test)`` when
    ``validation_size`` > 0 (sizes are fractions of the whole frame).

    ``task`` (inferred from the target when None) decides how ``stratify`` works: on the
    classes, or on quantile bins of a regression target.

    Raises:
        DataValidationError: the target column is missing or has missing values, a classifier's
            target has one class, or a class has too few rows to appear on both sides.
    """
    from sklearn.model_selection import train_test_split

    if target not in df.columns:
        raise DataValidationError(
            f"target column {target!r} (data.target) not in the data; "
            f"columns: {short_list(df.columns, limit=10)}"
        )
    y = df[target]
    if y.isna().any():
        rows = [int(i) + 1 for i in df.index[y.isna()][:5]]
        raise DataValidationError(
            f"target column {target!r} has {int(y.isna().sum())} missing values "
            f"(rows {rows}); declare it `nullable: false` with severity drop to remove them"
        )
    task = task or infer_task(y)
    if task == "classification":
        if y.nunique() < 2:
            raise DataValidationError(
                f"target column {target!r} has only one class {short_list(y.unique())}: a "
                "classifier needs at least two (or set training.task: regression)"
            )
        if stratify:
            check_classes(
                y,
                target=target,
                min_rows=2,
                where="data.split",
                why="a stratified split needs 2 rows of each class; drop or merge rare classes "
                "(schema.yaml `allowed` with severity drop) or set data.split.stratify: false",
            )

    def cut(frame: pd.DataFrame, size: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        labels = _strata(frame[target], task=task, size=size) if stratify else None
        try:
            kept, held = train_test_split(frame, test_size=size, stratify=labels, random_state=seed)
        except ValueError as exc:
            raise DataValidationError(
                f"cannot split {len(frame)} rows on {target!r} with test_size {size:g}: {exc}"
            ) from None
        return kept, held

    rest, test = cut(df, test_size)
    if validation_size <= 0:
        return rest, test
    train, validation = cut(rest, validation_size / (1 - test_size))
    return train, validation, test


def _strata(y: pd.Series, *, task: str, size: float) -> pd.Series | None:
    """What to stratify on: the classes, or equal-count quantile bins of a numeric target
    (as many as leave at least two rows per bin on the smaller side of the split)."""
    import numpy as np
    import pandas as pd

    if task == "classification":
        return y
    n = len(y)
    smaller = min(size, 1 - size) * n
    bins = int(min(MAX_BINS, smaller // 2))
    if bins < 2:
        return None
    ranks = y.rank(method="first").to_numpy() - 1  # 0 .. n-1, ties broken by position
    return pd.Series(np.floor(ranks * bins / n).astype("int64"), index=y.index)
