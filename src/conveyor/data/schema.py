"""schema.yaml: what the data must look like, per column and per table, with a severity per check.

```yaml
columns:
  case_id: {dtype: string, nullable: false, unique: true, regex: "^EZYV\\d+$"}
  no_of_employees: {dtype: int, min: {value: 1, severity: drop}}
  prevailing_wage: {dtype: float, min: 0, max: {value: 1e6, severity: fix}}
table: {required: all, extra_columns: error, min_rows: 100, primary_key: case_id}
checks:
  hourly_wage_plausible: {when: "unit_of_wage == 'Hour'", require: "prevailing_wage <= 400"}
```

A check is a plain value, or ``{value: ..., severity: ...}`` to override the column's severity:
``error`` stops the line, ``warn`` is reported only, ``drop`` removes the failing rows (and counts
them), ``fix`` clips to ``min``/``max``. Row checks are expressions of
:mod:`conveyor.data.expressions`, a small language over the row's columns: never Python code.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from conveyor import _yaml
from conveyor.config import format_validation_error
from conveyor.data.expressions import compile_expression
from conveyor.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

Severity = Literal["error", "warn", "drop", "fix"]
Dtype = Literal["string", "category", "int", "float", "bool", "datetime"]
NUMERIC: tuple[str, ...] = ("int", "float")
CLIPPABLE: tuple[str, ...] = ("min", "max")
_RULE_TYPES: dict[str, tuple[type, ...]] = {
    "nullable": (bool,),
    "unique": (bool,),
    "min": (int, float),
    "max": (int, float),
    "allowed": (list,),
    "regex": (str,),
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Spec):
    """A check's value with its own severity."""

    value: Any
    severity: Severity | None = None


class ColumnSchema(_Spec):
    """What one column must hold."""

    dtype: Dtype = "string"
    nullable: bool | Rule = True
    unique: bool | Rule = False
    min: float | Rule | None = None
    max: float | Rule | None = None
    allowed: list[Any] | Rule | None = None
    regex: str | Rule | None = None
    severity: Severity = "error"
    format: str = "ISO8601"  # datetime columns: a strftime format, "ISO8601" or "mixed"
    role: Literal["feature", "target", "id"] | None = None
    description: str | None = None

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, regex: str | Rule | None) -> str | Rule | None:
        pattern = regex.value if isinstance(regex, Rule) else regex
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return regex

    @field_validator("format")
    @classmethod
    def _format_parses(cls, fmt: str) -> str:
        if fmt not in ("ISO8601", "mixed"):
            _check_datetime_format(fmt)
        return fmt

    @model_validator(mode="after")
    def _rules_make_sense(self) -> ColumnSchema:
        for name, kinds in _RULE_TYPES.items():
            raw = getattr(self, name)
            if not isinstance(raw, Rule):
                continue
            if raw.severity == "fix" and name not in CLIPPABLE:
                raise ValueError(f"{name}: severity 'fix' only applies to min/max (clip)")
            if not isinstance(raw.value, kinds) or isinstance(raw.value, bool) is not (
                bool in kinds
            ):
                expected = " or ".join(k.__name__ for k in kinds)
                raise ValueError(f"{name}.value: expected {expected}, got {raw.value!r}")
        return self

    def rule(self, name: str) -> tuple[Any, Severity]:
        """``(value, severity)`` of a check, the column's severity filling in.

        A column-level ``fix`` clips ``min``/``max``; checks that cannot be fixed stay errors.
        """
        raw = getattr(self, name)
        if isinstance(raw, Rule):
            return raw.value, raw.severity or self._default(name)
        return raw, self._default(name)

    def _default(self, name: str) -> Severity:
        return "error" if self.severity == "fix" and name not in CLIPPABLE else self.severity

    @property
    def type_severity(self) -> Severity:
        """Severity for values of the wrong type (``fix`` cannot repair a type: error)."""
        return "error" if self.severity == "fix" else self.severity


class TableSchema(_Spec):
    """Table-level rules."""

    required: Literal["all"] | list[str] = "all"
    extra_columns: Literal["error", "warn", "drop", "allow"] = "error"
    min_rows: int = Field(1, ge=0)
    primary_key: str | list[str] | None = None

    @property
    def key_columns(self) -> list[str]:
        """The primary key as a list of column names."""
        if self.primary_key is None:
            return []
        return [self.primary_key] if isinstance(self.primary_key, str) else self.primary_key


