"""Drift detectors on synthetic data with known shifts (the visa generator's drift option and
hand-made shifts), false alarms on same-distribution samples, and tiny samples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conveyor.examples.visa.generate import generate
from conveyor.monitoring.drift import ColumnRule, DriftSettings, detect
from conveyor.monitoring.profile import ReferenceProfile, build_profile

SHIFTED = {"continent", "prevailing_wage"}  # what generate(drift=True) changes


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["case_status", "case_id"])


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return build_profile(_features(generate(seed=1, dirt=False)))


@pytest.fixture(scope="module")
def pool() -> pd.DataFrame:
    """Same-distribution rows to draw current batches from (iid)."""
    return _features(generate(n_rows=100_000, seed=2, dirt=False))


@pytest.fixture(scope="module")
def drifted_pool() -> pd.DataFrame:
    return _features(generate(n_rows=100_000, seed=3, drift=True, dirt=False))


def test_profile_round_trips_through_json(reference: ReferenceProfile) -> None:
    import json

    again = ReferenceProfile.from_dict(json.loads(json.dumps(reference.to_dict())))
    assert again == reference
    wage = reference.columns["prevailing_wage"]
    assert wage.kind == "numeric" and len(wage.sample) == 5000 and len(wage.counts) == 10
    assert sum(wage.counts) == 25_480
    assert set(reference.columns["continent"].frequencies) == {
        "Africa",
        "Asia",
        "Europe",
        "North America",
        "Oceania",
        "South America",
    }


@pytest.mark.parametrize("n", [300, 5_000, 100_000])
def test_the_injected_shifts_are_found_and_nothing_else(
    reference: ReferenceProfile, drifted_pool: pd.DataFrame, n: int
) -> None:
    result = detect(reference, drifted_pool.sample(n, random_state=0))
    assert set(result.drifted_columns) >= SHIFTED
    if n > 1000:  # distances: exactly the shifted columns (small batches: p-value tests, whose
        # chance false alarms are bounded by the false-alarm test below)
        assert set(result.drifted_columns) == SHIFTED
    assert result.dataset_drift is False  # 2 of 10 columns: below share 0.5
    method = {c.column: c.method for c in result.columns}["prevailing_wage"]
    assert method == ("ks" if n <= 1000 else "wasserstein")


@pytest.mark.parametrize("n", [150, 600, 5_000])
def test_false_alarm_rate_on_same_distribution_batches_stays_at_the_level(
    reference: ReferenceProfile, pool: pd.DataFrame, n: int
) -> None:
    draws = 120
    flagged = sum(
        bool(detect(reference, pool.sample(n, random_state=i)).drifted_columns)
        for i in range(draws)
    )
    level = DriftSettings().p_value
    # "any of 10 columns flagged" per batch: <= the level, plus 2.5 standard errors of noise
    assert flagged / draws <= level + 2.5 * np.sqrt(level * (1 - level) / draws)


def test_dataset_drift_when_the_share_of_drifted_columns_is_reached(
    reference: ReferenceProfile, pool: pd.DataFrame
) -> None:
    current = pool.sample(5000, random_state=1).copy()
    for column in ("prevailing_wage", "no_of_employees", "yr_of_estab"):
        current[column] = current[column] * 1.8
    for column in ("continent", "region_of_employment"):
        current[column] = current[column].sample(frac=1, random_state=2).to_numpy()
        current.loc[current.index[:3000], column] = current[column].iloc[0]
    result = detect(reference, current, DriftSettings(share=0.5))
    assert set(result.drifted_columns) >= {"prevailing_wage", "no_of_employees", "yr_of_estab"}
    assert result.share_drifted >= 0.5 and result.dataset_drift is True


def test_tiny_samples_get_no_verdict(reference: ReferenceProfile, pool: pd.DataFrame) -> None:
    result = detect(reference, pool.head(40))
    assert {c.verdict for c in result.columns} == {"not enough data"}
    assert result.dataset_drift is None and result.drifted_columns == []


def test_new_categories_and_missing_rates_are_flagged(
    reference: ReferenceProfile, pool: pd.DataFrame
) -> None:
    current = pool.sample(2000, random_state=3).copy()
    current.loc[current.index[:50], "continent"] = "Antarctica"
    current.loc[current.index[:400], "prevailing_wage"] = np.nan
    result = {c.column: c for c in detect(reference, current).columns}
    assert result["continent"].new_categories == ["Antarctica"]
    assert result["prevailing_wage"].missing_changed
    assert result["prevailing_wage"].missing_current == pytest.approx(0.2)
    assert not result["education_of_employee"].missing_changed


def test_per_column_thresholds_and_ignore(
    reference: ReferenceProfile, drifted_pool: pd.DataFrame
) -> None:
    current = drifted_pool.sample(5000, random_state=4)
    settings = DriftSettings(
        columns={"prevailing_wage": ColumnRule(threshold=5.0), "continent": ColumnRule(ignore=True)}
    )
    result = detect(reference, current, settings)
    assert result.drifted_columns == []
    assert "continent" not in {c.column for c in result.columns}


def test_psi_is_reported_for_every_column(
    reference: ReferenceProfile, drifted_pool: pd.DataFrame
) -> None:
    result = {
        c.column: c for c in detect(reference, drifted_pool.sample(5000, random_state=5)).columns
    }
    assert all(c.psi is not None and c.psi >= 0 for c in result.values())
    assert result["prevailing_wage"].psi > 0.2 > result["education_of_employee"].psi


def test_prediction_drift_on_the_model_output() -> None:
    rng = np.random.default_rng(0)
    labels = np.where(rng.random(20_000) < 0.7, "Certified", "Denied")
    probs = rng.beta(5, 2, 20_000)
    profile = build_profile(
        pd.DataFrame({"x": rng.normal(size=20_000)}), predictions=labels, probabilities=probs
    )
    same = pd.DataFrame({"prediction": labels[:5000], "probability": probs[:5000]})
    shifted = pd.DataFrame(
        {
            "prediction": np.where(rng.random(5000) < 0.3, "Certified", "Denied"),
            "probability": rng.beta(2, 5, 5000),
        }
    )
    current = pd.DataFrame({"x": rng.normal(size=5000)})
    assert not detect(profile, current, outputs=same).prediction_drift
    result = detect(profile, current, outputs=shifted)
    assert result.prediction_drift
    assert {o.column for o in result.outputs if o.drifted} == {"prediction", "probability"}
