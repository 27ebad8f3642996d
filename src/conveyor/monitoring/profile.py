"""The reference profile: what drift checks compare against, saved with each model version.

Per feature: row count, missing rate, and for numeric columns quantile bin edges with counts,
summary statistics and 5,000 evenly spaced quantiles (for exact tests and distances); for
categorical columns the frequency of every category. The same for the model's outputs, by
task: a binary classifier's predicted class and positive-class probability; a multiclass
classifier's predicted class and its confidence, the probability of the predicted class (one
number per row whatever the number of classes, and a model meeting inputs unlike its training
data usually grows less sure before its class mix moves; the class mix covers every class at
once); a regressor's predicted value (numeric). A drift check reads this small JSON document
instead of the training data.

:func:`build_profile` profiles a DataFrame in memory; for a training table too large for that,
:func:`conveyor.monitoring.sketches.profile_from_sketch` builds the same profile from merged
per-partition sketches, through the same :func:`numeric_profile` / :func:`categorical_profile`
and :class:`Distribution` code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Kind = Literal["numeric", "categorical"]
SAMPLE_SIZE = 5000  # reference values kept per numeric column
N_BINS = 10  # quantile bins for PSI and the report's histograms
PREDICTION = "prediction"  # classification: the class (categorical); regression: the value
PROBABILITY = "probability"  # binary: the probability of the positive class
CONFIDENCE = "confidence"  # multiclass: the probability of the predicted class
DECILES = np.linspace(0, 1, N_BINS + 1)[1:-1]  # the bin edges' probabilities
SAMPLE_PROBABILITIES = (np.arange(SAMPLE_SIZE) + 0.5) / SAMPLE_SIZE
OTHER = "(other categories)"  # a sketch's rows in categories beyond its cap (sketches.py)


@dataclass
class ColumnProfile:
    """One column of the reference data."""

    name: str
    kind: Kind
    n: int
    missing_rate: float
    edges: list[float] = field(default_factory=list)  # numeric: inner quantile edges
    counts: list[int] = field(default_factory=list)  # numeric: rows per bin (len(edges) + 1)
    sample: list[float] = field(default_factory=list)  # numeric: up to SAMPLE_SIZE values
    mean: float | None = None
    std: float | None = None
    frequencies: dict[str, int] = field(default_factory=dict)  # categorical: rows per category

    @property
    def n_present(self) -> int:
        """Rows with a value."""
        return round(self.n * (1 - self.missing_rate))


@dataclass
class ReferenceProfile:
    """Every feature's profile, plus the model outputs' (``prediction``, and ``probability``
    or ``confidence`` for classifiers with probabilities).

    ``task`` and ``classes`` are None in profiles saved before they were recorded (and
    ``classes`` when the caller did not pass them); readers then go by the outputs present.
    """

    columns: dict[str, ColumnProfile]
    outputs: dict[str, ColumnProfile]
    n_rows: int
    positive: Any = None
    task: str | None = None
    classes: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (stored as the model version's ``reference_profile`` artifact)."""
        return {
            "n_rows": self.n_rows,
            "positive": self.positive,
            "task": self.task,
            "classes": self.classes,
            "columns": {k: asdict(v) for k, v in self.columns.items()},
            "outputs": {k: asdict(v) for k, v in self.outputs.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReferenceProfile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            columns={k: ColumnProfile(**v) for k, v in data["columns"].items()},
            outputs={k: ColumnProfile(**v) for k, v in data.get("outputs", {}).items()},
            n_rows=int(data["n_rows"]),
            positive=data.get("positive"),
            task=data.get("task"),
            classes=data.get("classes"),
        )


def is_numeric(series: pd.Series) -> bool:
    """Numbers (not booleans) are profiled as numeric; everything else as categories."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def profile_column(series: pd.Series, name: str, *, kind: Kind | None = None) -> ColumnProfile:
    """The profile of one column (vectorised: no Python loop over rows).

    ``kind`` forces numeric or categorical (classes coded 0/1/2 are categories); by default
    numbers are numeric and everything else categorical.
    """
    n = len(series)
    missing = series.isna().to_numpy()
    missing_rate = float(missing.mean()) if n else 0.0
    if kind is None:
        kind = "numeric" if is_numeric(series) else "categorical"
    if kind == "numeric":
        values = series.to_numpy(dtype="float64", na_value=np.nan)[~missing]
        values = values[np.isfinite(values)]
        mean = float(values.mean()) if len(values) else None
        std = float(values.std()) if len(values) else None
        return numeric_profile(
            name, n, missing_rate, Distribution(np.sort(values)), mean=mean, std=std
        )
    counts = series[~missing].astype(str).value_counts(sort=True)
    return categorical_profile(name, n, missing_rate, counts)


def build_profile(
    features: pd.DataFrame,
    *,
    predictions: Any = None,
    probabilities: Any = None,
    positive: Any = None,
    task: str | None = None,
    classes: Any = None,
) -> ReferenceProfile:
    """Profile the reference features and, if given, the model's outputs on reference rows.

    Args:
        features: the reference inputs (the training rows).
        predictions: the model's predictions on reference rows (classes or values).
        probabilities: class probabilities on the same rows: rows x classes (in the order of
            ``classes``), or only the positive class's (one value per row, binary).
        positive: the positive class (binary classification).
        task: ``classification`` or ``regression``; by default classification when
            ``probabilities`` or ``positive`` is given.
        classes: the model's classes (``classes_``); needed with a rows x classes matrix.

    Returns:
        The profile; its outputs are ``prediction`` (categorical for classification), plus
        ``confidence`` (multiclass, from a rows x classes matrix) or ``probability``.

    Raises:
        ValueError: a rows x classes matrix without matching ``classes``.
    """
    out = model_outputs(
        predictions=predictions,
        probabilities=probabilities,
        positive=positive,
        task=task,
        classes=classes,
    )
    columns = {str(c): profile_column(features[c], str(c)) for c in features.columns}
    outputs = {name: profile_column(series, name) for name, series in out.columns.items()}
    return ReferenceProfile(
        columns, outputs, len(features), out.positive, task=out.task, classes=out.classes
    )


@dataclass
class ModelOutputs:
    """The model's outputs as the profile has them: ``columns`` maps ``prediction``
    (class as text, or value), ``probability`` or ``confidence`` to one value per row."""

    columns: dict[str, pd.Series]
    task: str | None
    positive: Any
    classes: list[str] | None


def model_outputs(
    *,
    predictions: Any = None,
    probabilities: Any = None,
    positive: Any = None,
    task: str | None = None,
    classes: Any = None,
) -> ModelOutputs:
    """The outputs :func:`build_profile` profiles (its arguments, same meaning), for the
    in-memory and the sketch paths alike.

    Raises:
        ValueError: a rows x classes matrix without matching ``classes``.
    """
    import pandas as pd

    if task is None:
        task = "classification" if probabilities is not None or positive is not None else None
    names = [str(c) for c in classes] if classes is not None else None
    columns: dict[str, pd.Series] = {}
    if predictions is not None:
        series = pd.Series(np.asarray(predictions))
        if task == "classification" or not is_numeric(series):
            series, task = label_text(series), task or "classification"
        columns[PREDICTION] = series
        task = task or "regression"
    if probabilities is not None:
        proba = np.asarray(probabilities, dtype="float64")
        if proba.ndim == 2:
            if names is None or len(names) != proba.shape[1]:
                raise ValueError(
                    f"probabilities have {proba.shape[1]} columns: pass the model's classes"
                )
            if len(names) > 2:
                columns[CONFIDENCE] = pd.Series(proba.max(axis=1))
            else:
                positive = positive_class(names, positive)
                columns[PROBABILITY] = pd.Series(proba[:, names.index(positive)])
        else:
            columns[PROBABILITY] = pd.Series(proba)
    return ModelOutputs(columns, task, _plain(positive), names)


def numeric_profile(
    name: str,
    n: int,
    missing_rate: float,
    values: Distribution,
    *,
    mean: float | None,
    std: float | None,
) -> ColumnProfile:
    """A numeric column's profile from the distribution of its finite values: what the
    in-memory and the sketch paths (:mod:`conveyor.monitoring.sketches`) share."""
    edges = np.unique(values.quantiles(DECILES, "linear")) if values.n else np.array([], "float64")
    below = values.count_below(edges)
    counts = np.diff(np.concatenate(([0], below, [values.n])))
    # Evenly spaced quantiles, not a random draw: a random 5,000 of the 25,480 visa rows is
    # 0.01-0.035 std away from the full reference in Wasserstein distance (a third of the
    # 0.1 threshold on yr_of_estab); these quantiles are < 0.002 away.
    sample = (
        values.expanded()
        if values.n <= SAMPLE_SIZE
        else values.quantiles(SAMPLE_PROBABILITIES, "inverted_cdf")
    )
    return ColumnProfile(
        name,
        "numeric",
        n,
        missing_rate,
        edges=[float(e) for e in edges],
        counts=[int(c) for c in counts],
        sample=[float(v) for v in np.sort(sample)],
        mean=mean,
        std=std,
    )


def categorical_profile(name: str, n: int, missing_rate: float, counts: pd.Series) -> ColumnProfile:
    """A categorical column's profile from its rows per category (text), most frequent first."""
    return ColumnProfile(
        name,
        "categorical",
        n,
        missing_rate,
        frequencies={str(k): int(v) for k, v in counts.items()},
    )


class Distribution:
    """The finite values of a numeric column, sorted, each with a weight (rows it stands for).

    In memory the weights are all one (``weights`` None: the values themselves); a sketch
    (:mod:`conveyor.monitoring.sketches`) gives distinct values with their row counts
    (``exact``), or a quantile sketch's retained items with their weights (not ``exact``).
    Every statistic the profile and the drift check take from numbers goes through the
    methods below, so both paths compute them with the same code.
    """

    def __init__(
        self,
        values: np.ndarray[Any, Any],
        weights: np.ndarray[Any, Any] | None = None,
        *,
        exact: bool = True,
    ) -> None:
        self.values = values  # ascending
        self.weights = weights
        self.exact = exact
        # rows at or before each value: cumulative[i] = sum(weights[: i + 1])
        self._cumulative = None if weights is None else np.cumsum(weights, dtype=np.int64)
        self.n = (
            len(values)
            if self._cumulative is None or not len(values)
            else int(self._cumulative[-1])
        )

    def expanded(self) -> np.ndarray[Any, Any]:
        """Every value, repeated by its weight (a sketch's approximation when not exact)."""
        return self.values if self.weights is None else np.repeat(self.values, self.weights)

    def count_below(self, edges: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Rows with a value strictly below each edge."""
        at = np.searchsorted(self.values, edges, side="left")
        if self._cumulative is None:
            return at
        return np.concatenate(([0], self._cumulative))[at]

    def cdf(self, points: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Share of rows at or below each point."""
        at = np.searchsorted(self.values, points, side="right")
        if self._cumulative is not None:
            at = np.concatenate(([0], self._cumulative))[at]
        return at / self.n

    def quantiles(
        self, probabilities: np.ndarray[Any, Any], method: Literal["linear", "inverted_cdf"]
    ) -> np.ndarray[Any, Any]:
        """``np.quantile(values, probabilities, method=method)``, equal to it bit for bit on
        weighted values too (the same index arithmetic as numpy, on order statistics read
        from the cumulative weights)."""
        if self._cumulative is None:
            exact: np.ndarray[Any, Any] = np.quantile(self.values, probabilities, method=method)
            return exact
        n = self.n
        if method == "inverted_cdf":
            index = n * probabilities - 1
            previous = np.floor(index)
            take = np.where(index - previous == 0, previous, previous + 1).astype(np.intp)
            return self._order_statistics(np.maximum(take, 0))
        virtual = (n - 1) * probabilities
        previous = np.floor(virtual)
        gamma = virtual - previous
        low = np.clip(previous, 0, n - 1).astype(np.intp)
        high = np.clip(previous + 1, 0, n - 1).astype(np.intp)
        low[virtual >= n - 1] = n - 1
        a, b = self._order_statistics(low), self._order_statistics(high)
        diff = b - a  # numpy's _lerp: from the nearer end, so that t = 1 gives b exactly
        out: np.ndarray[Any, Any] = a + diff * gamma
        np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
        return out

    def _order_statistics(self, index: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """The ``index``-th smallest rows' values (0-based)."""
        assert self._cumulative is not None
        found: np.ndarray[Any, Any] = self.values[
            np.searchsorted(self._cumulative, index, side="right")
        ]
        return found


def label_text(values: Any) -> pd.Series:
    """Class labels as text, the same whichever way they travelled: ``2``, ``2.0`` (an int
    column with a gap reads back as floats) and ``"2"`` are all ``"2"``; ``True`` is
    ``"True"``. Missing values stay missing."""
    import pandas as pd

    series = values if isinstance(values, pd.Series) else pd.Series(values)
    present = series.notna()
    text = series[present].astype(str).str.replace(r"^(-?\d+)\.0$", r"\1", regex=True)
    out = pd.Series(None, index=series.index, dtype=object)
    out[present] = text
    return out


def positive_class(classes: list[str], positive: Any) -> str:
    """The class whose probability is the "positive" one: ``positive`` when it names one of
    ``classes`` (compared as text, so ``1``, ``"1"`` and ``True``/``"True"`` match), else the
    last class (scikit-learn's convention, and the train line's)."""
    return str(positive) if str(positive) in classes else classes[-1]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (the profile is JSON)."""
    return value.item() if hasattr(value, "item") else value
