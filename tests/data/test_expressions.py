"""Row-check expressions: what the language accepts, what it refuses, and that it runs no code."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.data.expressions import FUNCTIONS, MAX_DEPTH, MAX_LENGTH, compile_expression
from conveyor.data.schema import RowCheck, Schema, load_schema
from conveyor.data.validation import validate
from conveyor.errors import ConfigError

FRAME = pd.DataFrame(
    {
        "unit": ["Hour", "Year", None, "Hour"],
        "wage": [500.0, 90000.0, 10.0, np.nan],
        "my col": [1, 2, 3, 4],
        "flag": pd.array([True, None, False, True], dtype="boolean"),
        "class": [0, 1, 0, 1],
    }
)


def rows(expression: str) -> list[int]:
    """The 0-based rows of FRAME where ``expression`` holds."""
    return np.flatnonzero(compile_expression(expression).mask(FRAME)).tolist()


def refused(expression: str) -> str:
    with pytest.raises(ConfigError) as info:
        compile_expression(expression)
    return str(info.value)


# --- the finding: schema.yaml is data, never code -----------------------------------------------

PAYLOADS = [
    "@pd.io.common.os.system('touch {sentinel}') == 0",
    "__import__('os').system('touch {sentinel}') == 0",
    "pd.io.common.os.system('touch {sentinel}') == 0",
    "open('{sentinel}', 'w') is not None",
    "exec(\"open('{sentinel}', 'w')\") == 0",
    "[c for c in ().__class__.__base__.__subclasses__()] == 0",
    "(lambda: open('{sentinel}', 'w'))() == 0",
    "`x` == 1 & @os.system('touch {sentinel}')",
]


@pytest.mark.parametrize("payload", PAYLOADS)
@pytest.mark.parametrize("key", ["require", "when"])
def test_require_expression_cannot_run_a_shell_command(
    tmp_path: Path, payload: str, key: str
) -> None:
    sentinel = tmp_path / "pwned"
    expression = payload.format(sentinel=sentinel)
    other = "x > 0" if key == "when" else None
    check = {key: expression, **({"require": other} if other else {})}
    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text(yaml.safe_dump({"checks": {"pwn": check}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"checks\.pwn\.{key}: .*not allowed"):
        load_schema(schema_file)
    # A Schema built around validation is refused again when it runs.
    raw = RowCheck.model_construct(require=other or expression, when=expression if other else None)
    schema = Schema.model_construct(columns={}, table=Schema().table, checks={"pwn": raw})
    with pytest.raises(ConfigError, match=rf"checks\.pwn\.{key}: .*not allowed"):
        validate(pd.DataFrame({"x": [1, 2]}), schema, source="data.csv")
    assert not sentinel.exists()


def test_conveyor_data_validate_refuses_code_in_a_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sentinel = tmp_path / "pwned"
    (tmp_path / "data.csv").write_text("x\n1\n2\n", encoding="utf-8")
    payload = f"@pd.io.common.os.system('touch {sentinel}') == 0"
    (tmp_path / "schema.yaml").write_text(
        yaml.safe_dump({"checks": {"pwn": {"require": payload}}}), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["data", "validate", "data.csv", "--schema", "schema.yaml"])
    assert result.exit_code == 1
    assert "checks.pwn.require: '@' is not allowed in a row check" in result.output
    assert "Traceback" not in result.output
    assert not sentinel.exists()


# --- allowed ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("unit == 'Hour'", [0, 3]),
        ('unit == "Hour"', [0, 3]),
        ("wage <= 400", [2]),
        ("wage > 400.5", [0, 1]),
        ("wage >= 1e3", [1]),
        ("wage < 1000 == True", []),  # chained: wage < 1000 and 1000 == True
        ("0 < `my col` <= 3", [0, 1, 2]),
        ("`my col` != 2", [0, 2, 3]),
        ("`class` == 1", [1, 3]),  # a keyword as a column name, in backticks
        ("unit == 'Hour' and wage > 400", [0]),
        ("unit == 'Hour' & wage > 400", [0]),  # & is as loose as `and`, as in pandas
        ("(unit == 'Hour') & (wage > 400)", [0]),
        ("unit == 'Year' or wage < 100", [1, 2]),
        ("unit == 'Year' | wage < 100", [1, 2]),
        ("not unit == 'Hour'", [1, 2]),
        ("~(unit == 'Hour')", [1, 2]),
        ("flag", [0, 3]),
        ("~flag", [2]),
        ("flag and not flag", []),
        ("True", [0, 1, 2, 3]),
        ("False or 1 < 2", [0, 1, 2, 3]),
        ("unit in ['Hour', 'Week']", [0, 3]),
        ("unit in ('Year',)", [1]),
        ("unit in {'Year'}", [1]),
        ("unit not in ['Hour']", [1]),
        ("unit in ['Hour', None]", [0, 2, 3]),  # None in a list matches a missing value
        ("unit == ['Hour', 'Year']", [0, 1, 3]),
        ("['Hour', 'Year'] != unit", []),
        ("`my col` in [-1, +2, 3.0]", [1, 2]),
        ("unit in []", []),
        ("wage + 100 > 600", [1]),
        ("wage - 100 > 399", [0, 1]),
        ("wage * 2 > 1000", [1]),
        ("wage / 2 == 250", [0]),
        ("`my col` // 2 == 1", [1, 2]),
        ("`my col` % 2 == 0", [1, 3]),
        ("`my col` ** 2 > 8", [2, 3]),
        ("-wage < -400", [0, 1]),
        ("+`my col` == 1", [0]),
        ("2 ** 3 == 8", [0, 1, 2, 3]),
        ("10 ** 10 ** 10 > 1", [0, 1, 2, 3]),  # overflows to inf: no hang
        ("unit + 's' == 'Hours'", [0, 3]),
        ("abs(wage - 600) < 200", [0]),
        ("abs(-3) == 3", [0, 1, 2, 3]),
        ("isna(wage)", [3]),
        ("isnull(unit)", [2]),
        ("notna(wage) and notnull(unit)", [0, 1]),
        ("isna(None)", [0, 1, 2, 3]),
        ("len(unit) == 4", [0, 1, 3]),
        ("len('abc') == 3", [0, 1, 2, 3]),
        ("lower(unit) == 'hour'", [0, 3]),
        ("upper(unit) == 'YEAR'", [1]),
        ("strip(' Hour ') == unit", [0, 3]),
        ("unit == 'a&b|c`d`@'", []),  # operators and backticks inside a string stay text
        ("(\n  unit == 'Hour'\n  and wage > 1\n)", [0]),  # YAML block scalars
        ("unit == 'Hour'\nand wage > 1", [0]),
        ("wage / 0 > 1", [0, 1, 2]),  # inf, without a numpy warning
    ],
)
def test_allowed(expression: str, expected: list[int]) -> None:
    assert rows(expression) == expected


def test_a_comparison_with_a_missing_value_is_false() -> None:
    # Row 2 has no unit, row 3 no wage: every comparison on them is False, != too.
    assert rows("unit != 'Hour'") == [1]
    assert rows("unit not in ['Hour']") == [1]
    assert rows("wage != 500") == [1, 2]
    assert rows("`my col` != wage") == [0, 1, 2]
    # `not` negates what it gets: a missing wage is not > 400, so it is "not (wage > 400)".
    assert rows("not (wage > 400)") == [2, 3]


def test_columns_are_listed_in_order_of_first_use() -> None:
    expression = compile_expression("`my col` > 1 and unit == 'Hour' or `my col` < wage")
    assert expression.columns == ("my col", "unit", "wage")
    assert compile_expression("1 < 2").columns == ()


def test_a_function_name_is_still_a_column_when_not_called() -> None:
    frame = pd.DataFrame({"len": [1, 5], "name": ["ab", "abcde"]})
    mask = compile_expression("len(name) == len").mask(frame)
    assert mask.tolist() == [False, True]


def test_the_function_set_is_fixed() -> None:
    assert set(FUNCTIONS) == {
        "abs",
        "isna",
        "isnull",
        "notna",
        "notnull",
        "len",
        "lower",
        "upper",
        "strip",
    }


def test_a_constant_expression_broadcasts_to_every_row() -> None:
    assert compile_expression("1 > 2").mask(FRAME).tolist() == [False] * 4
    assert compile_expression("isna(None) and None").mask(FRAME).tolist() == [False] * 4


def test_evaluate_returns_values_not_only_masks() -> None:
    value = compile_expression("wage * 2").evaluate(FRAME)
    assert value.tolist()[:3] == [1000.0, 180000.0, 20.0]


def test_compiled_expressions_are_cached() -> None:
    assert compile_expression("wage > 1") is compile_expression("wage > 1")


# --- refused at compile time --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("@limit < wage", "'@' is not allowed in a row check: '@limit < wage'"),
        ("wage @ wage", "'@' is not allowed"),
        ("unit.str.len() > 1", "calling is not allowed in a row check: 'unit.str.len()'"),
        ("unit.size > 1", "attribute access is not allowed in a row check: 'unit.size'"),
        ("unit[0] == 'H'", "indexing is not allowed in a row check: 'unit[0]'"),
        ("unit[1:] == 'H'", "indexing is not allowed"),
        ("open('x') == 1", "function 'open' is not allowed in a row check: \"open('x')\""),
        ("eval('1') == 1", "(the functions are abs, isna, isnull, notna, notnull, len, lower,"),
        ("getattr(unit, 'x') == 1", "function 'getattr' is not allowed"),
        ("(lambda: 1)() == 1", "calling is not allowed"),
        ("(lambda: 1) == 1", "lambda is not allowed"),
        ("[u for u in unit] == 1", "a comprehension is not allowed"),
        ("{u for u in unit} == 1", "a comprehension is not allowed"),
        ("{u: 1 for u in unit} == 1", "a comprehension is not allowed"),
        ("any(u for u in unit)", "function 'any' is not allowed"),
        ("f'{unit}' == 'x'", "an f-string is not allowed in a row check: \"f'{unit}'\""),
        ("(x := 1) == 1", "assignment (:=) is not allowed in a row check: 'x := 1'"),
        ("wage if unit else 0", "a conditional expression is not allowed"),
        ("{'a': 1} == unit", "a dict is not allowed"),
        ("[1, 2] < wage", "a list outside 'in [...]' is not allowed"),
        ("[1, 2]", "a list outside 'in [...]' is not allowed"),
        (
            "unit in [wage]",
            "a list item that is not a constant is not allowed in a row check: 'wage'",
        ),
        ("unit in [-wage]", "a list item that is not a constant is not allowed"),
        ("unit in [[1]]", "a list item that is not a constant is not allowed"),
        ("unit in other", "'in' without a literal list is not allowed"),
        ("unit in 'Hour'", "'in' without a literal list is not allowed"),
        (
            "unit is None",
            "'is' is not allowed in a row check: 'unit is None' (use ==, != or isna())",
        ),
        ("unit is not None", "'is' is not allowed"),
        ("unit == None", "comparing with None is not allowed in a row check: 'unit == None'"),
        ("None != unit", "(use isna(x) or notna(x))"),
        ("wage << 2 == 1", "operator '<<' is not allowed in a row check: 'wage << 2'"),
        ("wage >> 2 == 1", "operator '>>' is not allowed"),
        ("wage ^ 2 == 1", "operator '^' is not allowed"),
        ("1j == wage", "a constant of type complex is not allowed"),
        ("b'x' == unit", "a constant of type bytes is not allowed"),
        ("... == unit", "a constant of type ellipsis is not allowed"),
        ("abs(wage, 1) > 1", "abs() takes exactly one value: 'abs(wage, 1)'"),
        ("abs(x=wage) > 1", "abs() takes exactly one value"),
        ("abs(*wage) > 1", "abs() takes exactly one value"),
        ("abs() > 1", "abs() takes exactly one value"),
        ("*wage", "not a valid expression"),
        ("unit ==", "not a valid expression: invalid syntax"),
        ("wage = 1", "not a valid expression"),
        ("import os", "not a valid expression"),
        ("wage > 1; wage < 2", "not a valid expression"),
        ("unit == 'Hour", "not a valid expression"),
        ("a\x00b", "not a valid expression"),
        ("", "the expression is empty"),
        (" \n ", "the expression is empty"),
        ("`unclosed == 1", "unclosed backtick: '`unclosed == 1'"),
        ("`` == 1", "empty backticks"),
        ("`len`(unit) > 1", "function 'len' is not allowed in a row check: '`len`(unit)'"),
    ],
)
def test_refused(expression: str, message: str) -> None:
    assert message in refused(expression)


def test_backtick_names_come_back_in_messages() -> None:
    names = " + ".join(f"`c {i}`" for i in range(12))  # placeholders 0 to 11; the 13th is 12
    assert refused(f"{names} > `c 11`.x") == (
        "attribute access is not allowed in a row check: '`c 11`.x'"
    )


def test_a_long_piece_is_cut_in_the_message() -> None:
    message = refused(f"unit.{'x' * 200} == 1")
    assert "attribute access is not allowed in a row check: 'unit.xxx" in message
    assert "...'" in message
    assert len(message) < 120


def test_too_long_an_expression_is_refused() -> None:
    assert compile_expression(" " * (MAX_LENGTH - 5) + "True")
    assert refused("x" * (MAX_LENGTH + 1)) == (
        f"the expression has {MAX_LENGTH + 1:,} characters; at most {MAX_LENGTH:,}"
    )


@pytest.mark.parametrize(
    "expression",
    [
        "-" * (MAX_DEPTH + 1) + "wage > 1",
        "not " * (MAX_DEPTH + 1) + "flag",
        "~" * 900 + "flag",
        "wage" + " + 1" * (MAX_DEPTH + 1) + " > 1",
        "abs(" * 60 + "wage" + ")" * 60,
    ],
)
def test_too_deep_an_expression_is_refused(expression: str) -> None:
    assert refused(expression) == f"the expression is nested deeper than {MAX_DEPTH} levels"


def test_as_deep_as_allowed_is_fine() -> None:
    assert rows("-" * (MAX_DEPTH - 3) + "`my col` < 0") == [0, 1, 2, 3]  # an odd count


def test_parentheses_nested_past_the_parser_limit_are_refused() -> None:
    assert "not a valid expression" in refused("(" * 300 + "wage" + ")" * 300)


@pytest.mark.parametrize("error", [RecursionError, MemoryError])
def test_a_parser_crash_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(ast, "parse", crash)
    assert refused("wage > 1 and unit == 'crash'") == "not a valid expression"


# --- refused when evaluated ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("nope > 1", "unknown column 'nope'; the columns are 'unit', 'wage', 'my col', 'flag'"),
        ("wage > 'abc'", "cannot evaluate \"wage > 'abc'\": Invalid comparison"),
        ("unit * 3 == 'x'", "cannot evaluate 'unit * 3': it takes numbers, got str values"),
        ("'a' * 3 == 'aaa'", "cannot evaluate \"'a' * 3\": it takes numbers, got 'a'"),
        ("'%s' % wage == 'x'", "it takes numbers"),
        ("unit + 1 == 2", "cannot evaluate 'unit + 1'"),
        ("len(wage) > 1", "cannot evaluate 'len(wage)'"),
        ("len(1) > 1", "cannot evaluate 'len(1)': len() takes text, got 1"),
        ("lower(wage) == 'x'", "cannot evaluate 'lower(wage)'"),
        ("1 / 0 > 1", "cannot evaluate '1 / 0': division by zero"),
        ("`my col` ** -1 > 1", "cannot evaluate '`my col` ** -1'"),
        ("wage", "'wage' gives float64 values, not true/false"),
        ("wage and flag", "'wage' gives float64 values, not true/false"),
        ("not unit", "'unit' gives"),
        ("1 + 1", "'1 + 1' gives 2, not true/false"),
    ],
)
def test_refused_when_evaluated(expression: str, message: str) -> None:
    compiled = compile_expression(expression)
    with pytest.raises(ConfigError) as info:
        compiled.mask(FRAME)
    assert message in str(info.value)


def test_check_columns_names_the_columns_and_a_close_match() -> None:
    expression = compile_expression("wagee > 1")
    with pytest.raises(ConfigError) as info:
        expression.check_columns(["unit", "wage"])
    assert str(info.value) == (
        "unknown column 'wagee' (did you mean 'wage'?); the columns are 'unit', 'wage'"
    )
    compile_expression("wage > 1").check_columns(["unit", "wage"])


def test_unknown_column_lists_a_short_list() -> None:
    frame = pd.DataFrame({f"c{i}": [1] for i in range(12)})
    with pytest.raises(ConfigError, match=r"the columns are 'c0', .*'c4' and 7 more$"):
        compile_expression("nope > 1").mask(frame)


def test_a_duplicated_column_is_refused() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ConfigError, match="column 'a' appears more than once"):
        compile_expression("a > 1").mask(frame)
