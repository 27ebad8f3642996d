"""A model version's input contract, from its registered signature.

One set of column rules serves two executions: a pydantic model for JSON requests (which also
gives the OpenAPI schema users read) and a :mod:`conveyor.data.validation` schema for files and
batch scoring (vectorised, the same engine that validated the training data). Both build the
frame the model sees with the dtypes it was trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

from conveyor.errors import ConfigError, DataValidationError

if TYPE_CHECKING:
    import pandas as pd

    from conveyor.contracts import ColumnSignature, ModelSignature
    from conveyor.data.schema import Schema

UnknownPolicy = Literal["reject", "unknown"]
UNKNOWN_POLICIES: tuple[UnknownPolicy, ...] = ("reject", "unknown")
INT_LIMIT = 2**53  # beyond this, int64 -> float64 in pandas loses digits: refused like training
SCHEMA_DTYPES = ("string", "category", "int", "float", "bool", "datetime")
UNKNOWN_FIELD = "unknown field (not an input of this model)"
_MAX_INT_DIGITS = 40  # a JSON integer longer than this is no input of any model (int64: 19)


class HugeInteger:
    """A JSON integer too long to be an input (Python even refuses to convert one of more than
    4,300 digits): :func:`parse_int` keeps it as this, and :meth:`InputContract.precheck` names
    its field."""

    __slots__ = ("digits",)

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def parse_int(text: str) -> int | HugeInteger:
    """For ``json.loads(parse_int=...)``: ``int(text)``, or a :class:`HugeInteger` when long."""
    return int(text) if len(text) <= _MAX_INT_DIGITS else HugeInteger(text)


@dataclass(frozen=True, slots=True)
class ColumnRule:
    """What one input column must hold."""

    name: str
    dtype: str  # string | category | int | float | bool | datetime
    trained_dtype: str
    nullable: bool = False
    required: bool = True
    allowed: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    date_format: str = "ISO8601"  # datetime columns: the schema's format (strftime or "mixed")

    def describe(self) -> str:
        """One line for the API docs."""
        parts = [self.dtype]
        if self.allowed is not None:
            parts.append("one of " + ", ".join(map(str, self.allowed)))
        if self.minimum is not None:
            parts.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        if self.nullable:
            parts.append("may be null")
        if not self.required:
            parts.append("optional (not used by the model)")
        return "; ".join(parts)


class InputContract:
    """The columns a model version takes, and the two ways of checking them.

    Args:
        signature: the model version's signature.
        unknown: what an unknown category does: ``reject`` (4xx) or ``unknown`` (passed to the
            model, whose encoder treats it as unseen).
        max_records: most records per JSON request.
    """

    def __init__(
        self,
        signature: ModelSignature,
        *,
        unknown: UnknownPolicy = "reject",
        max_records: int,
    ) -> None:
        if unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"unknown-category policy {unknown!r}: choose reject or unknown")
        self.task: str = signature.task
        self.unknown = unknown
        self.max_records = max_records
        unused = set(signature.unused)
        self.rules = [
            _rule(name, spec, required=name not in unused) for name, spec in signature.ordered()
        ]
        self.columns = [r.name for r in self.rules]
        self.request_model = self._request_model()

    def same_inputs(self, other: InputContract) -> bool:
        """Whether requests valid for one are valid for the other (a safe hot swap)."""
        return self.rules == other.rules

    # -- JSON requests ------------------------------------------------------------------------

    def _request_model(self) -> type[BaseModel]:
        # Python names f0, f1, ... with the column as the alias: any column name works
        # (``_id`` from a MongoDB export, ``json``, ``model_config``), since pydantic refuses
        # leading underscores and names that shadow its own attributes.
        fields: dict[str, Any] = {
            _attr(i): (
                _python_type(rule, self.unknown),
                Field(
                    ... if rule.required else None,
                    alias=rule.name,
                    description=rule.describe(),
                    **_bounds(rule),
                ),
            )
            for i, rule in enumerate(self.rules)
        }
        record = create_model(
            "PredictRecord",
            __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
            **fields,
        )
        return create_model(
            "PredictRequest",
            __config__=ConfigDict(extra="forbid"),
            records=(
                list[record],
                Field(..., min_length=1, max_length=self.max_records),
            ),
        )

    def precheck(self, payload: Any, *, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Structural checks of a parsed JSON body, cheap enough to run before pydantic.

        Pydantic builds every error before any can be dropped: 800,000 unknown keys cost it
        seconds and a gigabyte. These checks find such bodies in one pass over their keys:
        top-level keys other than ``records``, more than ``max_records`` records, fields that
        are not inputs, values that are arrays, objects or :class:`HugeInteger`. Whatever they
        pass, pydantic validates with a bounded number of errors (records x columns).

        Returns:
            The first ``limit`` problems as ``{"loc", "msg"}`` and how many were found (no
            problem: go on with :attr:`request_model`).
        """
        found: list[dict[str, Any]] = []
        total = 0

        def add(loc: list[str | int], msg: str) -> None:
            nonlocal total
            total += 1
            if len(found) < limit:
                found.append({"loc": loc, "msg": msg})

        if not isinstance(payload, dict):
            return found, total  # one error from pydantic says what the body should be
        if len(payload) > 1 or "records" not in payload:
            unknown = [k for k in islice(payload, limit + 1) if k != "records"]
            for key in unknown[:limit]:
                add([key], UNKNOWN_FIELD)
            total += len(payload) - ("records" in payload) - len(unknown[:limit])
            if "records" not in payload:
                add(["records"], "field required")
            return found, total
        records = payload["records"]
        if not isinstance(records, list):
            return found, total
        if len(records) > self.max_records:
            add(["records"], f"at most {self.max_records} records per request (got {len(records)})")
            return found, total
        inputs = set(self.columns)
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                continue  # one error per record from pydantic
            if len(record) > len(inputs) or not record.keys() <= inputs:
                extra = [k for k in record if k not in inputs]
                room = max(limit - len(found), 0)
                for key in extra[:room]:
                    add(["records", i, key], UNKNOWN_FIELD)
                total += len(extra) - min(len(extra), room)
                continue
            for name, value in record.items():
                if isinstance(value, dict | list):
                    add(["records", i, name], "expected a single value, not an array or object")
                elif isinstance(value, HugeInteger):
                    add(["records", i, name], f"number too large ({value.digits} digits)")
        return found, total

    def columns_of(self, records: list[Any]) -> dict[str, list[Any]]:
        """Validated records (instances of the record model) as column lists."""
        attrs = {rule.name: _attr(i) for i, rule in enumerate(self.rules)}
        return {c: [getattr(r, attrs[c]) for r in records] for c in self.columns}

    def frame(self, columns: dict[str, list[Any]]) -> pd.DataFrame:
        """Column lists of valid values -> the frame the model was trained on (its dtypes)."""
        import pandas as pd

        return pd.DataFrame({r.name: _cast(columns[r.name], r) for r in self.rules})

    # -- files and batches --------------------------------------------------------------------

    def schema(self) -> Schema:
        """The rules as a data-stage schema (extra columns allowed: they pass through)."""
        from conveyor.data.schema import parse_schema

        columns: dict[str, Any] = {}
        for rule in self.rules:
            spec: dict[str, Any] = {"dtype": rule.dtype, "nullable": rule.nullable}
            if rule.allowed is not None and self.unknown == "reject":
                spec["allowed"] = list(rule.allowed)
            if rule.minimum is not None:
                spec["min"] = rule.minimum
            if rule.maximum is not None:
                spec["max"] = rule.maximum
            if rule.dtype == "datetime":
                spec["format"] = rule.date_format
            columns[rule.name] = spec
        required = [r.name for r in self.rules if r.required]
        return parse_schema(
            {
                "columns": columns,
                "table": {"required": required, "extra_columns": "allow", "min_rows": 0},
            },
            source="model signature",
        )

    def conform(
        self,
        df: pd.DataFrame,
        *,
        source: str,
        schema: Schema | None = None,
        row_offset: int = 0,
    ) -> pd.DataFrame:
        """Validate a table of inputs and return the model's frame (extra columns left out).

        ``row_offset`` numbers rows in messages from a chunk's place in its file.

        Raises:
            DataValidationError: naming ``source``, each failing column and check, and rows.
        """
        import pandas as pd

        from conveyor.data.validation import validate

        self._check_columns(df, source=source)
        clean, report = validate(df, schema or self.schema(), source=source)
        if not report.passed:
            for failure in report.failures:
                failure.rows = [r + row_offset for r in failure.rows]
            raise DataValidationError(report.error_message())
        return pd.DataFrame(
            {
                r.name: _cast(clean[r.name] if r.name in clean else [None] * len(clean), r)
                for r in self.rules
            },
            index=clean.index,
        )

    def _check_columns(self, df: pd.DataFrame, *, source: str) -> None:
        """Refuse a table whose column names repeat (a Parquet file can), and true/false, date
        and time-span columns where the model takes numbers.

        The table validation converts with ``pd.to_numeric``, which turns those into 0/1 and
        epoch nanoseconds; a JSON request with the same values is refused (strict types).

        Raises:
            DataValidationError: naming ``source`` and each such column.
        """
        repeated = df.columns[df.columns.duplicated()].unique()
        if len(repeated):
            names = ", ".join(repr(str(name)[:80]) for name in repeated[:5])
            raise DataValidationError(f"{source}: column names appear more than once: {names}")
        wrong = [
            f"column {rule.name!r} holds {kind} values (dtype {df[rule.name].dtype}) where the "
            f"model takes {rule.dtype} numbers"
            for rule in self.rules
            if rule.dtype in ("int", "float")
            and rule.name in df.columns
            and (kind := _non_numeric_kind(df[rule.name]))
        ]
        if wrong:
            raise DataValidationError(f"{source}: " + "; ".join(wrong))


