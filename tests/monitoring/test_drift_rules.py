"""The drift rule, column by column, on hand-made reference profiles whose every number is known:
which test or distance is chosen and at which sizes, each threshold and its boundary, missing
values, PSI and the report's shares and bin labels, the multiple-testing adjustment, and the
dataset verdict. Expected values are computed independently with numpy and scipy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from conveyor.monitoring.drift import (
    EPS,
    ColumnDrift,
    ColumnRule,
    DriftResult,
    DriftSettings,
    _pool_rare,
    detect,
)
from conveyor.monitoring.profile import ColumnProfile, ReferenceProfile, profile_column

RNG = np.random.default_rng(7)
REFERENCE_X = RNG.normal(10.0, 2.0, 3000)


def _numeric(name: str = "x", values: Any = REFERENCE_X) -> ColumnProfile:
    return profile_column(pd.Series(values, dtype="float64"), name)


def _categorical(name: str, frequencies: dict[str, int], n: int | None = None) -> ColumnProfile:
    total = sum(frequencies.values())
    n = total if n is None else n
    return ColumnProfile(name, "categorical", n, 1 - total / n, frequencies=frequencies)


def _profile(*columns: ColumnProfile, outputs: tuple[ColumnProfile, ...] = ()) -> ReferenceProfile:
    return ReferenceProfile(
        columns={c.name: c for c in columns}, outputs={c.name: c for c in outputs}, n_rows=3000
    )


def _psi(reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any]) -> float:
    p = np.maximum(reference / reference.sum(), EPS)
    q = np.maximum(current / current.sum(), EPS)
    return float(np.sum((q - p) * np.log(q / p)))


def _one(profile: ReferenceProfile, current: pd.DataFrame, **settings: Any) -> ColumnDrift:
    [column] = detect(profile, current, DriftSettings(**settings)).columns
    return column


# --- numeric columns ----------------------------------------------------------------------------


def test_a_small_numeric_sample_gets_a_ks_test_with_psi_and_shares() -> None:
    profile = _numeric()
    current = RNG.normal(10.6, 2.0, 400)
    col = _one(_profile(profile), pd.DataFrame({"x": current}))
    test = stats.ks_2samp(np.sort(profile.sample), current)
    assert (col.column, col.kind, col.method, col.threshold) == ("x", "numeric", "ks", 0.05)
    assert col.statistic == pytest.approx(test.statistic)
    assert col.p_value == pytest.approx(test.pvalue)
    assert col.adjusted_p_value == pytest.approx(test.pvalue)  # one test: nothing to adjust
    assert col.verdict == "drift" and col.drifted
    assert col.n_current == 400 and col.missing_current == 0.0 and not col.missing_changed
    edges = np.asarray(profile.edges)
    cur_counts = np.bincount(
        np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1
    )
    ref_counts = np.asarray(profile.counts, dtype="float64")
    assert col.psi == pytest.approx(_psi(ref_counts, cur_counts.astype("float64")))
    assert col.reference_share == [round(float(v), 6) for v in ref_counts / ref_counts.sum()]
    assert col.current_share == [round(float(v), 6) for v in cur_counts / cur_counts.sum()]
    assert len(col.bins) == len(edges) + 1 == 10


def test_a_large_numeric_sample_gets_the_wasserstein_distance_in_reference_stds() -> None:
    profile = _numeric()
    current = RNG.normal(10.5, 2.0, 1500)
    col = _one(_profile(profile), pd.DataFrame({"x": current}))
    assert profile.std is not None
    expected = stats.wasserstein_distance(profile.sample, current) / profile.std
    assert col.method == "wasserstein" and col.threshold == 0.1
    assert col.statistic == pytest.approx(expected)
    assert col.p_value is None and col.adjusted_p_value is None
    assert col.verdict == ("drift" if expected >= 0.1 else "ok") == "drift"


def test_a_distance_equal_to_its_threshold_is_drift() -> None:
    profile = _numeric()
    current = pd.DataFrame({"x": RNG.normal(10.3, 2.0, 1500)})
    statistic = _one(_profile(profile), current).statistic
    assert statistic is not None
    at = _one(_profile(profile), current, columns={"x": ColumnRule(threshold=statistic)})
    assert (at.threshold, at.verdict) == (statistic, "drift")
    above = ColumnRule(threshold=statistic * 1.0001)
    assert _one(_profile(profile), current, columns={"x": above}).verdict == "ok"


def test_a_constant_reference_measures_the_distance_in_raw_units() -> None:
    profile = _numeric(values=[5.0] * 2000)
    assert profile.std == 0.0 and profile.edges == [5.0]
    col = _one(_profile(profile), pd.DataFrame({"x": [5.5] * 1500}))
    assert col.method == "wasserstein"
    assert col.statistic == pytest.approx(0.5)
    assert col.bins == ["< 5", ">= 5"]
    assert col.reference_share == [0.0, 1.0] and col.current_share == [0.0, 1.0]


def test_a_profile_without_bin_edges_has_one_bin() -> None:
    profile = ColumnProfile(
        "x", "numeric", 200, 0.0, edges=[], counts=[200], sample=[1.0, 2.0] * 100,
        mean=1.5, std=0.5,
    )  # fmt: skip
    col = _one(_profile(profile), pd.DataFrame({"x": [1.0, 2.0] * 100}))
    assert col.bins == ["all"]
    assert col.reference_share == [1.0] and col.current_share == [1.0]
    assert col.psi == 0.0


def test_non_finite_values_are_left_out_of_the_comparison() -> None:
    profile = _numeric()
    finite = RNG.normal(10.0, 2.0, 1500)
    with_inf = np.concatenate([finite, [np.inf, -np.inf] * 5])
    clean = _one(_profile(profile), pd.DataFrame({"x": finite}))
    dirty = _one(_profile(profile), pd.DataFrame({"x": with_inf}))
    assert dirty.statistic == pytest.approx(clean.statistic)
    assert dirty.psi == pytest.approx(clean.psi)
    assert dirty.n_current == 1510  # present values, counted before the finite filter


def test_a_value_on_a_bin_edge_falls_in_the_bin_above() -> None:
    profile = ColumnProfile(
        "x", "numeric", 300, 0.0, edges=[1.0, 2.0], counts=[100, 100, 100],
        sample=[0.5] * 100 + [1.5] * 100 + [2.5] * 100, mean=1.5, std=0.8,
    )  # fmt: skip
    current = pd.DataFrame({"x": [0.5] * 50 + [1.0] * 100 + [2.0] * 150})
    col = _one(_profile(profile), current)
    assert col.current_share == [round(50 / 300, 6), round(100 / 300, 6), 0.5]
    assert col.reference_share == [round(1 / 3, 6)] * 3
    assert col.bins == ["< 1", "1-2", ">= 2"]


@pytest.mark.parametrize(
    ("edges", "labels"),
    [
        ([-1500.0, 12.345, 35280.5], ["< -1.5k", "-1.5k-12.3", "12.3-35.3k", ">= 35.3k"]),
        ([999.4, 1000.0, 2.5e6, 3e9], ["< 999", "999-1k", "1k-2.5M", "2.5M-3G", ">= 3G"]),
        ([0.001234, 999.9, 999999.0], ["< 0.00123", "0.00123-1k", "1k-1M", ">= 1M"]),
        ([-2e9, -1e6], ["< -2G", "-2G--1M", ">= -1M"]),
        ([1e6, 1e9], ["< 1M", "1M-1G", ">= 1G"]),
    ],
)
def test_bin_labels_are_short(edges: list[float], labels: list[str]) -> None:
    n = len(edges) + 1
    profile = ColumnProfile(
        "x", "numeric", 100 * n, 0.0, edges=edges, counts=[100] * n,
        sample=list(np.linspace(-1, 1, 100)), mean=0.0, std=1.0,
    )  # fmt: skip
    col = _one(_profile(profile), pd.DataFrame({"x": np.linspace(-1, 1, 200)}))
    assert col.bins == labels


# --- missing values and sample sizes ------------------------------------------------------------


def test_missing_values_are_counted_apart_and_a_change_above_the_delta_is_flagged() -> None:
    profile = _numeric()
    present = list(RNG.normal(10.0, 2.0, 190))
    exactly = _one(_profile(profile), pd.DataFrame({"x": present + [np.nan] * 10}))
    assert (exactly.n_current, exactly.missing_current) == (190, 0.05)
    assert exactly.missing_reference == 0.0
    assert not exactly.missing_changed  # 0.05 is not above missing_delta 0.05
    above = _one(_profile(profile), pd.DataFrame({"x": present[:188] + [np.nan] * 12}))
    assert above.missing_changed and above.missing_current == 0.06
    lower = _one(
        _profile(profile), pd.DataFrame({"x": present + [np.nan] * 10}), missing_delta=0.04
    )
    assert lower.missing_changed


def test_missing_rate_is_compared_with_the_reference_in_both_directions() -> None:
    values = list(RNG.normal(0, 1, 1800)) + [np.nan] * 200
    profile = _numeric(values=values)
    assert profile.missing_rate == 0.1
    col = _one(_profile(profile), pd.DataFrame({"x": RNG.normal(0, 1, 300)}))
    assert col.missing_reference == 0.1 and col.missing_current == 0.0 and col.missing_changed
    same = list(RNG.normal(0, 1, 270)) + [np.nan] * 30
    col = _one(_profile(profile), pd.DataFrame({"x": same}))
    assert col.missing_current == 0.1 and not col.missing_changed


def test_missing_categories_are_no_category() -> None:
    profile = _categorical("c", {"a": 500, "b": 500}, n=1100)
    assert profile.missing_rate == pytest.approx(1 / 11)
    values = ["a"] * 100 + ["b"] * 100 + [None] * 20
    col = _one(_profile(profile), pd.DataFrame({"c": pd.Series(values, dtype=object)}))
    assert col.new_categories == [] and col.bins == ["a", "b"]
    assert col.n_current == 200 and col.current_share == [0.5, 0.5]
    assert not col.missing_changed


@pytest.mark.parametrize(("n", "verdict_given"), [(99, False), (100, True)])
def test_fewer_present_rows_than_min_rows_get_no_verdict(n: int, verdict_given: bool) -> None:
    values = list(RNG.normal(10.0, 2.0, n)) + [np.nan] * 50
    col = _one(_profile(_numeric()), pd.DataFrame({"x": values}))
    assert (col.verdict != "not enough data") is verdict_given
    assert col.n_current == n
    if not verdict_given:
        assert col.statistic is None and col.psi is None and col.bins == []
        assert col.describe() == f"x: not enough data ({n} rows)"


def test_a_reference_column_without_values_gives_no_verdict() -> None:
    empty = ColumnProfile("x", "numeric", 500, 1.0)
    col = _one(_profile(empty), pd.DataFrame({"x": RNG.normal(0, 1, 500)}))
    assert col.verdict == "not enough data" and col.statistic is None


def test_an_empty_current_column_has_no_missing_rate_to_divide() -> None:
    col = _one(_profile(_numeric()), pd.DataFrame({"x": pd.Series([], dtype="float64")}))
    assert (col.n_current, col.missing_current, col.verdict) == (0, 0.0, "not enough data")


@pytest.mark.parametrize(
    ("small_sample", "method"), [(1500, "ks"), (1499, "wasserstein"), (1000, "wasserstein")]
)
def test_the_smaller_sample_decides_between_test_and_distance(
    small_sample: int, method: str
) -> None:
    current = pd.DataFrame({"x": RNG.normal(10.0, 2.0, 1500)})
    col = _one(_profile(_numeric()), current, small_sample=small_sample)
    assert col.method == method
    small_reference = _numeric(values=RNG.normal(10.0, 2.0, 1200))
    col = _one(_profile(small_reference), current, small_sample=1200)
    assert col.method == "ks"  # the reference's 1,200 rows are the smaller sample


def test_per_column_rules_choose_the_method_and_its_threshold() -> None:
    current = pd.DataFrame({"x": RNG.normal(10.0, 2.0, 300)})
    col = _one(
        _profile(_numeric()),
        current,
        columns={"x": ColumnRule(method="wasserstein", threshold=0.7, p_value=0.2)},
    )
    assert (col.method, col.threshold, col.p_value) == ("wasserstein", 0.7, None)
    col = _one(_profile(_numeric()), current, columns={"x": ColumnRule(p_value=0.2)})
    assert (col.method, col.threshold) == ("ks", 0.2)
    col = _one(_profile(_numeric()), current, p_value=0.01, threshold=0.3)
    assert (col.method, col.threshold) == ("ks", 0.01)
    big = pd.DataFrame({"x": RNG.normal(10.0, 2.0, 1500)})
    assert _one(_profile(_numeric()), big, p_value=0.01, threshold=0.3).threshold == 0.3


# --- categorical columns ------------------------------------------------------------------------


def test_a_small_categorical_sample_gets_a_chi_square_test_of_homogeneity() -> None:
    profile = _categorical("c", {"a": 600, "b": 300, "c": 100})
    current = pd.Series(["a"] * 100 + ["b"] * 100 + ["c"] * 50 + ["new2"] * 6 + ["new1"] * 7)
    col = _one(_profile(profile), pd.DataFrame({"c": current}))
    assert (col.kind, col.method, col.threshold) == ("categorical", "chi2", 0.05)
    assert col.new_categories == ["new1", "new2"]
    assert col.bins == ["a", "b", "c", "new1", "new2"]
    ref = np.array([600, 300, 100, 0, 0], dtype="float64")
    cur = np.array([100, 100, 50, 7, 6], dtype="float64")
    table = np.vstack([ref, cur])
    # new1 and new2 are expected < 5 times in the reference: pooled into one column
    pooled = np.hstack([table[:, :3], table[:, 3:].sum(axis=1, keepdims=True)])
    test = stats.chi2_contingency(pooled, correction=False)
    assert col.statistic == pytest.approx(test.statistic)
    assert col.p_value == pytest.approx(test.pvalue)
    assert col.verdict == "drift"
    assert col.psi == pytest.approx(_psi(ref, cur))
    assert col.reference_share == [0.6, 0.3, 0.1, 0.0, 0.0]
    assert col.current_share == [round(float(v), 6) for v in cur / cur.sum()]


def test_a_large_categorical_sample_gets_the_jensen_shannon_distance() -> None:
    profile = _categorical("c", {"a": 6000, "b": 3000, "c": 1000})
    current = pd.Series(["a"] * 1300 + ["b"] * 500 + ["c"] * 200, dtype="category")
    col = _one(_profile(profile), pd.DataFrame({"c": current}))
    ref, cur = np.array([0.6, 0.3, 0.1]), np.array([0.65, 0.25, 0.1])
    assert col.method == "jensenshannon" and col.threshold == 0.1
    assert col.statistic == pytest.approx(float(jensenshannon(ref, cur)))
    assert col.verdict == "ok" and col.new_categories == []
    assert col.psi == pytest.approx(_psi(ref, cur))


def test_categories_are_compared_as_text() -> None:
    profile = _categorical("c", {"1": 500, "2": 500})
    col = _one(_profile(profile), pd.DataFrame({"c": [1] * 150 + [2] * 150}))
    assert col.new_categories == [] and col.bins == ["1", "2"]
    assert col.current_share == [0.5, 0.5]


def test_rare_categories_are_pooled_only_when_two_or_more_are_rare() -> None:
    table = np.array([[50.0, 50.0, 1.0, 2.0], [40.0, 60.0, 0.0, 3.0]])
    pooled = _pool_rare(table)
    assert pooled.tolist() == [[50.0, 50.0, 3.0], [40.0, 60.0, 3.0]]
    one_rare = np.array([[50.0, 50.0, 1.0], [40.0, 60.0, 0.0]])
    assert _pool_rare(one_rare).tolist() == one_rare.tolist()
    all_rare = np.array([[1.0, 2.0], [0.0, 1.0]])
    assert _pool_rare(all_rare).tolist() == [[3.0], [1.0]]
    five = np.array([[5.0, 5.0, 50.0], [5.0, 5.0, 50.0]])  # expected exactly 5: not rare
    assert _pool_rare(five).tolist() == five.tolist()
    none_rare = np.array([[50.0, 50.0], [40.0, 60.0]])
    assert _pool_rare(none_rare).tolist() == none_rare.tolist()
    assert _pool_rare(np.array([[6.0, 6.0], [6.0, 6.0]]), minimum=6.0).tolist() == [
        [6.0, 6.0],
        [6.0, 6.0],
    ]
    assert _pool_rare(np.array([[5.0, 5.0, 5.0], [5.0, 5.0, 5.0]]), minimum=5.1).tolist() == [
        [15.0],
        [15.0],
    ]


# --- several columns: the adjustment and the dataset verdict ------------------------------------


def test_p_values_are_adjusted_together_and_compared_strictly() -> None:
    columns = [_numeric(name) for name in ("a", "b", "c")]
    current = pd.DataFrame(
        {
            "a": RNG.normal(10.4, 2.0, 300),
            "b": RNG.normal(10.2, 2.0, 300),
            "c": RNG.normal(10.0, 2.0, 300),
        }
    )
    result = detect(_profile(*columns), current)
    raw = [c.p_value for c in result.columns]
    adjusted = stats.false_discovery_control(raw, method="bh")
    assert [c.adjusted_p_value for c in result.columns] == pytest.approx(list(adjusted))
    assert [c.verdict for c in result.columns] == ["drift" if p < 0.05 else "ok" for p in adjusted]
    first = result.columns[0]
    assert first.adjusted_p_value is not None
    assert first.describe() == (
        f"a: ks adjusted p={first.adjusted_p_value:.3g} vs 0.05 ({first.verdict})"
    )
    at = detect(
        _profile(*columns),
        current,
        DriftSettings(columns={"a": ColumnRule(p_value=first.adjusted_p_value)}),
    )
    assert at.columns[0].verdict == "ok"  # adjusted p equal to the level is no drift


def test_distances_are_not_adjusted() -> None:
    current = pd.DataFrame({"a": RNG.normal(10.0, 2.0, 1500), "b": RNG.normal(10.0, 2.0, 1500)})
    settings = DriftSettings(columns={"b": ColumnRule(method="ks")})
    result = detect(_profile(_numeric("a"), _numeric("b")), current, settings)
    a, b = result.columns
    assert a.method == "wasserstein" and a.adjusted_p_value is None
    assert b.method == "ks" and b.adjusted_p_value == pytest.approx(b.p_value)
    assert a.statistic is not None
    assert a.describe() == f"a: wasserstein {a.statistic:.3f} vs 0.1 ({a.verdict})"


def _two_of_four_drifted() -> tuple[ReferenceProfile, pd.DataFrame]:
    profile = _profile(*(_numeric(name) for name in ("a", "b", "c", "d", "e")))
    current = pd.DataFrame(
        {
            "a": RNG.normal(14.0, 2.0, 1500),
            "b": RNG.normal(14.0, 2.0, 1500),
            "c": RNG.normal(10.0, 2.0, 1500),
            "d": RNG.normal(10.0, 2.0, 1500),
            "e": [np.nan] * 1500,
            "unprofiled": 1,
        }
    )
    return profile, current


@pytest.mark.parametrize(("share", "dataset_drift"), [(0.5, True), (0.51, False), (0.2, True)])
def test_the_dataset_drifts_when_the_share_of_judged_columns_is_reached(
    share: float, dataset_drift: bool
) -> None:
    profile, current = _two_of_four_drifted()
    result = detect(profile, current, DriftSettings(share=share))
    assert [c.column for c in result.columns] == ["a", "b", "c", "d", "e"]
    assert result.drifted_columns == ["a", "b"]
    assert result.share_drifted == 0.5  # "e" has no verdict: not counted
    assert result.dataset_drift is dataset_drift
    assert (result.n_reference, result.n_current, result.share) == (3000, 1500, share)
    assert not result.prediction_drift


def test_ignored_and_absent_columns_are_left_out() -> None:
    profile, current = _two_of_four_drifted()
    settings = DriftSettings(columns={"a": ColumnRule(ignore=True), "c": ColumnRule()})
    result = detect(profile, current.drop(columns=["d"]), settings)
    assert [c.column for c in result.columns] == ["b", "c", "e"]
    assert result.share_drifted == 0.5 and result.dataset_drift is True


def test_no_judged_column_means_no_dataset_verdict() -> None:
    result = detect(_profile(_numeric()), pd.DataFrame({"x": RNG.normal(0, 1, 10)}))
    assert (result.share_drifted, result.dataset_drift) == (0.0, None)
    assert result.drifted_columns == [] and result.outputs == []


def test_model_outputs_are_judged_apart_from_the_features() -> None:
    prediction = _categorical("prediction", {"yes": 700, "no": 300})
    probability = _numeric("probability", RNG.beta(5, 2, 3000))
    profile = _profile(_numeric(), outputs=(prediction, probability))
    current = pd.DataFrame({"x": RNG.normal(10.0, 2.0, 300)})
    outputs = pd.DataFrame(
        {"prediction": ["yes"] * 60 + ["no"] * 240, "probability": RNG.beta(2, 5, 300)}
    )
    result = detect(profile, current, outputs=outputs)
    assert [o.column for o in result.outputs] == ["prediction", "probability"]
    assert all(o.adjusted_p_value is not None for o in result.outputs)
    assert result.prediction_drift and [o.drifted for o in result.outputs] == [True, True]
    assert result.drifted_columns == []  # outputs do not count as drifted features
    data = result.to_dict()
    assert [o["column"] for o in data["outputs"]] == ["prediction", "probability"]
    assert data["outputs"][0]["verdict"] == "drift" and data["prediction_drift"] is True
    only_prediction = detect(profile, current, outputs=outputs[["prediction"]])
    assert [o.column for o in only_prediction.outputs] == ["prediction"]
    assert detect(profile, current).outputs == []


def test_the_result_as_json() -> None:
    profile, current = _two_of_four_drifted()
    result = detect(profile, current)
    data = result.to_dict()
    assert list(data) == [
        "dataset_drift",
        "share_drifted",
        "share",
        "drifted_columns",
        "prediction_drift",
        "n_reference",
        "n_current",
        "columns",
        "outputs",
    ]
    assert (data["dataset_drift"], data["share_drifted"], data["share"]) == (True, 0.5, 0.5)
    assert data["drifted_columns"] == ["a", "b"] and data["prediction_drift"] is False
    assert (data["n_reference"], data["n_current"]) == (3000, 1500)
    assert [c["column"] for c in data["columns"]] == ["a", "b", "c", "d", "e"]
    assert data["columns"][0]["verdict"] == "drift" and data["outputs"] == []


def test_prediction_drift_is_any_drifted_output() -> None:
    ok = ColumnDrift("p", "numeric", "ks", 0.1, 0.05, "ok")
    drift = ColumnDrift("q", "numeric", "ks", 0.1, 0.05, "drift")
    result = DriftResult([], [ok, drift], 0.0, None, 1, 1, 0.5)
    assert result.prediction_drift
    assert not DriftResult([], [ok], 0.0, None, 1, 1, 0.5).prediction_drift


def test_a_known_category_absent_now_counts_zero() -> None:
    profile = _categorical("c", {"a": 500, "b": 300, "gone": 200})
    col = _one(_profile(profile), pd.DataFrame({"c": ["a"] * 150 + ["b"] * 150}))
    assert col.bins == ["a", "b", "gone"]
    assert col.current_share == [0.5, 0.5, 0.0]
    ref, cur = np.array([500.0, 300.0, 200.0]), np.array([150.0, 150.0, 0.0])
    test = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert col.statistic == pytest.approx(test.statistic)
    assert col.psi == pytest.approx(_psi(ref, cur))


def test_two_categories_are_tested_without_the_continuity_correction() -> None:
    profile = _categorical("c", {"yes": 600, "no": 400})
    col = _one(_profile(profile), pd.DataFrame({"c": ["yes"] * 130 + ["no"] * 70}))
    table = np.array([[600.0, 400.0], [130.0, 70.0]])
    plain = stats.chi2_contingency(table, correction=False)
    corrected = stats.chi2_contingency(table, correction=True)
    assert plain.pvalue != pytest.approx(corrected.pvalue)
    assert col.p_value == pytest.approx(plain.pvalue)
    assert col.statistic == pytest.approx(plain.statistic)


def test_a_single_current_row_is_a_whole_distribution() -> None:
    profile = _categorical("c", {"a": 1})
    col = _one(_profile(profile), pd.DataFrame({"c": ["b"]}), min_rows=1)
    assert col.bins == ["a", "b"]
    assert col.reference_share == [1.0, 0.0] and col.current_share == [0.0, 1.0]
    assert col.psi == pytest.approx(_psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])))
    numeric = _one(_profile(_numeric()), pd.DataFrame({"x": [10.0]}), min_rows=1)
    assert sum(numeric.current_share) == pytest.approx(1.0)
