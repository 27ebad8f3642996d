"""Dataset fingerprints: content, columns, dtypes and schema hash; row order on request."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.data.versioning import fingerprint


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [1, 2, 3, 4], "name": ["a", "b", "c", "d"], "wage": [1.5, 2.5, None, 4.0]}
    )


def test_same_frame_same_fingerprint(frame: pd.DataFrame) -> None:
    first = fingerprint(frame)
    assert first == fingerprint(frame.copy(deep=True))
    assert first == fingerprint(pd.DataFrame(frame.to_dict(orient="list")))
    assert len(first) == 64
    int(first, 16)


def test_index_labels_do_not_count(frame: pd.DataFrame) -> None:
    assert fingerprint(frame) == fingerprint(frame.set_axis([10, 20, 30, 40]))


@pytest.mark.parametrize(
    ("column", "row", "value"),
    [("id", 0, 9), ("name", 3, "z"), ("wage", 2, 0.0), ("wage", 0, None)],
)
def test_one_changed_cell_changes_it(
    frame: pd.DataFrame, column: str, row: int, value: object
) -> None:
    changed = frame.copy()
    changed.loc[row, column] = value
    assert fingerprint(changed) != fingerprint(frame)


def test_renamed_column_changes_it(frame: pd.DataFrame) -> None:
    assert fingerprint(frame.rename(columns={"name": "label"})) != fingerprint(frame)


def test_column_order_changes_it(frame: pd.DataFrame) -> None:
    assert fingerprint(frame[["name", "id", "wage"]]) != fingerprint(frame)


def test_dtype_change_changes_it(frame: pd.DataFrame) -> None:
    assert fingerprint(frame.astype({"id": "float64"})) != fingerprint(frame)
    assert fingerprint(frame.astype({"id": "int32"})) != fingerprint(frame)


def test_added_or_removed_row_changes_it(frame: pd.DataFrame) -> None:
    assert fingerprint(frame.iloc[:-1]) != fingerprint(frame)
    assert fingerprint(pd.concat([frame, frame.iloc[:1]])) != fingerprint(frame)


def test_schema_hash_changes_it(frame: pd.DataFrame) -> None:
    plain = fingerprint(frame)
    assert fingerprint(frame, schema_hash="a" * 64) != plain
    assert fingerprint(frame, schema_hash="a" * 64) != fingerprint(frame, schema_hash="b" * 64)
    assert fingerprint(frame, schema_hash="a" * 64) == fingerprint(frame, schema_hash="a" * 64)


def test_row_order_counts_by_default(frame: pd.DataFrame) -> None:
    assert fingerprint(frame.iloc[::-1]) != fingerprint(frame)


def test_row_order_ignored_on_request(frame: pd.DataFrame) -> None:
    shuffled = frame.sample(frac=1.0, random_state=3)
    assert fingerprint(shuffled, ignore_row_order=True) == fingerprint(frame, ignore_row_order=True)
    changed = shuffled.copy()
    changed.iloc[0, 0] = 99
    assert fingerprint(changed, ignore_row_order=True) != fingerprint(frame, ignore_row_order=True)


def test_empty_frame(frame: pd.DataFrame) -> None:
    empty = frame.iloc[:0]
    assert fingerprint(empty) == fingerprint(empty.copy())
    assert fingerprint(empty) != fingerprint(frame)
    assert fingerprint(empty) != fingerprint(empty.drop(columns=["wage"]))


_ROWS = st.lists(
    st.tuples(
        st.integers(-(2**31), 2**31),
        st.text(max_size=5),
        st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(rows=_ROWS, data=st.data())
def test_any_permutation_keeps_it_when_ignoring_row_order(
    rows: list[tuple[int, str, float | None]], data: st.DataObject
) -> None:
    columns = ["id", "name", "wage"]
    frame = pd.DataFrame(rows, columns=columns)
    permuted = pd.DataFrame(data.draw(st.permutations(rows)), columns=columns)
    assert fingerprint(permuted, ignore_row_order=True) == fingerprint(frame, ignore_row_order=True)
    if permuted.equals(frame):
        assert fingerprint(permuted) == fingerprint(frame)
