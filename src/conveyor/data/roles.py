"""What each column of a table is for, judged from its name and values: a feature (number,
category, boolean, date), or a column a model must not learn from (an identifier, free text, a
constant). Each judgement carries a one-line reason, shown to the user and written into the
generated conveyor.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Collection

    import pandas as pd

Kind = Literal[
    "numeric", "category", "bool", "datetime", "id", "text", "constant", "leak", "target"
]
DROPPED: frozenset[Kind] = frozenset({"id", "text", "constant", "leak"})
LEAK_CORRELATION = 0.995
"""A numeric column this rank-correlated with a numeric target is a copy of it, not a feature."""
HIGH_CARDINALITY = 30
"""A category with more distinct values than this gets its rare values pooled when encoded."""

_ID_WORD = re.compile(
    r"(^|[^a-z])(id|ids|uuid|guid|key|index|idx|rownames?|row_?names?|unnamed: ?\d+)($|[^a-z])",
    re.IGNORECASE,
)
_ID_CAMEL = re.compile(r"[a-z](Id|ID)$")  # customerId, CustomerID
_DATE_HINT = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{4}-\d{2}")


@dataclass(frozen=True)
class ColumnRole:
    """One column's role and why."""

    name: str
    kind: Kind
    reason: str
    distinct: int = 0
    date_format: str | None = None  # datetime columns: "ISO8601" or "mixed"

    @property
    def dropped(self) -> bool:
        """Whether the model leaves this column out."""
        return self.kind in DROPPED


def column_roles(df: pd.DataFrame, *, target: str, ids: Collection[str] = ()) -> list[ColumnRole]:
    """The role of every column of ``df``, in column order.

    Args:
        df: a sample of the table (all of it, ideally).
        target: the label column.
        ids: columns the user says are identifiers.
    """
    roles = [
        ColumnRole(str(name), "target", "the label to predict (data.target)")
        if name == target
        else _role(df[name], str(name), forced_id=name in ids)
        for name in df.columns
    ]
    return [_leak(role, df, target) if role.kind == "numeric" else role for role in roles]


def _leak(role: ColumnRole, df: pd.DataFrame, target: str) -> ColumnRole:
    """``role`` as a leak when the column is a monotone function of a numeric target
    (``logwage`` beside ``wage``): a model would learn the answer, not the problem."""
    import pandas as pd

    y = df[target]
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return role
    pair = df[[role.name, target]].dropna()
    if len(pair) < 10 or pair[target].nunique() <= 2:
        return role
    rho = pair[role.name].rank().corr(pair[target].rank())
    if pd.notna(rho) and abs(rho) >= LEAK_CORRELATION:
        why = f"rank-correlated {rho:+.3f} with the target: a copy of it (a leak), not a cause"
        return ColumnRole(role.name, "leak", why, role.distinct)
    return role


def _role(col: pd.Series, name: str, *, forced_id: bool) -> ColumnRole:
    import pandas as pd

    values = col.dropna()
    n, distinct = len(values), int(values.nunique())
    if forced_id:
        return ColumnRole(name, "id", "an identifier (--id)", distinct)
    if n == 0 or distinct <= 1:
        return ColumnRole(name, "constant", "one value in every row: nothing to learn", distinct)
    if pd.api.types.is_bool_dtype(col):
        return ColumnRole(name, "bool", "true/false", distinct)
    if pd.api.types.is_datetime64_any_dtype(col):
        return ColumnRole(name, "datetime", _DATE_REASON, distinct, "ISO8601")
    unique_share = distinct / n
    named_id = bool(_ID_WORD.search(name) or _ID_CAMEL.search(name))
    if pd.api.types.is_numeric_dtype(col):
        whole = bool((values % 1 == 0).all())
        if whole and named_id and unique_share >= 0.5:
            return ColumnRole(
                name, "id", "named like an identifier, mostly unique numbers", distinct
            )
        if whole and unique_share == 1.0 and _is_sequence(values):
            return ColumnRole(name, "id", "a row number (consecutive, one per row)", distinct)
        return ColumnRole(name, "numeric", "a number", distinct)
    text = values.astype(str)
    if named_id and unique_share >= 0.5:
        return ColumnRole(name, "id", "named like an identifier, mostly unique values", distinct)
    date_format = _date_format(text)
    if date_format is not None:
        return ColumnRole(name, "datetime", _DATE_REASON, distinct, date_format)
    if unique_share > 0.5 and distinct > 20:
        if text.str.count(r"\s+").mean() >= 2:  # three words or more, on average
            return ColumnRole(name, "text", "free text (mostly unique, several words)", distinct)
        if unique_share >= 0.95:
            return ColumnRole(name, "id", "a unique code per row", distinct)
    if distinct > HIGH_CARDINALITY:
        return ColumnRole(
            name, "category", f"a category with {distinct} values: rare ones pooled", distinct
        )
    return ColumnRole(name, "category", f"a category ({distinct} values)", distinct)


_DATE_REASON = "a date: the model sees its year, month, day and weekday"


def _is_sequence(values: pd.Series) -> bool:
    """Consecutive whole numbers (in any order): 1..n, 0..n-1, 1001..1000+n."""
    ordered = values.sort_values().to_numpy()
    return bool(len(ordered) > 1 and (ordered[1:] - ordered[:-1] == 1).all())


def _date_format(text: pd.Series) -> str | None:
    """``ISO8601`` or ``mixed`` when (nearly) every value parses as a date, else None."""
    import pandas as pd

    sample = text.head(500)
    if not sample.str.contains(_DATE_HINT).mean() >= 0.95:
        return None
    for fmt in ("ISO8601", "mixed"):
        parsed = pd.to_datetime(sample, errors="coerce", format=fmt, utc=True)
        if parsed.notna().mean() >= 0.95:
            return fmt
    return None
