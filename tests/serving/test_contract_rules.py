"""A model version's input contract, built straight from a signature (no trained model): the
rules each column gets, what a JSON request may hold, the structural precheck, and how files are
validated and cast to the dtypes the model was trained on."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, ValidationError

from conveyor.contracts import ModelSignature
from conveyor.errors import ConfigError, DataValidationError
from conveyor.serving.contract import (
    INT_LIMIT,
    UNKNOWN_FIELD,
    ColumnRule,
    HugeInteger,
    InputContract,
    parse_int,
)

SIGNATURE: dict[str, Any] = {
    "columns": {
        "age": {"dtype": "int", "trained_dtype": "int64", "min": 18, "max": 99},
        "income": {"dtype": "float", "trained_dtype": "float64", "min": 0.5, "nullable": True},
        "region": {"dtype": "category", "trained_dtype": "object", "allowed": ["north", "south"]},
        "member": {"dtype": "bool", "trained_dtype": "bool"},
        "joined": {"dtype": "datetime", "trained_dtype": "datetime64[ns]"},
        "note": {"dtype": "string", "trained_dtype": "object"},
        "row_id": {"dtype": "int", "trained_dtype": "int64"},
    },
    "task": "regression",
    "unused": ["row_id"],
}

VALID: dict[str, Any] = {
    "age": 30,
    "income": 1.5,
    "region": "north",
    "member": True,
    "joined": "2024-01-02T03:04:05",
    "note": "hi",
}


def contract(
    signature: dict[str, Any] | None = None, *, unknown: Any = "reject", max_records: int = 5
) -> InputContract:
    return InputContract(
        ModelSignature.stored(signature or SIGNATURE), unknown=unknown, max_records=max_records
    )


def validate(c: InputContract, *records: dict[str, Any]) -> list[BaseModel]:
    request: Any = c.request_model.model_validate({"records": list(records)})
    return list(request.records)


def errors(c: InputContract, *records: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as caught:
        validate(c, *records)
    return [tuple(e["loc"]) for e in caught.value.errors()]


# --- the rules ----------------------------------------------------------------------------------


def test_each_column_gets_its_rule_from_the_signature() -> None:
    c = contract()
    assert c.task == "regression"
    assert c.unknown == "reject" and c.max_records == 5
    assert c.columns == ["age", "income", "region", "member", "joined", "note", "row_id"]
    rules = {r.name: r for r in c.rules}
    assert rules["age"] == ColumnRule("age", "int", "int64", minimum=18, maximum=99)
    assert rules["income"] == ColumnRule("income", "float", "float64", nullable=True, minimum=0.5)
    assert rules["region"] == ColumnRule("region", "category", "object", allowed=("north", "south"))
    assert rules["joined"].date_format == "ISO8601"
    assert rules["row_id"] == ColumnRule(
        "row_id", "int", "int64", nullable=True, required=False
    )  # unused by the model: optional, so may be null


def test_a_signature_without_a_task_is_classification() -> None:
    columns = {"x": {"dtype": "float"}}
    assert contract({"columns": columns}).task == "classification"
    assert contract({"columns": columns, "task": None, "unused": None}).task == "classification"


@pytest.mark.parametrize(
    ("spec", "dtype", "trained"),
    [
        ({"trained_dtype": "int64"}, "int", "int64"),
        ({"trained_dtype": "Int32"}, "int", "Int32"),
        ({"trained_dtype": "uint8"}, "int", "uint8"),
        ({"trained_dtype": "float32"}, "float", "float32"),
        ({"trained_dtype": "Float64"}, "float", "Float64"),
        ({"trained_dtype": "bool"}, "bool", "bool"),
        ({"trained_dtype": "boolean"}, "bool", "boolean"),
        ({"trained_dtype": "datetime64[ns]"}, "datetime", "datetime64[ns]"),
        ({"trained_dtype": "object"}, "string", "object"),
        ({"trained_dtype": "category"}, "category", "category"),
        ({"dtype": "float64", "trained_dtype": "int64"}, "float", "int64"),
        ({"dtype": None, "trained_dtype": "uint16"}, "int", "uint16"),
        ({}, "string", "object"),
    ],
)
def test_a_pandas_dtype_maps_to_a_schema_dtype(
    spec: dict[str, Any], dtype: str, trained: str
) -> None:
    [rule] = contract({"columns": {"x": spec}}).rules
    assert (rule.dtype, rule.trained_dtype) == (dtype, trained)
    assert (rule.nullable, rule.required, rule.allowed) == (False, True, None)


def test_a_datetime_column_keeps_its_schema_format() -> None:
    spec: dict[str, Any] = {"dtype": "datetime", "format": "%d/%m/%Y"}
    assert contract({"columns": {"d": spec}}).rules[0].date_format == "%d/%m/%Y"
    spec["format"] = None
    assert contract({"columns": {"d": spec}}).rules[0].date_format == "ISO8601"


def test_an_unknown_category_policy_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        contract(unknown="ignore")
    assert str(caught.value) == "unknown-category policy 'ignore': choose reject or unknown"


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (ColumnRule("a", "float", "float64"), "float"),
        (
            ColumnRule("a", "int", "int64", minimum=1, maximum=2.5),
            "int; >= 1; <= 2.5",
        ),
        (
            ColumnRule("a", "category", "object", allowed=("x", 1), nullable=True),
            "category; one of x, 1; may be null",
        ),
        (
            ColumnRule("a", "int", "int64", nullable=True, required=False, minimum=0),
            "int; >= 0; may be null; optional (not used by the model)",
        ),
        (ColumnRule("a", "float", "float64", maximum=0), "float; <= 0"),
    ],
)
def test_describe_is_one_line_for_the_docs(rule: ColumnRule, text: str) -> None:
    assert rule.describe() == text


def test_same_inputs_compares_every_rule() -> None:
    assert contract().same_inputs(contract(max_records=99))
    changed = {**SIGNATURE, "columns": {**SIGNATURE["columns"], "age": {"dtype": "int"}}}
    assert not contract().same_inputs(contract(changed))
    fewer = {**SIGNATURE, "unused": []}
    assert not contract().same_inputs(contract(fewer))


# --- JSON requests ------------------------------------------------------------------------------


def test_the_request_model_documents_every_column_under_its_own_name() -> None:
    schema = contract().request_model.model_json_schema()
    record = schema["$defs"]["PredictRecord"]
    assert list(record["properties"]) == contract().columns
    assert record["required"] == ["age", "income", "region", "member", "joined", "note"]
    assert record["additionalProperties"] is False
    assert record["properties"]["age"]["description"] == "int; >= 18; <= 99"
    assert record["properties"]["age"]["minimum"] == 18
    assert record["properties"]["age"]["maximum"] == 99
    assert record["properties"]["region"]["enum"] == ["north", "south"]
    records = schema["properties"]["records"]
    assert (records["minItems"], records["maxItems"]) == (1, 5)
    assert schema["additionalProperties"] is False


def test_a_valid_record_reads_back_as_columns_and_a_trained_frame() -> None:
    c = contract()
    records = validate(c, VALID, {**VALID, "age": 40.0, "income": None, "row_id": 7})
    columns = c.columns_of(records)
    assert columns == {
        "age": [30, 40],
        "income": [1.5, None],
        "region": ["north", "north"],
        "member": [True, True],
        "joined": [dt.datetime(2024, 1, 2, 3, 4, 5)] * 2,
        "note": ["hi", "hi"],
        "row_id": [None, 7],
    }
    assert type(columns["age"][1]) is int  # a whole float is read as the int it is
    frame = c.frame(columns)
    assert list(frame.columns) == c.columns
    assert str(frame["age"].dtype) == "int64"
    assert str(frame["income"].dtype) == "float64"
    assert str(frame["member"].dtype) == "bool"
    assert str(frame["joined"].dtype) == "datetime64[ns]"
    assert str(frame["row_id"].dtype) == "float64"  # an int column with a gap
    assert frame["row_id"].isna().tolist() == [True, False]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age", 30.5),
        ("age", "30"),
        ("age", True),
        ("age", 17),
        ("age", 100),
        ("income", "1.5"),
        ("income", 0.4),
        ("income", float("inf")),
        ("income", float("nan")),
        ("region", "east"),
        ("region", None),
        ("member", 1),
        ("member", "true"),
        ("joined", "yesterday"),
        ("note", 5),
        ("note", None),
        ("age", None),
    ],
)
def test_a_wrong_value_is_refused_at_its_field(field: str, value: Any) -> None:
    assert errors(contract(), {**VALID, field: value})[0][:2] == ("records", 0)


def test_required_unknown_and_too_many_records() -> None:
    c = contract()
    missing = {k: v for k, v in VALID.items() if k != "note"}
    assert errors(c, missing) == [("records", 0, "note")]
    assert errors(c, {**VALID, "extra": 1}) == [("records", 0, "extra")]
    assert errors(c, *[VALID] * 6) == [("records",)]
    with pytest.raises(ValidationError):
        c.request_model.model_validate({"records": []})
    with pytest.raises(ValidationError):
        c.request_model.model_validate({"records": [VALID], "more": 1})
    assert len(validate(c, *[VALID] * 5)) == 5


def test_int_columns_are_bounded_where_pandas_keeps_every_digit() -> None:
    c = contract({"columns": {"n": {"dtype": "int", "trained_dtype": "int64"}}})
    assert c.columns_of(validate(c, {"n": INT_LIMIT}, {"n": -INT_LIMIT})) == {
        "n": [INT_LIMIT, -INT_LIMIT]
    }
    assert errors(c, {"n": INT_LIMIT + 1}) == [("records", 0, "n")]
    assert errors(c, {"n": -INT_LIMIT - 1}) == [("records", 0, "n")]


@pytest.mark.parametrize(("low", "high"), [(1.5, 4.0), (2, 4), (1.01, 4.99)])
def test_int_bounds_from_the_schema_round_inwards_to_whole_numbers(low: float, high: float) -> None:
    """A fractional bound on an int column made the contract unbuildable (pydantic takes only
    int bounds for an int field), so the version could not be served: n >= 1.5 is n >= 2."""
    spec = {"dtype": "int", "trained_dtype": "int64", "min": low, "max": high}
    c = contract({"columns": {"n": spec}})
    assert c.rules[0].describe() == f"int; >= {low:g}; <= {high:g}"
    prop = c.request_model.model_json_schema()["$defs"]["PredictRecord"]["properties"]["n"]
    assert (prop["minimum"], prop["maximum"]) == (2, 4)
    assert type(prop["minimum"]) is int and type(prop["maximum"]) is int
    assert errors(c, {"n": 1}) == [("records", 0, "n")]
    assert errors(c, {"n": 5}) == [("records", 0, "n")]
    assert c.columns_of(validate(c, {"n": 2}, {"n": 4})) == {"n": [2, 4]}


def test_a_float_column_without_bounds_takes_any_finite_number() -> None:
    c = contract({"columns": {"x": {"dtype": "float", "trained_dtype": "float64"}}})
    prop = c.request_model.model_json_schema()["$defs"]["PredictRecord"]["properties"]["x"]
    assert "minimum" not in prop and "maximum" not in prop
    assert c.columns_of(validate(c, {"x": -1e300}, {"x": 2})) == {"x": [-1e300, 2.0]}


def test_allowed_values_on_a_number_column_replace_its_bounds() -> None:
    spec = {"dtype": "int", "trained_dtype": "int64", "allowed": [1, 2], "min": 5}
    c = contract({"columns": {"n": spec}})
    assert c.columns_of(validate(c, {"n": 2})) == {"n": [2]}
    assert errors(c, {"n": 3}) == [("records", 0, "n")]


def test_unknown_categories_pass_to_the_model_under_the_unknown_policy() -> None:
    c = contract(unknown="unknown")
    assert c.unknown == "unknown"
    assert c.columns_of(validate(c, {**VALID, "region": "east"}))["region"] == ["east"]
    assert errors(c, {**VALID, "region": 3}) == [("records", 0, "region")]
    assert c.schema().columns["region"].allowed is None
    assert contract().schema().columns["region"].allowed == ["north", "south"]


@pytest.mark.parametrize(
    ("spec", "value"),
    [
        ({"dtype": "int", "trained_dtype": "int64"}, 10.0),
        ({"dtype": "float", "trained_dtype": "float64"}, 1.5),
        ({"dtype": "bool", "trained_dtype": "bool"}, False),
        ({"dtype": "string", "trained_dtype": "object"}, "x"),
        ({"dtype": "datetime", "trained_dtype": "datetime64[ns]"}, "2024-01-01"),
    ],
)
def test_a_nullable_column_takes_null_and_its_own_type(spec: dict[str, Any], value: Any) -> None:
    c = contract({"columns": {"x": {**spec, "nullable": True}}})
    got = c.columns_of(validate(c, {"x": None}, {"x": value}))["x"]
    assert got[0] is None and got[1] is not None
    strict = contract({"columns": {"x": spec}})
    assert errors(strict, {"x": None}) == [("records", 0, "x")]


def test_dates_in_the_schema_format_are_read_as_training_read_them() -> None:
    spec = {"dtype": "datetime", "trained_dtype": "datetime64[ns]", "format": "%d/%m/%Y"}
    c = contract({"columns": {"d": spec}})
    assert c.columns_of(validate(c, {"d": "13/08/1993"}))["d"] == [dt.datetime(1993, 8, 13)]
    with pytest.raises(ValidationError, match="not a date in the format '%d/%m/%Y'"):
        validate(c, {"d": "1993-08-13"})
    mixed = contract({"columns": {"d": {**spec, "format": "mixed"}}})
    assert mixed.columns_of(validate(mixed, {"d": "8/13/1993 0:00:00"}))["d"] == [
        dt.datetime(1993, 8, 13)
    ]


# --- the precheck -------------------------------------------------------------------------------


def test_precheck_passes_a_well_formed_body_and_leaves_types_to_pydantic() -> None:
    c = contract()
    assert c.precheck({"records": [VALID, {"age": "x"}, 7]}, limit=10) == ([], 0)
    assert c.precheck([VALID], limit=10) == ([], 0)
    assert c.precheck({"records": "all"}, limit=10) == ([], 0)
    assert c.precheck({"records": [VALID] * 5}, limit=10) == ([], 0)


def test_precheck_names_unknown_top_level_keys_up_to_the_limit() -> None:
    c = contract()
    found, total = c.precheck({"records": [], "a": 1, "b": 2, "c": 3}, limit=2)
    assert found == [{"loc": ["a"], "msg": UNKNOWN_FIELD}, {"loc": ["b"], "msg": UNKNOWN_FIELD}]
    assert total == 3
    found, total = c.precheck({"a": 1}, limit=5)
    assert found == [
        {"loc": ["a"], "msg": UNKNOWN_FIELD},
        {"loc": ["records"], "msg": "field required"},
    ]
    assert total == 2
    found, total = c.precheck({f"k{i}": i for i in range(1000)}, limit=3)
    assert [p["loc"] for p in found] == [["k0"], ["k1"], ["k2"]]
    assert total == 1001  # every key, and the missing records
    assert c.precheck({}, limit=3) == ([{"loc": ["records"], "msg": "field required"}], 1)


def test_precheck_counts_records_beyond_the_maximum() -> None:
    found, total = contract(max_records=2).precheck({"records": [{}, {}, {}]}, limit=5)
    assert found == [{"loc": ["records"], "msg": "at most 2 records per request (got 3)"}]
    assert total == 1


def test_precheck_names_fields_that_are_not_inputs_within_the_limit() -> None:
    c = contract()
    body = {"records": [{**VALID, "x": 1, "y": 2}, {"z": 3}, {"age": 1, "w": 2}]}
    found, total = c.precheck(body, limit=3)
    assert found == [
        {"loc": ["records", 0, "x"], "msg": UNKNOWN_FIELD},
        {"loc": ["records", 0, "y"], "msg": UNKNOWN_FIELD},
        {"loc": ["records", 1, "z"], "msg": UNKNOWN_FIELD},
    ]
    assert total == 4
    found, total = c.precheck({"records": [{f"u{i}": i for i in range(50)}]}, limit=0)
    assert (found, total) == ([], 50)


def test_precheck_refuses_nested_values_and_huge_integers() -> None:
    c = contract()
    record = {**VALID, "age": [1], "income": {"a": 1}, "note": HugeInteger("-" + "9" * 50)}
    found, total = c.precheck({"records": [VALID, record]}, limit=10)
    assert found == [
        {"loc": ["records", 1, "age"], "msg": "expected a single value, not an array or object"},
        {
            "loc": ["records", 1, "income"],
            "msg": "expected a single value, not an array or object",
        },
        {"loc": ["records", 1, "note"], "msg": "number too large (50 digits)"},
    ]
    assert total == 3
    found, total = c.precheck({"records": [record, record]}, limit=2)
    assert len(found) == 2 and total == 6


def test_parse_int_keeps_long_integers_out_of_int() -> None:
    assert parse_int("9" * 40) == int("9" * 40)
    assert parse_int("-12") == -12
    huge = parse_int("9" * 41)
    assert isinstance(huge, HugeInteger) and huge.digits == 41
    assert repr(huge) == "<integer of 41 digits>"
    assert HugeInteger("-" + "1" * 45).digits == 45


# --- files and batches --------------------------------------------------------------------------


def test_the_schema_carries_every_rule_and_allows_extra_columns() -> None:
    spec = {"dtype": "datetime", "trained_dtype": "datetime64[ns]", "format": "%Y/%m/%d"}
    sig = {**SIGNATURE, "columns": {**SIGNATURE["columns"], "day": spec}}
    schema = contract(sig).schema()
    cols = schema.columns
    assert (cols["age"].dtype, cols["age"].min, cols["age"].max) == ("int", 18, 99)
    assert cols["age"].nullable is False and cols["income"].nullable is True
    assert (cols["income"].min, cols["income"].max) == (0.5, None)
    assert cols["region"].allowed == ["north", "south"]
    assert cols["age"].allowed is None
    assert cols["day"].format == "%Y/%m/%d"
    assert cols["row_id"].nullable is True
    assert schema.table.required == ["age", "income", "region", "member", "joined", "note", "day"]
    assert schema.table.extra_columns == "allow"
    assert schema.table.min_rows == 0


def _table(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30 + i for i in range(n)],
            "income": [1.0 + i for i in range(n)],
            "region": ["north", "south", "north"][:n],
            "member": [True, False, True][:n],
            "joined": ["2024-01-01", "2024-02-01", "2024-03-01"][:n],
            "note": ["a", "b", "c"][:n],
            "passthrough": [1, 2, 3][:n],
        },
        index=[10, 11, 12][:n],
    )


def test_conform_returns_the_model_frame_without_extra_columns() -> None:
    c = contract()
    frame = c.conform(_table(), source="batch.csv")
    assert list(frame.columns) == c.columns
    assert len(frame) == 3
    assert str(frame["age"].dtype) == "int64"
    assert frame["row_id"].isna().all()
    assert frame["note"].tolist() == ["a", "b", "c"]


def test_conform_names_failing_rows_counted_from_the_chunk_offset() -> None:
    table = _table()
    table.loc[11, "age"] = 5
    with pytest.raises(DataValidationError) as caught:
        contract().conform(table, source="big.csv", row_offset=1000)
    message = str(caught.value)
    assert message.startswith("big.csv: ")
    assert "column 'age'" in message and "rows 1002" in message
    with pytest.raises(DataValidationError) as caught:
        contract().conform(table, source="big.csv")
    assert "rows 2;" in str(caught.value)


def test_conform_uses_a_given_schema() -> None:
    c = contract()
    loose = contract(unknown="unknown").schema()
    table = _table()
    table["region"] = ["east", "west", "north"]
    with pytest.raises(DataValidationError, match="allowed values"):
        c.conform(table, source="f")
    assert c.conform(table, source="f", schema=loose)["region"].tolist() == [
        "east",
        "west",
        "north",
    ]


def test_repeated_column_names_are_refused() -> None:
    table = pd.DataFrame([[1, 2, 3, 4]], columns=["age", "age", "note", "note"])
    with pytest.raises(DataValidationError) as caught:
        contract().conform(table, source="dup.parquet")
    assert str(caught.value) == ("dup.parquet: column names appear more than once: 'age', 'note'")


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (pd.Series([True, False, True]), "true/false"),
        (pd.Series([True, False, True], dtype=object), "true/false"),
        (pd.Series(pd.to_datetime(["2024-01-01"] * 3)), "date"),
        (pd.Series([dt.datetime(2024, 1, 1)] * 3, dtype=object), "date"),
        (pd.Series([dt.date(2024, 1, 1)] * 3, dtype=object), "date"),
        (pd.Series(pd.to_timedelta([1, 2, 3], unit="s")), "time span"),
        (pd.Series([dt.timedelta(1)] * 3, dtype=object), "time span"),
    ],
)
def test_true_false_dates_and_time_spans_are_no_numbers(values: pd.Series, kind: str) -> None:
    table = _table()
    table["income"] = values.set_axis(table.index)
    assert table["income"].dtype == values.dtype
    with pytest.raises(DataValidationError) as caught:
        contract().conform(table, source="f.parquet")
    assert str(caught.value) == (
        f"f.parquet: column 'income' holds {kind} values (dtype {table['income'].dtype}) "
        "where the model takes float numbers"
    )


def test_text_digits_and_text_columns_are_left_to_the_validation() -> None:
    table = _table()
    table["age"] = ["30", "31", "32"]
    table["member"] = [True, False, True]  # a bool column may hold true/false
    table["note"] = [True, False, True]  # so may a text column, as the validation decides
    frame = contract().conform(table.drop(columns=["note"]).assign(note="x"), source="f")
    assert frame["age"].tolist() == [30, 31, 32]


def test_cast_falls_back_to_object_when_the_trained_dtype_cannot_hold_a_value() -> None:
    c = contract({"columns": {"n": {"dtype": "string", "trained_dtype": "int64"}}})
    frame = c.frame({"n": ["a", "b"]})
    assert frame["n"].dtype == object and frame["n"].tolist() == ["a", "b"]
    frame = c.frame({"n": [1, None]})
    assert str(frame["n"].dtype) == "float64"
    assert np.isnan(frame["n"].iloc[1])
    unsigned = contract({"columns": {"n": {"dtype": "int", "trained_dtype": "uint8"}}})
    assert str(unsigned.frame({"n": [1, None]})["n"].dtype) == "float64"
    assert str(unsigned.frame({"n": [1, 2]})["n"].dtype) == "uint8"


def test_float_bounds_are_kept_as_written() -> None:
    spec = {"dtype": "float", "trained_dtype": "float64", "min": 0.5, "max": 1.5}
    c = contract({"columns": {"x": spec}})
    prop = c.request_model.model_json_schema()["$defs"]["PredictRecord"]["properties"]["x"]
    assert (prop["minimum"], prop["maximum"]) == (0.5, 1.5)
    assert c.columns_of(validate(c, {"x": 0.6}, {"x": 1.4}, {"x": 0.5}, {"x": 1.5})) == {
        "x": [0.6, 1.4, 0.5, 1.5]
    }
    assert errors(c, {"x": 0.49}) == [("records", 0, "x")]
    assert errors(c, {"x": 1.51}) == [("records", 0, "x")]


def test_a_record_with_every_input_is_still_checked_for_nested_values() -> None:
    record = {**VALID, "row_id": {"a": 1}}
    assert len(record) == len(contract().columns)
    found, total = contract().precheck({"records": [record]}, limit=5)
    assert found == [
        {"loc": ["records", 0, "row_id"], "msg": "expected a single value, not an array or object"}
    ]
    assert total == 1


def test_the_request_models_are_named_for_the_docs() -> None:
    schema = contract().request_model.model_json_schema()
    assert schema["title"] == "PredictRequest"
    assert schema["$defs"]["PredictRecord"]["title"] == "PredictRecord"


def test_repeated_column_names_are_shown_five_at_most_and_shortened() -> None:
    long = "n" * 100
    names = [long, long, *[f"c{i}" for i in range(6) for _ in range(2)]]
    table = pd.DataFrame([list(range(len(names)))], columns=names)
    with pytest.raises(DataValidationError) as caught:
        contract().conform(table, source="f")
    shown = ", ".join(repr(n) for n in ["n" * 80, "c0", "c1", "c2", "c3"])
    assert str(caught.value) == f"f: column names appear more than once: {shown}"


def test_true_false_in_an_int_column_with_gaps_is_no_number() -> None:
    table = _table()
    table["age"] = pd.Series([True, None, False], dtype=object, index=table.index)
    with pytest.raises(DataValidationError) as caught:
        contract().conform(table, source="f")
    assert str(caught.value) == (
        "f: column 'age' holds true/false values (dtype object) where the model takes int numbers"
    )


@pytest.mark.parametrize("trained", ["Int64", "UInt8", "int32", "uint16"])
def test_an_integer_column_with_a_gap_becomes_float(trained: str) -> None:
    c = contract({"columns": {"n": {"dtype": "int", "trained_dtype": trained}}})
    assert str(c.frame({"n": [1, None]})["n"].dtype) == "float64"
    assert str(c.frame({"n": [1, 2]})["n"].dtype) == trained


def test_precheck_names_one_unknown_key_beside_the_records() -> None:
    found, total = contract().precheck({"records": [VALID], "model": "v2"}, limit=5)
    assert (found, total) == ([{"loc": ["model"], "msg": UNKNOWN_FIELD}], 1)


def test_precheck_goes_on_past_a_record_that_is_no_object() -> None:
    found, total = contract().precheck({"records": [7, "x", {**VALID, "zz": 1}]}, limit=5)
    assert (found, total) == ([{"loc": ["records", 2, "zz"], "msg": UNKNOWN_FIELD}], 1)


def test_every_non_number_column_is_named_in_one_message() -> None:
    table = _table()
    table["age"] = table["member"]
    table["income"] = pd.Series(pd.to_timedelta([1, 2, 3], unit="s")).set_axis(table.index)
    with pytest.raises(DataValidationError) as caught:
        contract().conform(table, source="f")
    assert str(caught.value) == (
        "f: column 'age' holds true/false values (dtype bool) where the model takes int "
        "numbers; column 'income' holds time span values (dtype "
        f"{table['income'].dtype}) where the model takes float numbers"
    )


def test_a_signature_the_schema_cannot_take_is_named_as_the_model_signature() -> None:
    c = contract({"columns": {"d": {"dtype": "datetime", "format": "yyyy"}}})
    with pytest.raises(ConfigError) as caught:
        c.schema()
    assert str(caught.value).startswith("model signature: columns.d.format: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20240102", dt.datetime(2024, 1, 2)),
        ("2024-01-02", dt.datetime(2024, 1, 2)),
        ("2024-01-02 03:04", dt.datetime(2024, 1, 2, 3, 4)),
    ],
)
def test_iso_dates_read_the_same_in_a_request_and_in_a_file(
    text: str, expected: dt.datetime
) -> None:
    """A compact ISO date ("20240102") was read as a Unix time (1970-08-23) in JSON requests,
    but as 2 January 2024 in files and at training: the same row predicted differently."""
    c = contract({"columns": {"d": {"dtype": "datetime", "trained_dtype": "datetime64[ns]"}}})
    assert c.columns_of(validate(c, {"d": text}))["d"] == [expected]
    [from_file] = c.conform(pd.DataFrame({"d": [text]}), source="f")["d"]
    assert from_file.tz_localize(None).to_pydatetime() == expected
    with pytest.raises(ValidationError, match="not a date in the format 'ISO8601'"):
        validate(c, {"d": "1700000000"})


def test_a_request_without_records_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        contract().request_model.model_validate({})
    assert [e["loc"] for e in caught.value.errors()] == [("records",)]
    with pytest.raises(ValidationError):
        contract().request_model.model_validate({"records": None})


def test_unknown_categories_are_refused_by_default() -> None:
    c = InputContract(ModelSignature.stored(SIGNATURE), max_records=5)
    assert c.unknown == "reject"
    assert errors(c, {**VALID, "region": "east"}) == [("records", 0, "region")]
