"""Check a DataFrame against its schema (pandera does the column checks) and apply severities.

Order: table rules (required/extra columns, minimum rows), types (each value converted to the
declared dtype; what cannot be converted is a failure), column checks (nullable, unique, min,
max, allowed, regex) run by pandera, row checks across columns, and the primary key. Then
``drop`` failures remove their rows, ``fix`` failures are clipped, ``warn`` ones are reported,
and any ``error`` one fails the validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from conveyor.data.expressions import compile_expression
from conveyor.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from conveyor.data.expressions import Expression
    from conveyor.data.schema import ColumnSchema, Schema, Severity

SAMPLE = 5  # rows and values quoted per failure
_T = TypeVar("_T")
_Label = tuple[str, "Severity", str]  # check as shown, its severity, the schema rule behind it


@dataclass
class Failure:
    """One check that some rows (or the table) failed."""

    column: str | None
    check: str
    severity: Severity
    count: int
    rows: list[int] = field(default_factory=list)  # 1-based data rows, header excluded
    values: list[Any] = field(default_factory=list)
    positions: np.ndarray[Any, Any] | None = field(default=None, repr=False)
    rule: str | None = None  # the schema rule behind the check ("min", "max", ...), if any
    detail: str | None = None  # for table-level checks: what was found
    partitions: list[int] = field(default_factory=list)  # partitioned data: each row's partition

    def describe(self) -> str:
        """``column 'x' check 'min >= 1': 3 rows (rows 4, 17; values -26, -11)``."""
        where = f"column {self.column!r} " if self.column else ""
        text = f"{where}check '{self.check}'"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows)
            if self.partitions:
                shown += f" in partitions {', '.join(str(p) for p in self.partitions)}"
            values = ", ".join("<missing>" if v is None else repr(v) for v in self.values)
            more = ", ..." if self.count > len(self.rows) else ""
            return f"{text}: {self.count} rows (rows {shown}{more}; values {values}{more})"
        return f"{text}: {self.detail}" if self.detail else text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without the full row positions)."""
        return {
            "column": self.column,
            "check": self.check,
            "severity": self.severity,
            "count": self.count,
            "rows": self.rows,
            "values": [_jsonable(v) for v in self.values],
            **({"partitions": self.partitions} if self.partitions else {}),
        }


@dataclass
class ValidationReport:
    """What validation found and did."""

    source: str
    rows_in: int
    rows_out: int
    columns: int
    schema_hash: str | None
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No ``error`` failure."""
        return not self.errors

    @property
    def errors(self) -> list[Failure]:
        """The failures that stop the line."""
        return [f for f in self.failures if f.severity == "error"]

    def count(self, severity: str) -> int:
        """Rows affected by failures of one severity."""
        return sum(f.count for f in self.failures if f.severity == severity)

    def error_message(self) -> str:
        """A message naming the source, and each failing column and check."""
        lines = [f"{self.source}: validation failed ({len(self.errors)} error checks)"]
        lines += [f"  {f.describe()}" for f in self.errors]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored as the run's validation report artifact."""
        return {
            "source": self.source,
            "passed": self.passed,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "columns": self.columns,
            "schema_hash": self.schema_hash,
            "dropped": self.count("drop"),
            "fixed": self.count("fix"),
            "warnings": self.count("warn"),
            "failures": [f.to_dict() for f in self.failures],
        }


def validate(
    df: pd.DataFrame, schema: Schema, *, source: str, target: str | None = None
) -> tuple[pd.DataFrame, ValidationReport]:
    """Validate ``df``; returns the cleaned frame (drops and fixes applied) and the report.

    The frame comes back with declared dtypes applied (int columns holding missing values
    become float). It does not raise on failures: check ``report.passed``. Rows whose
    ``target`` is missing cannot be learnt from: they are dropped and counted (check
    ``target present``) unless the schema already rules on that column's nulls.

    Raises:
        ConfigError: a row check expression cannot be evaluated.
    """
    df = df.reset_index(drop=True)
    report = ValidationReport(source, len(df), len(df), len(df.columns), schema.digest())
    failures = report.failures
    work = _table_rules(df, schema, failures)
    present = {name: spec for name, spec in schema.columns.items() if name in work.columns}
    for name, spec in present.items():
        work[name], bad = _coerce(df[name], spec.dtype, spec.format)
        if bad.any():
            failures.append(_rows(name, f"dtype {spec.dtype}", spec.type_severity, bad, df[name]))
    failures.extend(_column_checks(work, df, present))
    failures.extend(_row_checks(work, schema))
    if target is not None and target in work.columns:
        failures.extend(_missing_target(work, target, failures))
    keys = [k for k in schema.table.key_columns if k in work.columns]
    if keys and len(work):
        dup = work.duplicated(subset=keys, keep=False).to_numpy()
        if dup.any():
            failures.append(
                _rows(None, f"primary key {'+'.join(keys)} unique", "error", dup, work[keys[0]])
            )
    work = _apply(work, present, failures)
    report.rows_out = len(work)
    report.columns = len(work.columns)
    return work, report


