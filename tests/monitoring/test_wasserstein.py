"""The O(m + n) Wasserstein distance of sorted samples equals scipy's on every path through it:
the smaller sample first or second, sizes that divide each other (every step change of the
smaller sample's quantile function falls on a step of the larger's) and sizes that do not (the
correction for a change inside a step), single values, ties, and large samples; and the drift
statistic is that distance over the reference standard deviation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import wasserstein_distance

from conveyor.monitoring.drift import DriftSettings, _wasserstein_sorted, detect
from conveyor.monitoring.profile import SAMPLE_SIZE, build_profile


def _distance(u: Any, v: Any) -> float:
    return _wasserstein_sorted(np.sort(np.asarray(u, "float64")), np.sort(np.asarray(v, "float64")))


def _expected(u: Any, v: Any) -> Any:
    return pytest.approx(wasserstein_distance(u, v), rel=1e-9, abs=1e-12)


SIZES = [
    (1, 1),
    (1, 7),  # one value against many
    (7, 1),  # the larger sample first: swapped
    (4, 4),  # equal sizes: no change of Q_u inside a step of Q_v
    (3, 12),  # m divides n: none either
    (3, 5),  # coprime: a change inside a step for every k
    (5, 3),
    (4, 6),  # gcd 2: changes inside some steps and on others
    (6, 4),
    (97, 1000),
    (1000, 97),
    (2500, 5000),
    (1234, 5000),  # a drift check: current rows against the reference profile's sample
    (5000, 7001),
]


@pytest.mark.parametrize(("m", "n"), SIZES)
@pytest.mark.parametrize("kind", ["normal", "ties", "shifted exponential"])
def test_distance_equals_scipy_for_every_size_pairing(m: int, n: int, kind: str) -> None:
    rng = np.random.default_rng(m * 10_007 + n)
    if kind == "normal":
        u, v = rng.normal(0, 1, m), rng.normal(0.3, 1.5, n)
    elif kind == "ties":  # few distinct values, shared by both samples
        u, v = rng.integers(0, 4, m).astype(float), rng.integers(1, 5, n).astype(float)
    else:  # skewed, far apart, large magnitudes
        u, v = 1e6 + rng.exponential(1e4, m), 1.2e6 + rng.exponential(3e4, n)
    assert _distance(u, v) == _expected(u, v)


def test_the_correction_inside_a_step_is_what_makes_it_exact() -> None:
    """u = [0, 3, 6], v = [0, 1, 2, 3, 4]: Q_u changes at 1/3 and 2/3, inside steps of Q_v (of
    width 1/5). The area between them is 19/15; pairing Q_v's steps with Q_u at their starts
    alone gives (0 + 1 + 1 + 0 + 2) / 5 = 0.8."""
    u, v = [0.0, 3.0, 6.0], [0.0, 1.0, 2.0, 3.0, 4.0]
    assert wasserstein_distance(u, v) == pytest.approx(19 / 15)
    assert _distance(u, v) == pytest.approx(19 / 15)
    assert _distance(v, u) == pytest.approx(19 / 15)


@pytest.mark.parametrize(("m", "n"), [(1, 1), (1, 9), (9, 1), (5, 5), (3, 7)])
def test_identical_and_constant_samples(m: int, n: int) -> None:
    assert _distance([2.5] * m, [2.5] * n) == 0.0
    assert _distance([2.5] * m, [-1.5] * n) == pytest.approx(4.0)
    same = np.linspace(-3, 3, m)
    assert _distance(same, same) == 0.0


def test_large_samples_of_unequal_sizes() -> None:
    rng = np.random.default_rng(5)
    u, v = rng.lognormal(0, 1, 200_003), rng.lognormal(0.05, 1.1, 65_537)
    assert _distance(u, v) == _expected(u, v)


_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, allow_subnormal=False),
    st.integers(-3, 3).map(float),  # ties
)


@settings(max_examples=300, deadline=None)
@given(u=st.lists(_values, min_size=1, max_size=40), v=st.lists(_values, min_size=1, max_size=40))
def test_distance_equals_scipy_on_any_samples(u: list[float], v: list[float]) -> None:
    scale = max(map(abs, u + v)) or 1.0
    expected = wasserstein_distance(u, v)
    assert _distance(u, v) == pytest.approx(expected, rel=1e-9, abs=1e-12 * scale)


@pytest.mark.parametrize("n_current", [1500, 4999, 7001])
def test_the_drift_statistic_is_the_distance_over_the_reference_std(n_current: int) -> None:
    """The reference is the profile's sample (SAMPLE_SIZE quantiles of the training rows);
    current batches smaller and larger than it."""
    rng = np.random.default_rng(n_current)
    reference = pd.DataFrame({"x": rng.gamma(2.0, 3.0, 30_000)})
    current = pd.DataFrame({"x": rng.gamma(2.2, 3.0, n_current)})
    profile = build_profile(reference)
    column = profile.columns["x"]
    assert len(column.sample) == SAMPLE_SIZE and column.std is not None

    drift = detect(profile, current, DriftSettings(small_sample=1000)).columns[0]
    assert drift.method == "wasserstein"
    expected = wasserstein_distance(column.sample, current["x"]) / column.std
    assert drift.statistic == pytest.approx(expected, rel=1e-9)
