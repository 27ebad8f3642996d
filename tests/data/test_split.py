"""Train/test(/validation) split: seeded, stratified, and errors naming column, rows, classes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.data.split import train_test
from conveyor.errors import DataValidationError


@pytest.fixture
def frame() -> pd.DataFrame:
    """100 rows: 70 ``yes`` then 30 ``no`` (a plain head/tail cut would be unbalanced)."""
    labels = ["yes"] * 70 + ["no"] * 30
    return pd.DataFrame({"x": np.arange(100), "y": labels})


def _ids(part: pd.DataFrame) -> list[int]:
    return part["x"].tolist()


def test_seeded_split_is_reproducible(frame: pd.DataFrame) -> None:
    first = train_test(frame, target="y", test_size=0.25, stratify=True, seed=7)
    again = train_test(frame, target="y", test_size=0.25, stratify=True, seed=7)
    assert len(first) == 2
    for a, b in zip(first, again, strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_another_seed_gives_another_split(frame: pd.DataFrame) -> None:
    _, test_a = train_test(frame, target="y", test_size=0.25, stratify=False, seed=1)
    _, test_b = train_test(frame, target="y", test_size=0.25, stratify=False, seed=2)
    assert sorted(_ids(test_a)) != sorted(_ids(test_b))


@pytest.mark.parametrize("test_size", [0.2, 0.25, 0.33])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_stratified_split_preserves_class_ratios(
    frame: pd.DataFrame, test_size: float, seed: int
) -> None:
    train, test = train_test(frame, target="y", test_size=test_size, stratify=True, seed=seed)
    for part in (train, test):
        expected = part.shape[0] * frame["y"].value_counts(normalize=True)
        counts = part["y"].value_counts()
        for label in ("yes", "no"):
            assert abs(counts[label] - expected[label]) <= 1, (label, counts.to_dict())


def test_train_and_test_cover_the_frame_without_overlap(frame: pd.DataFrame) -> None:
    train, test = train_test(frame, target="y", test_size=0.2, stratify=True, seed=3)
    assert (len(train), len(test)) == (80, 20)
    assert set(train.index).isdisjoint(test.index)
    assert set(train.index) | set(test.index) == set(frame.index)


@pytest.mark.parametrize("stratify", [True, False])
def test_validation_size_gives_three_disjoint_frames(frame: pd.DataFrame, stratify: bool) -> None:
    parts = train_test(
        frame, target="y", test_size=0.2, validation_size=0.1, stratify=stratify, seed=5
    )
    assert len(parts) == 3
    train, validation, test = parts
    assert (len(train), len(validation), len(test)) == (70, 10, 20)
    assert len(train) + len(validation) + len(test) == len(frame)
    indexes = [set(p.index) for p in parts]
    assert indexes[0].isdisjoint(indexes[1])
    assert indexes[0].isdisjoint(indexes[2])
    assert indexes[1].isdisjoint(indexes[2])
    assert set().union(*indexes) == set(frame.index)
    # Rows travel intact: the index still points at the same data.
    for part in parts:
        pd.testing.assert_frame_equal(part, frame.loc[part.index])


def test_validation_split_is_stratified_too(frame: pd.DataFrame) -> None:
    _, validation, _ = train_test(
        frame, target="y", test_size=0.2, validation_size=0.2, stratify=True, seed=5
    )
    assert validation["y"].value_counts().to_dict() == {"yes": 14, "no": 6}


def test_missing_target_column_names_it(frame: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError) as info:
        train_test(frame, target="label", test_size=0.2, stratify=True, seed=0)
    message = str(info.value)
    assert "'label'" in message
    assert "data.target" in message
    assert "columns: 'x', 'y'" in message


def test_missing_target_values_name_the_column_and_rows(frame: pd.DataFrame) -> None:
    frame.loc[[4, 9], "y"] = None
    with pytest.raises(DataValidationError) as info:
        train_test(frame, target="y", test_size=0.2, stratify=False, seed=0)
    message = str(info.value)
    assert "'y'" in message
    assert "2 missing values" in message
    assert "rows [5, 10]" in message


def test_single_member_class_under_stratify_names_class_counts() -> None:
    frame = pd.DataFrame({"x": range(10), "y": ["a"] * 9 + ["b"]})
    with pytest.raises(DataValidationError) as info:
        train_test(frame, target="y", test_size=0.2, stratify=True, seed=0)
    message = str(info.value)
    assert "'y'" in message
    assert "1 class(es) with fewer than 2 rows ('b': 1)" in message
    assert "stratify: false" in message
    assert info.value.__cause__ is None


def test_many_rare_classes_give_a_short_message() -> None:
    """Hundreds of singleton classes: the message lists five and counts the rest."""
    frame = pd.DataFrame({"x": range(400), "y": [f"c{i}" for i in range(300)] + ["a"] * 100})
    with pytest.raises(DataValidationError) as info:
        train_test(frame, target="y", test_size=0.2, stratify=True, seed=0)
    message = str(info.value)
    assert "300 class(es) with fewer than 2 rows" in message
    assert "and 295 more" in message
    assert len(message) < 400


def test_regression_target_is_stratified_on_quantile_bins() -> None:
    """A continuous target (every value distinct) splits under stratify: true, and the test
    split spans the target's range: each decile of the target is in it."""
    import numpy as np

    values = np.random.default_rng(0).lognormal(size=500)
    frame = pd.DataFrame({"x": range(500), "y": values})
    train, test = train_test(frame, target="y", test_size=0.2, stratify=True, seed=3)
    assert (len(train), len(test)) == (400, 100)
    deciles = pd.qcut(frame["y"], 10, labels=False)
    assert deciles.loc[test.index].value_counts().to_dict() == dict.fromkeys(range(10), 10)


def test_whole_number_regression_target_with_task_given() -> None:
    """A count target with few values would look like classes; task=regression bins it."""
    frame = pd.DataFrame({"x": range(60), "y": [i % 7 for i in range(59)] + [200]})
    train, test = train_test(
        frame, target="y", test_size=0.2, stratify=True, seed=0, task="regression"
    )
    assert len(train) + len(test) == 60


def test_tiny_regression_table_splits_without_bins() -> None:
    frame = pd.DataFrame({"x": range(5), "y": [0.1, 0.5, 0.2, 0.9, 0.3]})
    train, test = train_test(frame, target="y", test_size=0.2, stratify=True, seed=0)
    assert (len(train), len(test)) == (4, 1)


def test_single_member_class_is_fine_without_stratify() -> None:
    frame = pd.DataFrame({"x": range(10), "y": ["a"] * 9 + ["b"]})
    train, test = train_test(frame, target="y", test_size=0.2, stratify=False, seed=0)
    assert (len(train), len(test)) == (8, 2)
