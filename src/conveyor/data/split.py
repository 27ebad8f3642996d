"""Train/test split: seeded, stratified on the target when asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd


def train_test(
    df: pd.DataFrame, *, target: str, test_size: float, stratify: bool, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into train and test frames.

    Raises:
        DataValidationError: the target column is missing or a class is too small to stratify.
    """
    from sklearn.model_selection import train_test_split

    if target not in df.columns:
        raise DataValidationError(
            f"target column {target!r} (data.target) not in the data; columns: {list(df.columns)}"
        )
    labels = df[target] if stratify else None
    try:
        train, test = train_test_split(df, test_size=test_size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataValidationError(f"cannot split on {target!r}: {exc}") from exc
    return train, test
