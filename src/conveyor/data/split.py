"""Train/test (and optional validation) split: seeded, stratified on the target when asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd


def train_test(
    df: pd.DataFrame,
    *,
    target: str,
    test_size: float,
    stratify: bool,
    seed: int,
    validation_size: float = 0.0,
) -> tuple[pd.DataFrame, ...]:
    """Split ``df`` into ``(train, test)``, or ``(train, validation, test)`` when
    ``validation_size`` > 0 (sizes are fractions of the whole frame).

    Raises:
        DataValidationError: the target column is missing, or a class is too small to stratify.
    """
    from sklearn.model_selection import train_test_split

    if target not in df.columns:
        raise DataValidationError(
            f"target column {target!r} (data.target) not in the data; columns: {list(df.columns)}"
        )
    if df[target].isna().any():
        rows = [int(i) + 1 for i in df.index[df[target].isna()][:5]]
        raise DataValidationError(
            f"target column {target!r} has {int(df[target].isna().sum())} missing values "
            f"(rows {rows}); declare it `nullable: false` with severity drop to remove them"
        )

    if stratify and df[target].nunique() < 2:
        classes = sorted(map(str, df[target].unique()))
        raise DataValidationError(
            f"target column {target!r} has only one class {classes}: a classifier needs at "
            "least two (check the data, or set data.split.stratify: false for a regression)"
        )

    def cut(frame: pd.DataFrame, size: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        labels = frame[target] if stratify else None
        try:
            kept, held = train_test_split(frame, test_size=size, stratify=labels, random_state=seed)
        except ValueError as exc:
            counts = frame[target].value_counts().to_dict()
            raise DataValidationError(
                f"cannot split on {target!r} (class counts {counts}): {exc}"
            ) from None
        return kept, held

    rest, test = cut(df, test_size)
    if validation_size <= 0:
        return rest, test
    train, validation = cut(rest, validation_size / (1 - test_size))
    return train, validation, test