def require_valid(
    df: pd.DataFrame, schema: Schema, *, source: str
) -> tuple[pd.DataFrame, ValidationReport]:
    """:func:`validate`, raising :class:`DataValidationError` when an error check fails."""
    clean, report = validate(df, schema, source=source)
    if not report.passed:
        raise DataValidationError(report.error_message())
    return clean, report


def _table_rules(df: pd.DataFrame, schema: Schema, failures: list[Failure]) -> pd.DataFrame:
    for name in schema.required_columns:
        if name not in df.columns:
            failures.append(Failure(name, "required column is missing", "error", 0))
    if schema.columns:
        extra = [c for c in df.columns if c not in schema.columns]
        policy = schema.table.extra_columns
        if extra and policy != "allow":
            for name in extra:
                failures.append(Failure(str(name), "column not in schema", policy, 0))
            if policy == "drop":
                df = df.drop(columns=extra)
    if len(df) < schema.table.min_rows:
        found = f"the data has {len(df)} rows" + (" (header only?)" if not len(df) else "")
        failures.append(
            Failure(None, f"min_rows {schema.table.min_rows}", "error", len(df), detail=found)
        )
    return df.copy()


def _coerce(
    col: pd.Series, dtype: str, date_format: str = "ISO8601"
) -> tuple[pd.Series, np.ndarray[Any, Any]]:
    """``col`` converted to ``dtype`` and a mask of the values that could not be converted."""
    import pandas as pd

    present = col.notna().to_numpy()
    if dtype in ("int", "float"):
        converted = pd.to_numeric(col, errors="coerce").astype("float64")
        values = converted.to_numpy()
        finite = np.isfinite(values)
        bad = present & ~finite  # text that is not a number, or inf
        if dtype == "int":  # a fraction, or beyond what int64/float64 hold exactly
            whole = np.where(finite, values, 0.0)  # no arithmetic on inf/nan: no warnings
            bad |= finite & ((np.mod(whole, 1) != 0) | (np.abs(whole) > _MAX_EXACT_INT))
        result: pd.Series = converted.where(~bad)
        if dtype == "int" and not result.isna().any():
            result = result.astype("int64")
        return result, bad
    if dtype == "bool":
        mapped = col.astype("string").str.strip().str.lower().map(_BOOLS)
        return mapped.astype("boolean"), present & mapped.isna().to_numpy()
    if dtype == "datetime":
        parsed = pd.to_datetime(col, errors="coerce", utc=True, format=date_format)
        return parsed, present & parsed.isna().to_numpy()
    if pd.api.types.is_string_dtype(col):
        return col, np.zeros(len(col), dtype=bool)
    return col.astype("string").astype(object).where(col.notna()), np.zeros(len(col), dtype=bool)


_MAX_EXACT_INT = 2**53
_BOOLS = {
    "true": True,
    "false": False,
    "1": True,
    "0": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "t": True,
    "f": False,
}