def _non_numeric_kind(col: pd.Series) -> str | None:
    """``true/false``, ``date`` or ``time span`` for a column of those, else None."""
    import pandas as pd

    types = pd.api.types
    if types.is_bool_dtype(col):
        return "true/false"
    if types.is_datetime64_any_dtype(col):
        return "date"
    if types.is_timedelta64_dtype(col):
        return "time span"
    if col.dtype == object:
        inferred = types.infer_dtype(col, skipna=True)
        return {
            "boolean": "true/false",
            "datetime": "date",
            "date": "date",
            "timedelta": "time span",
        }.get(inferred)
    return None


def _attr(index: int) -> str:
    """The record model's Python name of input ``index`` (the column name is its alias)."""
    return f"f{index}"


def _rule(name: str, spec: ColumnSignature, *, required: bool) -> ColumnRule:
    # Without a schema.yaml the signature's dtype is the pandas one ("float64"): map it.
    dtype = spec.dtype or spec.trained_dtype or "object"
    if dtype not in SCHEMA_DTYPES:
        dtype = _dtype_from_trained(dtype)
    return ColumnRule(
        name=name,
        dtype=dtype,
        trained_dtype=spec.trained_dtype,
        nullable=spec.nullable or not required,
        required=required,
        allowed=tuple(spec.allowed) if spec.allowed is not None else None,
        minimum=spec.min,
        maximum=spec.max,
        date_format=spec.format or "ISO8601",
    )


