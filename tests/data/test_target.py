"""The target: task inference, and the positive class matched as text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.data.target import check_classes, infer_task, resolve_positive
from conveyor.errors import DataValidationError


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["a", "b", "a"], "classification"),
        ([True, False, True], "classification"),
        ([0, 1, 2, 1, 0], "classification"),
        ([0.5, 1.25, 3.0, 2.0], "regression"),
        (list(range(100)), "regression"),
        ([1.0, 2.0, np.nan, 1.0], "classification"),  # whole numbers with a gap
    ],
)
def test_infer_task(values: list[object], task: str) -> None:
    assert infer_task(pd.Series(values)) == task


@pytest.mark.parametrize("given", ["yes", "Yes", "YES", " yes"])
def test_positive_matches_text_classes_whatever_the_case(given: str) -> None:
    assert resolve_positive(["no", "yes"], given, where="x") == "yes"


@pytest.mark.parametrize("given", [True, "true", "True"])
def test_positive_matches_boolean_classes(given: object) -> None:
    assert resolve_positive([np.bool_(False), np.bool_(True)], given, where="x") is np.True_


@pytest.mark.parametrize("given", [1, "1", 1.0])
def test_positive_matches_integer_classes(given: object) -> None:
    resolved = resolve_positive([np.int64(0), np.int64(1)], given, where="x")
    assert resolved == 1 and isinstance(resolved, np.integer)


def test_a_positive_that_matches_no_class_names_the_classes() -> None:
    with pytest.raises(DataValidationError) as info:
        resolve_positive(["Certified", "Denied"], "Approved", where="data.positive_class")
    message = str(info.value)
    assert message.startswith("data.positive_class: positive_class 'Approved' matches none")
    assert "'Certified', 'Denied'" in message


def test_none_means_no_positive() -> None:
    assert resolve_positive(["a", "b"], None, where="x") is None


def test_check_classes_lists_the_small_classes_briefly() -> None:
    y = pd.Series(["big"] * 50 + [f"r{i}" for i in range(12)])
    with pytest.raises(DataValidationError) as info:
        check_classes(y, target="t", min_rows=3, why="needed for folds", where="split")
    message = str(info.value)
    assert "12 class(es) with fewer than 3 rows" in message
    assert "and 7 more" in message
    assert message.endswith("needed for folds")
    check_classes(y[:50], target="t", min_rows=3, why="", where="split")  # big only: fine
