"""Derived features for the visa example (referenced from conveyor.yaml ``features.derive``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_YEAR = 2016  # the last filing year in the EasyVisa table: ages are relative to it
HOURS_PER = {"Hour": 2080.0, "Week": 52.0, "Month": 12.0, "Year": 1.0}


def add_company_age(df: pd.DataFrame) -> pd.DataFrame:
    """``company_age`` = years since the employer was established."""
    return df.assign(company_age=REFERENCE_YEAR - df["yr_of_estab"])


def add_yearly_wage(df: pd.DataFrame) -> pd.DataFrame:
    """``yearly_wage``: the prevailing wage converted to a yearly amount by its unit."""
    factor = df["unit_of_wage"].map(HOURS_PER).astype("float64")
    return df.assign(yearly_wage=df["prevailing_wage"] * factor)