class RowCheck(_Spec):
    """A rule across columns of one row: rows where ``when`` holds must satisfy ``require``.

    Both are expressions of :mod:`conveyor.data.expressions` (never Python), checked here.
    """

    require: str
    when: str | None = None
    severity: Severity = "error"

    @field_validator("require", "when")
    @classmethod
    def _expression(cls, text: str | None) -> str | None:
        if text is not None:
            compile_expression(text)  # a ConfigError is a ValueError: reported at its key path
        return text

    @model_validator(mode="after")
    def _no_fix(self) -> RowCheck:
        if self.severity == "fix":
            raise ValueError("severity 'fix' does not apply to row checks")
        return self


class Schema(_Spec):
    """The whole of schema.yaml."""

    columns: dict[str, ColumnSchema] = Field(default_factory=dict)
    table: TableSchema = Field(default_factory=TableSchema)
    checks: dict[str, RowCheck] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_columns(self) -> Schema:
        names = set(self.columns)
        listed = [] if self.table.required == "all" else self.table.required
        for col in [*listed, *self.table.key_columns]:
            if names and col not in names:
                raise ValueError(f"table: column {col!r} is not declared under columns")
        if names and self.table.extra_columns != "allow":  # else a check may read extra columns
            for check_name, check in self.checks.items():
                for key, text in (("when", check.when), ("require", check.require)):
                    try:
                        if text is not None:
                            compile_expression(text).check_columns(list(self.columns))
                    except ConfigError as exc:
                        raise ValueError(f"checks.{check_name}.{key}: {exc}") from None
        return self

    @property
    def required_columns(self) -> list[str]:
        """Columns that must be present."""
        return list(self.columns) if self.table.required == "all" else self.table.required

    def digest(self) -> str:
        """SHA-256 of the schema's content (part of every dataset version)."""
        data = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(data).hexdigest()


def load_schema(path: str | Path) -> Schema:
    """Read and check a schema.yaml.

    Raises:
        ConfigError: missing file, bad YAML, or invalid content, naming the file and key path.
    """
    file = Path(path)
    try:
        raw = _yaml.load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: schema file not found (data.schema)") from None
    except (OSError, UnicodeDecodeError, _yaml.YAMLError) as exc:
        raise ConfigError(f"{file}: cannot read schema: {exc}") from None
    return parse_schema(raw if raw is not None else {}, source=str(file))


def parse_schema(raw: Any, *, source: str = "schema.yaml") -> Schema:
    """Validate an already-parsed schema mapping; errors are prefixed with ``source``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return Schema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def infer_schema(df: pd.DataFrame, *, max_categories: int = 20) -> dict[str, Any]:
    """A starting schema.yaml for ``df``: types, nullability, observed ranges and categories.

    Numeric ranges are the observed min/max, so review them before trusting them on new data.
    """
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in df.columns:
        col = df[name]
        spec: dict[str, Any] = {"dtype": _infer_dtype(col), "nullable": bool(col.isna().any())}
        values = col.dropna()
        if spec["dtype"] in NUMERIC and len(values):
            spec["min"], spec["max"] = _plain(values.min()), _plain(values.max())
        elif spec["dtype"] == "string" and 0 < values.nunique() <= max_categories:
            spec["dtype"] = "category"
            spec["allowed"] = sorted(str(v) for v in values.unique())
        if values.is_unique and len(values) == len(col) and not pd.api.types.is_float_dtype(col):
            spec["unique"] = True
        columns[str(name)] = spec
    key = next((n for n, s in columns.items() if s.get("unique") and "id" in n.lower()), None)
    table: dict[str, Any] = {"required": "all", "extra_columns": "error", "min_rows": 1}
    if key:
        table["primary_key"] = key
    return {"columns": columns, "table": table}


def _check_datetime_format(fmt: str) -> None:
    """Raise ValueError unless pandas parses a sample date written with strftime ``fmt``."""
    import pandas as pd

    if not re.search(r"%[^%]", fmt.replace("%%", "")):
        raise ValueError(
            f"datetime format {fmt!r} has no % directive: write a strftime pattern such as "
            "'%Y-%m-%d', or 'ISO8601' or 'mixed'"
        )
    sample = datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=UTC)
    try:
        pd.to_datetime([sample.strftime(fmt)], format=fmt, utc=True)
    except (ValueError, TypeError, OverflowError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"invalid datetime format {fmt!r}: {reason}") from None


def _infer_dtype(col: pd.Series) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(col):
        return "bool"
    if pd.api.types.is_integer_dtype(col):
        return "int"
    if pd.api.types.is_float_dtype(col):
        values = col.dropna()
        return "int" if len(values) and (values % 1 == 0).all() else "float"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "datetime"
    return "string"


def _plain(value: Any) -> Any:
    """numpy scalars -> Python numbers, so YAML stays readable."""
    return value.item() if hasattr(value, "item") else value
