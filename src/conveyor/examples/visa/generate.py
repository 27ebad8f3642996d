"""Seeded generator for the "visa" example, modelled on the public EasyVisa table.

The EasyVisa table (25,480 US visa applications, labelled ``Certified`` or ``Denied``) is the
flagship example of conveyor. This module synthesises a table with the same columns, similar
marginal distributions and a label that depends on the features through a logistic model on a
latent score, so that a model can learn it without it being trivially separable.

Everything is vectorised numpy driven by :func:`numpy.random.default_rng`, so a given ``seed``
always yields the same frame. ``dirt=True`` adds the kinds of defects found in the real table
(a few negative employee counts, a handful of yearly wages labelled as hourly); ``drift=True``
produces a batch whose wages and continent mix have shifted, for monitoring demonstrations.

The label model (``P(Certified | features)``) is the same with and without drift: the intercept
is calibrated once, on a fixed reference sample of the undrifted population, so that about 66.8%
of applications are certified. A drifted batch therefore shows covariate shift, and its
certified share moves with it. ``concept_drift=True`` changes the label model instead, as new
adjudication rules would (job experience counts for much more, education no longer counts):
the features stay exactly those of the same seed, only ``case_status`` differs, and a model
trained before the change is clearly worse on such data than one trained after it.
"""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["COLUMNS", "DEFAULT_N_ROWS", "generate", "write_csv"]

DEFAULT_N_ROWS: Final = 25_480
"""Number of rows in the real EasyVisa table."""

