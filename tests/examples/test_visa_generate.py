"""Tests for the seeded "visa" example data generator."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conveyor.examples.visa.generate import COLUMNS, generate, write_csv

EXPECTED_COLUMNS = [
    "case_id",
    "continent",
    "education_of_employee",
    "has_job_experience",
    "requires_job_training",
    "no_of_employees",
    "yr_of_estab",
    "region_of_employment",
    "prevailing_wage",
    "unit_of_wage",
    "full_time_position",
    "case_status",
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate()


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return generate(dirt=False)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return generate(drift=True)


def test_same_seed_gives_identical_frame(frame: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(generate(), frame)


def test_different_seed_gives_different_frame(frame: pd.DataFrame) -> None:
    other = generate(seed=43)
    assert not other.equals(frame)
    assert not other["prevailing_wage"].equals(frame["prevailing_wage"])


def test_shape_and_columns(frame: pd.DataFrame) -> None:
    assert len(frame) == 25_480
    assert list(frame.columns) == EXPECTED_COLUMNS
    assert list(COLUMNS) == EXPECTED_COLUMNS


def test_case_ids_unique_and_formatted(frame: pd.DataFrame) -> None:
    ids = frame["case_id"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"EZYV\d+").all()
    assert ids.iloc[0] == "EZYV01"
    assert ids.iloc[-1] == "EZYV25480"


def test_values_within_vocabularies(frame: pd.DataFrame) -> None:
    text = resources.files("conveyor.examples.visa").joinpath("schema.yaml").read_text()
    schema = yaml.safe_load(text)
    assert list(schema["columns"]) == EXPECTED_COLUMNS
    for name, spec in schema["columns"].items():
        if "allowed" in spec:
            assert set(frame[name].unique()) <= set(spec["allowed"]), name
    assert frame.notna().all().all()


def test_marginals_resemble_easyvisa(clean: pd.DataFrame) -> None:
    continent = clean["continent"].value_counts(normalize=True)
    assert continent["Asia"] == pytest.approx(0.66, abs=0.02)
    assert continent["Europe"] == pytest.approx(0.15, abs=0.02)
    unit = clean["unit_of_wage"].value_counts(normalize=True)
    assert unit["Year"] == pytest.approx(0.90, abs=0.02)
    assert unit["Hour"] == pytest.approx(0.08, abs=0.02)
    assert (clean["has_job_experience"] == "Y").mean() == pytest.approx(0.58, abs=0.02)
    assert (clean["full_time_position"] == "Y").mean() == pytest.approx(0.89, abs=0.02)
    assert 1_700 < clean["no_of_employees"].median() < 2_500
    assert clean["no_of_employees"].max() > 100_000
    assert clean["yr_of_estab"].between(1800, 2016).all()
    assert (clean["yr_of_estab"] > 1980).mean() > 0.6
    yearly = clean.loc[clean["unit_of_wage"] == "Year", "prevailing_wage"]
    assert yearly.mean() == pytest.approx(80_000, rel=0.1)
    hourly = clean.loc[clean["unit_of_wage"] == "Hour", "prevailing_wage"]
    assert hourly.between(10, 400).all()


def test_certified_share(frame: pd.DataFrame) -> None:
    share = (frame["case_status"] == "Certified").mean()
    assert 0.64 <= share <= 0.70


def test_dirt_present_when_requested(frame: pd.DataFrame) -> None:
    negative = (frame["no_of_employees"] < 0).sum()
    assert 10 <= negative <= 50
    odd_hourly = (frame["unit_of_wage"] == "Hour") & (frame["prevailing_wage"] > 1_000)
    assert odd_hourly.sum() >= 5


def test_dirt_absent_when_not_requested(clean: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert (clean["no_of_employees"] >= 1).all()
    hourly = clean["unit_of_wage"] == "Hour"
    assert (clean.loc[hourly, "prevailing_wage"] <= 400).all()
    # Dirt only touches the two dirty columns; everything else is the clean frame.
    untouched = [c for c in EXPECTED_COLUMNS if c not in {"no_of_employees", "unit_of_wage"}]
    pd.testing.assert_frame_equal(clean[untouched], frame[untouched])


def test_drift_shifts_wages_and_continents(clean: pd.DataFrame, drifted: pd.DataFrame) -> None:
    base_wage = clean.loc[clean["unit_of_wage"] == "Year", "prevailing_wage"].median()
    drift_wage = drifted.loc[drifted["unit_of_wage"] == "Year", "prevailing_wage"].median()
    assert drift_wage > 1.2 * base_wage
    base_mix = clean["continent"].value_counts(normalize=True)
    drift_mix = drifted["continent"].value_counts(normalize=True)
    assert drift_mix["Asia"] < base_mix["Asia"] - 0.15
    assert drift_mix["Europe"] > base_mix["Europe"] + 0.10
    assert drift_mix["Africa"] > base_mix["Africa"] + 0.05


def test_concept_drift_changes_the_labels_only() -> None:
    """New rules decide the same applications: the features stay byte for byte, the labels move,
    and by the new rules experience matters far more than before."""
    relabelled = generate(5000, seed=7, drift=True, concept_drift=True)
    again = generate(5000, seed=7, drift=True)
    features = [c for c in again.columns if c != "case_status"]
    pd.testing.assert_frame_equal(relabelled[features], again[features])
    changed = (relabelled["case_status"] != again["case_status"]).mean()
    assert 0.05 < changed < 0.5

    def experience_gap(frame: pd.DataFrame) -> float:
        rate = (frame["case_status"] == "Certified").groupby(frame["has_job_experience"]).mean()
        return float(rate["Y"] - rate["N"])

    assert experience_gap(relabelled) > experience_gap(again) + 0.1


def test_label_is_learnable_but_not_trivial(frame: pd.DataFrame) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    x = pd.get_dummies(frame.drop(columns=["case_id", "case_status"]), dtype=np.float64)
    y = (frame["case_status"] == "Certified").to_numpy(dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    model = HistGradientBoostingClassifier(random_state=0).fit(x_train, y_train)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    assert 0.65 <= auc <= 0.90
    constant_auc = roc_auc_score(y_test, np.full(len(y_test), 0.668))
    assert auc > constant_auc + 0.1


def test_small_and_empty_tables() -> None:
    assert len(generate(0)) == 0
    assert list(generate(0).columns) == EXPECTED_COLUMNS
    small = generate(150, seed=7)
    assert len(small) == 150
    assert small["case_id"].is_unique
    with pytest.raises(ValueError, match="non-negative"):
        generate(-1)


def test_write_csv_is_atomic_and_round_trips(tmp_path: Path) -> None:
    target = tmp_path / "raw" / "visa.csv"
    result = write_csv(target, 500, seed=3)
    assert result == target
    assert [p.name for p in target.parent.iterdir()] == ["visa.csv"]
    back = pd.read_csv(target)
    expected = generate(500, seed=3)
    assert list(back.columns) == EXPECTED_COLUMNS
    assert back["case_id"].tolist() == expected["case_id"].tolist()
    assert back["no_of_employees"].tolist() == expected["no_of_employees"].tolist()
    np.testing.assert_allclose(back["prevailing_wage"], expected["prevailing_wage"])
    assert back["case_status"].tolist() == expected["case_status"].tolist()
