"""Column roles: identifiers, row numbers, free text, constants, dates and leaks are not
features; everything else is, by type."""

from __future__ import annotations

import numpy as np
import pandas as pd

from conveyor.data.roles import column_roles


def _kinds(df: pd.DataFrame, target: str = "y", **kwargs: object) -> dict[str, str]:
    return {r.name: r.kind for r in column_roles(df, target=target, **kwargs)}  # type: ignore[arg-type]


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "rownames": np.arange(1, n + 1),
            "valid": rng.integers(0, 2, n),  # ends in "id" but is no identifier
            "paid": rng.normal(size=n),
            "note": [f"the customer called about order {i} twice" for i in range(n)],
            "country": rng.choice(["fr", "de", "es"], n),
            "city": [f"city{i % 60}" for i in range(n)],
            "signup": pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "flag": rng.random(n) > 0.5,
            "const": ["same"] * n,
            "y": rng.normal(size=n),
        }
    )


def test_roles_of_a_mixed_table() -> None:
    df = _frame()
    df["y_cents"] = df["y"] * 100 + 3  # a copy of the target in other units
    assert _kinds(df) == {
        "customer_id": "id",
        "rownames": "id",
        "valid": "numeric",
        "paid": "numeric",
        "note": "text",
        "country": "category",
        "city": "category",
        "signup": "datetime",
        "flag": "bool",
        "const": "constant",
        "y": "target",
        "y_cents": "leak",
    }


def test_every_dropped_column_says_why() -> None:
    for role in column_roles(_frame(), target="y"):
        assert role.reason
        if role.dropped:
            assert role.kind in {"id", "text", "constant", "leak"}


def test_a_user_named_id_is_dropped_even_if_it_looks_like_a_number() -> None:
    df = _frame()
    assert _kinds(df, ids=["paid"])["paid"] == "id"


def test_a_unique_float_is_a_feature_not_an_id() -> None:
    df = pd.DataFrame({"x": np.linspace(0, 1, 100), "y": [0, 1] * 50})
    assert _kinds(df)["x"] == "numeric"


def test_high_cardinality_category_says_rare_values_are_pooled() -> None:
    roles = {r.name: r for r in column_roles(_frame(), target="y")}
    assert roles["city"].distinct == 60
    assert "pooled" in roles["city"].reason