COLUMNS: Final[tuple[str, ...]] = (
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
)
"""Column names, in output order."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# --- categorical vocabularies and their probabilities -------------------------------------------

_CONTINENTS: Final = ("Asia", "Europe", "North America", "South America", "Africa", "Oceania")
_CONTINENT_P: Final = (0.662, 0.146, 0.129, 0.033, 0.022, 0.008)
_CONTINENT_P_DRIFT: Final = (0.40, 0.30, 0.12, 0.06, 0.10, 0.02)

_EDUCATION: Final = ("High School", "Bachelor's", "Master's", "Doctorate")
_EDUCATION_P: Final = (0.134, 0.402, 0.378, 0.086)

_REGIONS: Final = ("Northeast", "South", "West", "Midwest", "Island")
_REGION_P: Final = (0.282, 0.276, 0.259, 0.168, 0.015)

_UNITS: Final = ("Year", "Hour", "Week", "Month")
_UNIT_P: Final = (0.901, 0.085, 0.0105, 0.0035)
_UNIT_DIVISOR: Final = (1.0, 2080.0, 52.0, 12.0)
"""Divide a yearly amount by this to express it in the unit (2,080 working hours a year)."""

_P_JOB_EXPERIENCE: Final = 0.581
_P_JOB_TRAINING: Final = 0.116
_P_FULL_TIME: Final = 0.894

# --- numeric feature shapes ---------------------------------------------------------------------

_EMPLOYEES_MEDIAN: Final = 2_100.0
_EMPLOYEES_SIGMA: Final = 0.9
_EMPLOYEES_TAIL_SHARE: Final = 0.05
_EMPLOYEES_MAX: Final = 602_069
_EMPLOYEES_MIN: Final = 11

_ESTAB_LAST_YEAR: Final = 2016
_ESTAB_FIRST_YEAR: Final = 1800
_ESTAB_AGE_MEDIAN: Final = 19.0
_ESTAB_AGE_SIGMA: Final = 0.95

_WAGE_GAMMA_SHAPE: Final = 4.0
_WAGE_YEARLY_MEAN: Final = 80_000.0
_WAGE_EDU_FACTOR: Final = (0.80, 0.95, 1.08, 1.20)
_WAGE_DRIFT_FACTOR: Final = 1.35
_WAGE_MIN_YEARLY: Final = 2_000.0
_WAGE_MAX_YEARLY: Final = 320_000.0
_HOURLY_MIN: Final = 10.0
_HOURLY_MAX: Final = 400.0

# --- label model (latent score; Certified when score + intercept + logistic noise > 0) ----------

_TARGET_CERTIFIED_SHARE: Final = 0.668
_W_EDUCATION: Final = (-1.5, 0.0, 1.0, 1.6)
_W_CONTINENT: Final = (0.0, 0.75, 0.25, -0.45, 0.3, 0.0)
_W_REGION: Final = (-0.1, 0.1, -0.15, 0.35, -0.2)
_W_UNIT: Final = (0.0, -1.4, -0.2, 0.0)
_W_JOB_EXPERIENCE: Final = 0.8
_W_JOB_EXPERIENCE_NEW_RULES: Final = 2.0
"""Job experience weight under ``concept_drift`` (which also drops the education weights)."""
_W_FULL_TIME: Final = -0.15
_W_LOG_WAGE: Final = 0.45
_WAGE_REFERENCE: Final = 70_000.0
_CALIBRATION_ROWS: Final = 200_000
_CALIBRATION_SEED: Final = 20_240_101

# --- dirt ---------------------------------------------------------------------------------------

_DIRT_NEGATIVE_SHARE: Final = 0.001
_DIRT_NEGATIVE_VALUES: Final = (-11, -14, -17, -25, -26)
_DIRT_ODD_UNIT_SHARE: Final = 0.0005


class _Features:
    """Clean feature codes and values for one batch, before dirt and formatting.

    Attributes:
        continent: Index into ``_CONTINENTS`` per row.
        education: Index into ``_EDUCATION`` per row.
        job_experience: Whether the employee has job experience.
        job_training: Whether the job requires training.
        employees: Number of employees of the employer.
        yr_of_estab: Year the employer was established.
        region: Index into ``_REGIONS`` per row.
        unit: Index into ``_UNITS`` per row.
        yearly_wage: Prevailing wage expressed per year.
        wage: Prevailing wage expressed in ``unit``.
        full_time: Whether the position is full time.
    """

    __slots__ = (
        "continent",
        "education",
        "employees",
        "full_time",
        "job_experience",
        "job_training",
        "region",
        "unit",
        "wage",
        "yearly_wage",
        "yr_of_estab",
    )

    def __init__(self, rng: np.random.Generator, n_rows: int, *, drift: bool) -> None:
        """Draw all features for ``n_rows`` rows.

        Args:
            rng: Source of randomness; consumed in a fixed order.
            n_rows: Number of rows to draw.
            drift: Draw from the drifted population (higher wages, new continent mix).
        """
        continent_p = _CONTINENT_P_DRIFT if drift else _CONTINENT_P
        self.continent: IntArray = _choice(rng, continent_p, n_rows)
        self.education: IntArray = _choice(rng, _EDUCATION_P, n_rows)
        self.job_experience: BoolArray = rng.random(n_rows) < _P_JOB_EXPERIENCE
        self.job_training: BoolArray = rng.random(n_rows) < _P_JOB_TRAINING
        self.employees: IntArray = _draw_employees(rng, n_rows)
        self.yr_of_estab: IntArray = _draw_yr_of_estab(rng, n_rows)
        self.region: IntArray = _choice(rng, _REGION_P, n_rows)
        self.unit: IntArray = _choice(rng, _UNIT_P, n_rows)
        self.full_time: BoolArray = rng.random(n_rows) < _P_FULL_TIME

        edu_factor = np.asarray(_WAGE_EDU_FACTOR)[self.education]
        scale = _WAGE_YEARLY_MEAN / _WAGE_GAMMA_SHAPE
        yearly = rng.gamma(_WAGE_GAMMA_SHAPE, scale, n_rows) * edu_factor
        if drift:
            yearly = yearly * _WAGE_DRIFT_FACTOR
        wage_max = _WAGE_MAX_YEARLY * (_WAGE_DRIFT_FACTOR if drift else 1.0)
        yearly = np.clip(yearly, _WAGE_MIN_YEARLY, wage_max)
        wage = yearly / np.asarray(_UNIT_DIVISOR)[self.unit]
        is_hour = self.unit == _UNITS.index("Hour")
        wage = np.where(is_hour, np.clip(wage, _HOURLY_MIN, _HOURLY_MAX), wage)
        self.wage: FloatArray = np.round(wage, 2)
        self.yearly_wage: FloatArray = self.wage * np.asarray(_UNIT_DIVISOR)[self.unit]

    def score(self, *, new_rules: bool = False) -> FloatArray:
        """Return the latent approval score per row, without the intercept.

        Args:
            new_rules: Score by the changed label model of ``concept_drift``.

        Returns:
            Higher means more likely to be certified.
        """
        log_wage = np.log(self.yearly_wage / _WAGE_REFERENCE)
        education = 0.0 if new_rules else np.asarray(_W_EDUCATION)[self.education]
        experience = _W_JOB_EXPERIENCE_NEW_RULES if new_rules else _W_JOB_EXPERIENCE
        score: FloatArray = (
            education
            + np.asarray(_W_CONTINENT)[self.continent]
            + np.asarray(_W_REGION)[self.region]
            + np.asarray(_W_UNIT)[self.unit]
            + experience * self.job_experience
            + _W_FULL_TIME * self.full_time
            + _W_LOG_WAGE * log_wage
        )
        return score


def _choice(rng: np.random.Generator, p: tuple[float, ...], n_rows: int) -> IntArray:
    """Draw category indices with the given probabilities.

    Args:
        rng: Source of randomness.
        p: Category probabilities; normalised here, so they need only be proportions.
        n_rows: Number of draws.

    Returns:
        An ``int64`` array of indices into ``p``.
    """
    probs = np.asarray(p, dtype=np.float64)
    codes: IntArray = rng.choice(len(p), size=n_rows, p=probs / probs.sum()).astype(np.int64)
    return codes


def _draw_employees(rng: np.random.Generator, n_rows: int) -> IntArray:
    """Draw heavy-tailed employee counts: a log-normal body plus a Pareto tail.

    Args:
        rng: Source of randomness.
        n_rows: Number of draws.

    Returns:
        Counts between ``_EMPLOYEES_MIN`` and ``_EMPLOYEES_MAX``, median about 2,100.
    """
    body = _EMPLOYEES_MEDIAN * np.exp(_EMPLOYEES_SIGMA * rng.standard_normal(n_rows))
    tail = 10_000.0 * (1.0 + rng.pareto(0.9, n_rows))
    in_tail = rng.random(n_rows) < _EMPLOYEES_TAIL_SHARE
    counts = np.where(in_tail, tail, body)
    return np.clip(np.rint(counts), _EMPLOYEES_MIN, _EMPLOYEES_MAX).astype(np.int64)


def _draw_yr_of_estab(rng: np.random.Generator, n_rows: int) -> IntArray:
    """Draw founding years: log-normal company ages counted back from 2016.

    Args:
        rng: Source of randomness.
        n_rows: Number of draws.

    Returns:
        Years between 1800 and 2016, median about 1997.
    """
    age = _ESTAB_AGE_MEDIAN * np.exp(_ESTAB_AGE_SIGMA * rng.standard_normal(n_rows))
    years: IntArray = np.clip(_ESTAB_LAST_YEAR - np.rint(age), _ESTAB_FIRST_YEAR, _ESTAB_LAST_YEAR)
    return years.astype(np.int64)


def _sigmoid(x: FloatArray) -> FloatArray:
    """Return the logistic function of ``x``.

    Args:
        x: Input values.

    Returns:
        ``1 / (1 + exp(-x))`` element-wise.
    """
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


@lru_cache(maxsize=1)
def _intercept() -> float:
    """Calibrate the label-model intercept on a fixed reference sample of the clean population.

    The intercept is found by bisection so that the mean certification probability on the
    reference sample equals ``_TARGET_CERTIFIED_SHARE``. The reference sample has its own fixed
    seed, so the intercept does not depend on the caller's seed, size or drift setting.

    Returns:
        The intercept added to every latent score.
    """
    rng = np.random.default_rng(_CALIBRATION_SEED)
    score = _Features(rng, _CALIBRATION_ROWS, drift=False).score()
    low, high = -10.0, 10.0
    for _ in range(60):
        mid = (low + high) / 2.0
        if float(_sigmoid(score + mid).mean()) < _TARGET_CERTIFIED_SHARE:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def _case_ids(n_rows: int) -> npt.NDArray[np.str_]:
    """Return case ids ``EZYV01``, ``EZYV02``, ... (at least two digits, like the real table).

    Args:
        n_rows: Number of ids.

    Returns:
        A unicode array of unique ids.
    """
    if n_rows == 0:  # np.char.zfill cannot handle empty arrays
        return np.asarray([], dtype=np.str_)
    numbers = np.char.zfill(np.arange(1, n_rows + 1).astype(np.str_), 2)
    ids: npt.NDArray[np.str_] = np.char.add("EZYV", numbers)
    return ids


def _yes_no(flags: BoolArray) -> npt.NDArray[np.str_]:
    """Encode booleans as ``"Y"``/``"N"``.

    Args:
        flags: Boolean array.

    Returns:
        A unicode array of ``"Y"`` and ``"N"``.
    """
    out: npt.NDArray[np.str_] = np.where(flags, "Y", "N")
    return out


def _labels(vocabulary: tuple[str, ...], codes: IntArray) -> npt.NDArray[np.str_]:
    """Map category indices to their names.

    Args:
        vocabulary: Category names.
        codes: Indices into ``vocabulary``.

    Returns:
        A unicode array of names.
    """
    out: npt.NDArray[np.str_] = np.asarray(vocabulary, dtype=np.str_)[codes]
    return out


def generate(
    n_rows: int = DEFAULT_N_ROWS,
    *,
    seed: int = 42,
    drift: bool = False,
    concept_drift: bool = False,
    dirt: bool = True,
) -> pd.DataFrame:
    """Generate a synthetic EasyVisa-like table.

    The same arguments always give the same frame. Features are drawn first, then the label,
    then (if asked) the dirt, each from its own child generator of ``default_rng(seed)``, so
    ``dirt=False`` gives exactly the clean version of the ``dirt=True`` frame.

    Args:
        n_rows: Number of applications (rows); 25,480 like the real table.
        seed: Seed for :func:`numpy.random.default_rng`.
        drift: Produce a drifted batch: wages about 35% higher and a different continent mix
            (Asia 40%, Europe 30%, North America 12%, Africa 10%, South America 6%,
            Oceania 2%). The label model is unchanged.
        concept_drift: Label by new adjudication rules: job experience weighs 2.0 instead of
            0.8 on the latent score and education no longer counts (about 73% certified,
            77% with ``drift``).
            The features are those of the same arguments without it; only ``case_status``
            changes.
        dirt: Add realistic defects: about 0.1% negative ``no_of_employees`` and about 0.05%
            rows whose ``unit_of_wage`` is ``"Hour"`` although the wage is yearly. Very small
            tables may round these counts to zero.

    Returns:
        A frame with the columns in :data:`COLUMNS`, in that order.

    Raises:
        ValueError: If ``n_rows`` is negative.
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be non-negative, got {n_rows}")
    feature_rng, label_rng, dirt_rng = np.random.default_rng(seed).spawn(3)

    features = _Features(feature_rng, n_rows, drift=drift)
    score = features.score(new_rules=concept_drift)
    latent = score + _intercept() + label_rng.logistic(size=n_rows)
    certified = latent > 0.0

    employees = features.employees.copy()
    wage = features.wage.copy()
    unit = features.unit.copy()
    if dirt:
        n_negative = round(n_rows * _DIRT_NEGATIVE_SHARE)
        negative_rows = dirt_rng.choice(n_rows, size=n_negative, replace=False)
        employees[negative_rows] = dirt_rng.choice(_DIRT_NEGATIVE_VALUES, size=n_negative)

        yearly_rows = np.flatnonzero(unit == _UNITS.index("Year"))
        n_odd = min(round(n_rows * _DIRT_ODD_UNIT_SHARE), yearly_rows.size)
        odd_rows = dirt_rng.choice(yearly_rows, size=n_odd, replace=False)
        unit[odd_rows] = _UNITS.index("Hour")

    columns: dict[str, npt.NDArray[np.generic]] = {
        "case_id": _case_ids(n_rows),
        "continent": _labels(_CONTINENTS, features.continent),
        "education_of_employee": _labels(_EDUCATION, features.education),
        "has_job_experience": _yes_no(features.job_experience),
        "requires_job_training": _yes_no(features.job_training),
        "no_of_employees": employees,
        "yr_of_estab": features.yr_of_estab,
        "region_of_employment": _labels(_REGIONS, features.region),
        "prevailing_wage": wage,
        "unit_of_wage": _labels(_UNITS, unit),
        "full_time_position": _yes_no(features.full_time),
        "case_status": np.where(certified, "Certified", "Denied"),
    }
    return pd.DataFrame(columns, columns=list(COLUMNS))


def write_csv(
    path: str | Path,
    n_rows: int = DEFAULT_N_ROWS,
    *,
    seed: int = 42,
    drift: bool = False,
    concept_drift: bool = False,
    dirt: bool = True,
) -> Path:
    """Generate a table and write it to CSV atomically.

    The CSV is written to a temporary file in the target directory and moved into place with
    :func:`os.replace`, so readers never see a half-written file.

    Args:
        path: Destination file; parent directories are created.
        n_rows: Number of rows, as in :func:`generate`.
        seed: Seed, as in :func:`generate`.
        drift: Drifted batch, as in :func:`generate`.
        concept_drift: Changed label model, as in :func:`generate`.
        dirt: Realistic defects, as in :func:`generate`.

    Returns:
        The destination path.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame = generate(n_rows, seed=seed, drift=drift, concept_drift=concept_drift, dirt=dirt)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            frame.to_csv(handle, index=False)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target