def _column_checks(
    work: pd.DataFrame, original: pd.DataFrame, present: dict[str, ColumnSchema]
) -> list[Failure]:
    """nullable, unique, min, max, allowed and regex, run by pandera on the converted frame."""
    import pandera.pandas as pa

    labels: dict[str, list[_Label]] = {}
    columns = {}
    for name, spec in present.items():
        checks, labels[name] = _pandera_checks(pa, spec, original[name].notna())
        columns[name] = pa.Column(checks=checks, nullable=True, required=True)
    if not any(labels.values()):
        return []
    try:
        pa.DataFrameSchema(columns).validate(work, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _failures_from_pandera(exc.failure_cases, labels, work)
    return []


def _pandera_checks(
    pa: Any, spec: ColumnSchema, not_null: pd.Series
) -> tuple[list[Any], list[_Label]]:
    checks: list[Any] = []
    labels: list[_Label] = []
    nullable, sev = spec.rule("nullable")
    if nullable is False:
        # Judged on the original values: a value of the wrong type is reported once, as dtype.
        checks.append(pa.Check(lambda s, m=not_null: m.loc[s.index], ignore_na=False))
        labels.append(("not null", sev, "nullable"))
    unique, sev = spec.rule("unique")
    if unique is True:
        checks.append(pa.Check(lambda s: ~s.duplicated(keep=False) | s.isna(), ignore_na=False))
        labels.append(("unique", sev, "unique"))
    for name, make, text in (("min", pa.Check.ge, ">="), ("max", pa.Check.le, "<=")):
        value, sev = spec.rule(name)
        if value is not None:
            checks.append(make(value))
            labels.append((f"{name} {text} {value:g}", sev, name))
    allowed, sev = spec.rule("allowed")
    if allowed is not None:
        values = allowed if spec.dtype in ("int", "float", "bool") else [str(v) for v in allowed]
        checks.append(pa.Check.isin(values))
        labels.append(("allowed values", sev, "allowed"))
    regex, sev = spec.rule("regex")
    if regex is not None:
        checks.append(pa.Check.str_matches(regex))
        labels.append((f"regex {regex}", sev, "regex"))
    return checks, labels


def _failures_from_pandera(
    cases: pd.DataFrame, labels: dict[str, list[_Label]], work: pd.DataFrame
) -> list[Failure]:
    import pandas as pd

    out = []
    cases = cases[cases["check_number"].notna() & cases["column"].isin(list(labels))]
    for (column, number), group in cases.groupby(["column", "check_number"], sort=False):
        check, severity, rule = labels[str(column)][int(str(number).split(".")[0])]
        positions = pd.to_numeric(group["index"], errors="coerce").dropna().astype("int64")
        mask = np.zeros(len(work), dtype=bool)
        mask[positions.to_numpy()] = True
        out.append(_rows(str(column), check, severity, mask, work[column], rule=rule))
    return out


def _row_checks(work: pd.DataFrame, schema: Schema) -> list[Failure]:
    """The ``checks:`` section, run by the expression language (never ``eval``)."""
    out = []
    absent = {c for c in schema.columns if c not in work.columns}
    for name, rule in schema.checks.items():
        texts = {"when": rule.when, "require": rule.require}
        # Compiled again here, so a Schema built without validation gets no shortcut.
        compiled = {
            key: _in_check(name, key, compile_expression, text)
            for key, text in texts.items()
            if text is not None
        }
        read = [c for expression in compiled.values() for c in expression.columns]
        if any(c in absent for c in read):
            continue  # it reads a declared column that is missing, which is reported as such
        masks = {key: _in_check(name, key, _mask, e, work) for key, e in compiled.items()}
        failed = masks.get("when", np.ones(len(work), dtype=bool)) & ~masks["require"]
        if failed.any():
            shown = [*compiled["require"].columns, *read]  # the values the rule is about
            values = work[shown[0]] if shown else work.iloc[:, 0]
            out.append(_rows(None, f"{name}: {rule.require}", rule.severity, failed, values))
    return out


def _in_check(check: str, key: str, function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)``, its ConfigError prefixed with the check's key path."""
    try:
        return function(*args)
    except ConfigError as exc:
        raise ConfigError(f"schema: checks.{check}.{key}: {exc}") from None


def _mask(expression: Expression, work: pd.DataFrame) -> np.ndarray[Any, Any]:
    """Rows where ``expression`` holds (a missing result counts as False)."""
    expression.check_columns(work.columns)
    return expression.mask(work)


def _missing_target(work: pd.DataFrame, target: str, failures: list[Failure]) -> list[Failure]:
    """A ``drop`` failure for the rows without a target, unless a nullable check covers them."""
    if any(f.column == target and f.rule == "nullable" for f in failures):
        return []
    missing = work[target].isna().to_numpy()
    if not missing.any():
        return []
    return [_rows(target, "target present", "drop", missing, work[target], rule="nullable")]


def _apply(
    work: pd.DataFrame, present: dict[str, ColumnSchema], failures: list[Failure]
) -> pd.DataFrame:
    drop = np.zeros(len(work), dtype=bool)
    for f in failures:
        if f.severity == "drop" and f.positions is not None:
            drop |= f.positions
        if f.severity == "fix" and f.column in present and f.rule in ("min", "max"):
            bound, _ = present[f.column].rule(f.rule)
            work[f.column] = work[f.column].clip(**{"lower" if f.rule == "min" else "upper": bound})
    if drop.any():
        work = work[~drop].reset_index(drop=True)
        for name, spec in present.items():  # rows that held the gaps may be gone now
            if spec.dtype == "int" and work[name].dtype != "int64" and work[name].notna().all():
                work[name] = work[name].astype("int64")
    return work


def _rows(
    column: str | None,
    check: str,
    severity: Severity,
    mask: np.ndarray[Any, Any],
    values: pd.Series,
    *,
    rule: str | None = None,
) -> Failure:
    positions = np.flatnonzero(mask)
    first = positions[:SAMPLE]
    return Failure(
        column,
        check,
        severity,
        len(positions),
        [int(p) + 1 for p in first],
        [_jsonable(v) for v in values.iloc[first]],
        mask,
        rule,
    )


def _jsonable(value: Any) -> Any:
    """Plain JSON values; a missing value (None, NaN, NA, NaT) becomes None."""
    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value))):
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)