def _dtype_from_trained(trained: str) -> str:
    if trained.startswith(("int", "Int", "uint")):
        return "int"
    if trained.startswith(("float", "Float")):
        return "float"
    if trained in ("bool", "boolean"):
        return "bool"
    if trained.startswith("datetime"):
        return "datetime"
    return "string"


def _whole_float(value: Any) -> Any:
    """``10.0`` -> ``10``: what pandas writes for an int column that has a gap elsewhere.
    ``10.5``, text and booleans are left for ``StrictInt`` to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[StrictInt, BeforeValidator(_whole_float)]
"""An int field that also takes whole floats (a client's ``df.to_json`` of a column with gaps
turns 10 into 10.0), never fractions, text or booleans."""


def _parse_date(value: Any, *, fmt: str) -> Any:
    """Text in the column's schema format (``8/13/1993 0:00:00`` with ``mixed``) as a datetime,
    as training read it; anything else is left for pydantic to judge."""
    import pandas as pd

    if not isinstance(value, str):
        return value
    parsed = pd.to_datetime(value, errors="coerce", format=fmt)
    if pd.isna(parsed):
        raise ValueError(f"not a date in the format {fmt!r}")
    return parsed.to_pydatetime()


def _python_type(rule: ColumnRule, unknown: UnknownPolicy) -> Any:
    base: Any
    if rule.allowed is not None and unknown == "reject":
        base = Literal[rule.allowed]
    elif rule.dtype == "int":
        base = WholeNumber
    elif rule.dtype == "float":
        base = StrictFloat
    elif rule.dtype == "bool":
        base = StrictBool
    elif rule.dtype == "datetime":
        # Text is read in the column's format, ISO8601 included, as training and files read it:
        # pydantic alone takes "20240102" for a Unix time (1970-08-23), not 2 January 2024.
        base = Annotated[datetime, BeforeValidator(partial(_parse_date, fmt=rule.date_format))]
    else:
        base = StrictStr
    return base | None if rule.nullable else base


def _bounds(rule: ColumnRule) -> dict[str, Any]:
    if rule.dtype not in ("int", "float") or (rule.allowed is not None):
        return {}
    lo, hi = rule.minimum, rule.maximum
    if rule.dtype == "int":
        lo = -INT_LIMIT if lo is None else lo
        hi = INT_LIMIT if hi is None else hi
    bounds = {}
    # an int field takes int bounds only: n >= 1.5 is n >= 2 (a fraction made the model unservable)
    if lo is not None:
        bounds["ge"] = math.ceil(lo) if rule.dtype == "int" else lo
    if hi is not None:
        bounds["le"] = math.floor(hi) if rule.dtype == "int" else hi
    return bounds


def _cast(values: Any, rule: ColumnRule) -> Any:
    """Values (a list or a Series) with the dtype the model was trained on."""
    import pandas as pd

    col = values if isinstance(values, pd.Series) else pd.Series(values)
    trained = rule.trained_dtype
    try:
        if trained.startswith(("int", "uint", "Int", "UInt")) and col.isna().any():
            return col.astype("float64")
        return col.astype(trained)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return col.astype(object)
