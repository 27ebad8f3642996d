"""Which serializer conveyor picks for which object."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conveyor import _plugins
from conveyor.errors import SerializationError
from conveyor.store.artifacts import serializers
from conveyor.store.artifacts.serializers import KINDS, deserialize, kind_of, serialize


def _figure() -> Figure:
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig


def _fitted() -> LogisticRegression:
    return LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: pd.DataFrame({"a": [1, 2]}), "parquet"),
        (lambda: pd.DataFrame(), "parquet"),
        (lambda: {"auc": 0.9, "tags": ["a"], "nested": {"ok": True}}, "json"),
        (lambda: [1, "two", None], "json"),
        (lambda: "text", "json"),
        (lambda: 3, "json"),
        (lambda: None, "json"),
        (lambda: {"weights": np.arange(3)}, "joblib"),
        (lambda: {"nan": float("nan")}, "joblib"),  # JSON has no NaN; joblib keeps it exactly
        (lambda: {1: "int key"}, "joblib"),  # JSON would give the key back as "1"
        (lambda: {1: "a", "b": 2}, "joblib"),  # mixed keys cannot be sorted into canonical JSON
        (lambda: {"pair": (1, 2)}, "joblib"),  # JSON would give the tuple back as a list
        (lambda: ("a", 1), "joblib"),
        (lambda: np.arange(3), "joblib"),
        (lambda: pd.Series([1, 2]), "joblib"),
        (_figure, "png"),
        (LogisticRegression, "joblib"),
        (_fitted, "joblib"),
        (lambda: make_pipeline(StandardScaler(), LogisticRegression()), "joblib"),
    ],
    ids=[
        "dataframe",
        "empty-dataframe",
        "dict",
        "list",
        "str",
        "int",
        "none",
        "dict-with-ndarray",
        "dict-with-nan",
        "dict-with-int-key",
        "dict-with-mixed-keys",
        "dict-with-tuple",
        "tuple",
        "ndarray",
        "series",
        "figure",
        "estimator",
        "fitted-estimator",
        "sklearn-pipeline",
    ],
)
def test_kind_of(make: Any, kind: str) -> None:
    obj = make()
    assert kind_of(obj) == kind
    assert kind in KINDS
    assert serialize(obj)[0] == kind


def test_axes_are_not_figures() -> None:
    axes = _figure().add_subplot()
    assert kind_of(axes) != "png"


def test_json_bytes_are_canonical() -> None:
    assert serialize({"b": 1, "a": [1, 2]}) == ("json", b'{"a":[1,2],"b":1}')


@pytest.mark.parametrize(
    "obj",
    [("a", 1), {1: "int key"}, {1: "a", "b": 2}, {"pair": (1, 2)}, {"x": [1.5, None]}],
    ids=["tuple", "int-key", "mixed-keys", "nested-tuple", "json"],
)
def test_round_trip_gives_the_object_back(obj: Any) -> None:
    back = deserialize(*serialize(obj))
    assert back == obj
    assert type(back) is type(obj)


def test_every_kind_is_a_registered_serializer_with_dump_and_load() -> None:
    assert KINDS == tuple(_plugins.SERIALIZERS.builtins)
    for kind in KINDS:
        serializer = serializers._serializer(kind)
        assert callable(serializer.dump)
        assert callable(serializer.load)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(SerializationError, match="known: parquet, json, png, bytes, joblib"):
        deserialize("pickle", b"")


def test_undecodable_json_raises_serialization_error() -> None:
    with pytest.raises(SerializationError, match="cannot decode json"):
        deserialize("json", b"\xff{")
